/* backend/cuda/cuda.cu — the CUDA backend: device and pinned memory, the two streams, events,
 * cuBLAS handles, the scratch buffer, and the vtable that binds the op files of this folder.
 *
 * Every entry point first makes the backend's device current (cudaSetDevice is cheap when it
 * already is), so the backend may be driven from any host thread, one call at a time.
 *
 * Environment knobs (read once at creation):
 *   SLUICE_CUDA_F32_GEMM=f32      f32 GEMMs/convolutions in full f32 instead of TF32
 *   SLUICE_CUDA_SCRATCH_MB=<n>    chunk budget for weight dequantisation / im2col (default 64)
 *   SLUICE_CUDA_ATTN=<path>       attention: auto (default: cuDNN's fused attention where it
 *                                 loads and accepts the shape, else the portable kernels), cudnn
 *                                 (cuDNN or an error), cudnn-composite (its composite graph only),
 *                                 portable, 4|8 (the mma kernel with that many warps), generic
 *   SLUICE_CUDNN_PATH=<file|dir>  where libcudnn.so.9 is (else LD_LIBRARY_PATH, the loader's
 * search) SLUICE_CUDA_ROWS=v1           the two-pass row kernels only (lab comparison) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"

extern "C" {
#include "core/log.h"
}

struct sl_event {
    cudaEvent_t ev;
};

/* ---- errors ---- */

sl_status slc_fail(sl_backend *be, sl_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->last_error, sizeof be->last_error, fmt, ap);
    va_end(ap);
    return st;
}

sl_status slc_cuda_fail(sl_backend *be, cudaError_t e, const char *what, const char *file,
                        int line) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* allocation failures are not sticky; clear them */
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return slc_fail(be, SL_ERR_OOM_DEVICE,
                        "CUDA out of memory in %s (%s:%d): %zu MiB free of %zu MiB; lower "
                        "--max-vram or use a streaming offload mode",
                        what, base, line, fr >> 20, tot >> 20);
    }
    return slc_fail(be, SL_ERR_BACKEND, "CUDA error %s (%s) in %s at %s:%d", cudaGetErrorName(e),
                    cudaGetErrorString(e), what, base, line);
}

sl_status slc_blas_fail(sl_backend *be, int s, const char *what, const char *file, int line) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *name = cublasGetStatusName((cublasStatus_t)s);
    if (s == CUBLAS_STATUS_ALLOC_FAILED)
        return slc_fail(be, SL_ERR_OOM_DEVICE, "cuBLAS could not allocate memory in %s (%s:%d)",
                        what, base, line);
    return slc_fail(be, SL_ERR_BACKEND, "cuBLAS error %s (%d) in %s at %s:%d", name, s, what, base,
                    line);
}

/* ---- scratch ---- */

sl_status slc_scratch(sl_backend *be, size_t bytes, void **out) {
    slc *c = SLC(be);
    bytes = slc_align(bytes ? bytes : 256);
    if (bytes > c->scratch_bytes) {
        if (c->scratch) {
            /* cudaFree waits for the queued work that may still read the old buffer */
            SLC_TRY(be, cudaFree(c->scratch));
            c->scratch = NULL;
            c->scratch_bytes = 0;
        }
        size_t grow = bytes + bytes / 8; /* a little headroom against repeated growth */
        cudaError_t e = cudaMalloc(&c->scratch, grow);
        if (e != cudaSuccess) {
            cudaGetLastError();
            e = cudaMalloc(&c->scratch, bytes);
            grow = bytes;
        }
        if (e != cudaSuccess) {
            cudaGetLastError();
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            c->scratch = NULL;
            return slc_fail(be, SL_ERR_OOM_DEVICE,
                            "CUDA backend scratch: %zu bytes needed, %zu MiB free of %zu MiB "
                            "(reserve room for the backend's scratch, or lower "
                            "SLUICE_CUDA_SCRATCH_MB)",
                            bytes, fr >> 20, tot >> 20);
        }
        c->scratch_bytes = grow;
    }
    *out = c->scratch;
    return SL_OK;
}

sl_status slc_vectors(sl_backend *be, const sl_tensor *const *v, int n, const float **out) {
    slc *c = SLC(be);
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] && !slc_is_scalar_float(v[i]->dtype))
            return slc_fail(be, SL_ERR_UNSUPPORTED,
                            "vector argument of dtype %s (the CUDA backend takes f32, bf16, f16 or "
                            "fp8 vectors)",
                            sl_dtype_name(v[i]->dtype));
        if (v[i] && v[i]->dtype != SL_DTYPE_F32)
            need += slc_align((size_t)sl_tensor_numel(v[i]) * sizeof(float));
    }
    if (need > c->vscratch_bytes) {
        if (c->vscratch) SLC_TRY(be, cudaFree(c->vscratch)); /* waits for queued readers */
        c->vscratch = NULL;
        c->vscratch_bytes = 0;
        size_t sz = need < (1u << 20) ? (1u << 20) : need;
        SLC_TRY(be, cudaMalloc(&c->vscratch, sz));
        c->vscratch_bytes = sz;
    }
    char *p = (char *)c->vscratch;
    for (int i = 0; i < n; i++) {
        out[i] = NULL;
        if (!v[i]) continue;
        if (v[i]->dtype == SL_DTYPE_F32) {
            out[i] = (const float *)v[i]->data;
            continue;
        }
        const int64_t k = sl_tensor_numel(v[i]);
        SLC_CHECK(slc_convert(be, p, SL_DTYPE_F32, v[i]->data, v[i]->dtype, k));
        out[i] = (const float *)p;
        p += slc_align((size_t)k * sizeof(float));
    }
    return SL_OK;
}

size_t slc_scratch_bound(sl_backend *be) {
    return 2 * SLC(be)->scratch_cap + (8u << 20);
}

/* ---- memory ---- */

static sl_status set_dev(sl_backend *be) {
    SLC_TRY(be, cudaSetDevice(SLC(be)->device));
    return SL_OK;
}

static sl_status c_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    *out = NULL;
    sl_status st = set_dev(be);
    if (st == SL_OK) {
        cudaError_t e = cudaMalloc(out, bytes ? bytes : 256); /* 256-byte aligned by contract */
        if (e != cudaSuccess) {
            cudaGetLastError();
            *out = NULL;
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            st = slc_fail(be, e == cudaErrorMemoryAllocation ? SL_ERR_OOM_DEVICE : SL_ERR_BACKEND,
                          "CUDA allocation of %zu bytes (%.1f MiB) failed: %s; %.1f MiB free of "
                          "%.1f MiB on %s (lower --max-vram or use a streaming offload mode)",
                          bytes, bytes / 1048576.0, cudaGetErrorName(e), fr / 1048576.0,
                          tot / 1048576.0, be->info.device);
        }
    }
    if (st != SL_OK) sl_err_set(err, st, "%s", be->last_error);
    return st;
}

static void c_free(sl_backend *be, void *p) {
    if (!p) return;
    cudaSetDevice(SLC(be)->device);
    cudaError_t e = cudaFree(p);
    if (e != cudaSuccess) SL_WARN("cuda: cudaFree failed: %s", cudaGetErrorString(e));
}

static sl_status c_host_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    *out = NULL;
    sl_status st = set_dev(be);
    if (st == SL_OK) {
        cudaError_t e = cudaHostAlloc(out, bytes ? bytes : 256, cudaHostAllocDefault);
        if (e != cudaSuccess) {
            cudaGetLastError();
            *out = NULL;
            st =
                slc_fail(be, SL_ERR_OOM_HOST,
                         "pinned host allocation of %zu bytes (%.1f MiB) failed: %s (the system "
                         "limits page-locked memory; lower the pinned budget or use the disk tier)",
                         bytes, bytes / 1048576.0, cudaGetErrorName(e));
        }
    }
    if (st != SL_OK) sl_err_set(err, st, "%s", be->last_error);
    return st;
}

static void c_host_free(sl_backend *be, void *p) {
    if (!p) return;
    cudaSetDevice(SLC(be)->device);
    cudaError_t e = cudaFreeHost(p);
    if (e != cudaSuccess) SL_WARN("cuda: cudaFreeHost failed: %s", cudaGetErrorString(e));
}

static void c_mem_info(sl_backend *be, size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    cudaSetDevice(SLC(be)->device);
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) cudaGetLastError();
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
}

/* ---- transfers ---- */

static sl_status c_upload(sl_backend *be, sl_queue q, void *dst, const void *src, size_t n) {
    SLC_CHECK(set_dev(be));
    if (!n) return SL_OK;
    cudaStream_t s = SLC(be)->stream[q];
    SLC_TRY(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
    if (q == SL_QUEUE_COMPUTE) {
        /* The contract lets the caller reuse src at once. A pageable source is staged before
         * cudaMemcpyAsync returns; a pinned one is read later by the DMA engine, so wait. */
        cudaPointerAttributes a;
        if (cudaPointerGetAttributes(&a, src) == cudaSuccess && a.type == cudaMemoryTypeHost)
            SLC_TRY(be, cudaStreamSynchronize(s));
        cudaGetLastError();
    }
    return SL_OK;
}

static sl_status c_download(sl_backend *be, void *dst, const void *src, size_t n) {
    SLC_CHECK(set_dev(be));
    cudaStream_t s = slc_stream(be);
    if (n) SLC_TRY(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
    SLC_TRY(be, cudaStreamSynchronize(s));
    return SL_OK;
}

static sl_status c_copy_d2d(sl_backend *be, void *dst, const void *src, size_t n) {
    SLC_CHECK(set_dev(be));
    if (!n) return SL_OK;
    SLC_TRY(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, slc_stream(be)));
    return SL_OK;
}

/* ---- events ---- */

static sl_status c_event_create(sl_backend *be, sl_event **out) {
    *out = NULL;
    SLC_CHECK(set_dev(be));
    sl_event *e = (sl_event *)calloc(1, sizeof *e);
    if (!e) return slc_fail(be, SL_ERR_OOM_HOST, "out of host memory creating an event");
    cudaError_t r = cudaEventCreateWithFlags(&e->ev, cudaEventDefault); /* timing enabled */
    if (r != cudaSuccess) {
        free(e);
        return slc_cuda_fail(be, r, "cudaEventCreate", __FILE__, __LINE__);
    }
    *out = e;
    return SL_OK;
}

static void c_event_destroy(sl_backend *be, sl_event *e) {
    if (!e) return;
    cudaSetDevice(SLC(be)->device);
    cudaEventDestroy(e->ev);
    free(e);
}

static sl_status c_event_record(sl_backend *be, sl_event *e, sl_queue q) {
    SLC_CHECK(set_dev(be));
    SLC_TRY(be, cudaEventRecord(e->ev, SLC(be)->stream[q]));
    return SL_OK;
}

static sl_status c_queue_wait(sl_backend *be, sl_queue q, sl_event *e) {
    SLC_CHECK(set_dev(be));
    SLC_TRY(be, cudaStreamWaitEvent(SLC(be)->stream[q], e->ev, 0));
    return SL_OK;
}

static sl_status c_event_sync(sl_backend *be, sl_event *e) {
    SLC_CHECK(set_dev(be));
    SLC_TRY(be, cudaEventSynchronize(e->ev));
    return SL_OK;
}

static sl_status c_event_elapsed(sl_backend *be, sl_event *a, sl_event *b, float *ms) {
    SLC_CHECK(set_dev(be));
    SLC_TRY(be, cudaEventElapsedTime(ms, a->ev, b->ev));
    return SL_OK;
}

static sl_status c_sync(sl_backend *be) {
    SLC_CHECK(set_dev(be));
    SLC_TRY(be, cudaStreamSynchronize(SLC(be)->stream[SL_QUEUE_COPY]));
    SLC_TRY(be, cudaStreamSynchronize(SLC(be)->stream[SL_QUEUE_COMPUTE]));
    return SL_OK;
}

/* ---- lifetime ---- */

static void c_destroy(sl_backend *be) {
    if (!be) return;
    slc *c = SLC(be);
    if (c) {
        cudaSetDevice(c->device);
        for (int i = 0; i < 2; i++)
            if (c->stream[i]) cudaStreamSynchronize(c->stream[i]);
        slc_dnn_free(be);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->blas) cublasDestroy(c->blas);
        if (c->ws) cudaFree(c->ws);
        if (c->scratch) cudaFree(c->scratch);
        if (c->vscratch) cudaFree(c->vscratch);
        for (int i = 0; i < 2; i++)
            if (c->stream[i]) cudaStreamDestroy(c->stream[i]);
        free(c);
    }
    free(be);
}

static const sl_backend_vt g_vt = {
    c_destroy,
    c_alloc,
    c_free,
    c_host_alloc,
    c_host_free,
    c_mem_info,
    c_upload,
    c_download,
    c_copy_d2d,
    c_event_create,
    c_event_destroy,
    c_event_record,
    c_queue_wait,
    c_event_sync,
    c_event_elapsed,
    c_sync,
    slc_op_matmul,
    slc_op_binary,
    slc_op_scale,
    slc_op_unary,
    slc_op_glu,
    slc_op_rms_norm,
    slc_op_layer_norm,
    slc_op_group_norm,
    slc_op_rope,
    slc_op_attention,
    slc_op_softmax,
    slc_op_gated_add,
    slc_op_conv2d,
    slc_op_upsample_nearest,
    slc_op_patchify,
    slc_op_unpatchify,
    slc_op_permute,
    slc_op_concat,
    slc_op_slice,
    slc_op_copy,
    slc_op_get_rows,
    slc_op_repeat_rows,
    slc_op_timestep_embed,
    slc_op_fill,
};

static sl_status create_fail(sl_backend *be, sl_err *err, sl_status st) {
    sl_err_set(err, st, "%s", be->last_error);
    c_destroy(be);
    return st;
}

extern "C" sl_status sl_backend_cuda_create(int device, sl_backend **out, sl_err *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "no CUDA device available (%s); use --backend cpu",
                          e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    if (device < 0 || device >= n)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "CUDA device %d does not exist (%d found)",
                          device, n);
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        cudaGetLastError();
        return sl_err_set(err, SL_ERR_BACKEND, "cannot query CUDA device %d", device);
    }
    if (p.major < 8)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "CUDA device %d (%s) has compute capability %d.%d; sluice needs 8.0 "
                          "(Ampere) or newer — use --backend cpu",
                          device, p.name, p.major, p.minor);

    sl_backend *be = (sl_backend *)calloc(1, sizeof *be);
    slc *c = (slc *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory creating the CUDA backend");
    }
    be->vt = &g_vt;
    be->impl = c;
    be->info.name = "cuda";
    snprintf(be->info.device, sizeof be->info.device, "%.127s", p.name);
    be->info.is_device = true;
    be->info.host_visible = false;
    be->info.can_time = true;
    be->info.act_dtype = SL_DTYPE_BF16;
    be->info.cc = p.major * 10 + p.minor;
    c->device = device;
    c->sm_count = p.multiProcessorCount;
    c->smem_optin = (int)p.sharedMemPerBlockOptin;

    const char *s = getenv("SLUICE_CUDA_F32_GEMM");
    c->f32_tf32 = !(s && !strcmp(s, "f32"));
    s = getenv("SLUICE_CUDA_SCRATCH_MB");
    long mb = s ? strtol(s, NULL, 10) : 64;
    c->scratch_cap = (size_t)(mb >= 8 ? mb : 8) << 20;
    s = getenv("SLUICE_CUDA_ATTN");
    c->attn_cudnn = p.major >= 8 ? 1 : 0; /* cuDNN's flash attention needs sm_80+ */
    if (s && *s && strcmp(s, "auto")) {
        c->attn_cudnn = 0;
        if (!strcmp(s, "cudnn") || !strcmp(s, "cudnn-composite")) {
            c->attn_cudnn = 2;
            c->attn_cudnn_composite = s[5] != 0;
        } else if (!strcmp(s, "generic")) {
            c->attn_variant = -1;
        } else if (!strcmp(s, "4") || !strcmp(s, "8")) {
            c->attn_variant = atoi(s);
        } else if (strcmp(s, "portable")) {
            SL_WARN(
                "cuda: SLUICE_CUDA_ATTN=%s is not one of auto, cudnn, cudnn-composite, portable, "
                "4, 8, generic; using portable",
                s);
        }
    }
    s = getenv("SLUICE_CUDA_ROWS");
    c->rows_v1 = s && !strcmp(s, "v1");

    sl_status st;
#define CREATE_TRY(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return create_fail(be, err, slc_cuda_fail(be, e_, #call, __FILE__, __LINE__));         \
    } while (0)
    CREATE_TRY(cudaSetDevice(device));
    CREATE_TRY(cudaStreamCreateWithFlags(&c->stream[0], cudaStreamNonBlocking));
    CREATE_TRY(cudaStreamCreateWithFlags(&c->stream[1], cudaStreamNonBlocking));
    c->ws_bytes = 32u << 20; /* cuBLASLt's recommendation for Hopper */
    CREATE_TRY(cudaMalloc(&c->ws, c->ws_bytes));
    /* what callers cannot see: the cuBLAS workspace, the grow-only scratch at its bound, and
     * device memory the driver takes as kernel modules load lazily on first launch (measured on
     * an H200: about 25 MB over a whole Z-Image generation; 96 MiB leaves room for cuBLASLt's
     * kernel choices at other shapes) */
    be->info.private_bytes = c->ws_bytes + slc_scratch_bound(be) + ((size_t)96 << 20);
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        st = slc_fail(be, SL_ERR_BACKEND, "cublasCreate failed (is libcublas installed?)");
        return create_fail(be, err, st);
    }
    if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        st = slc_fail(be, SL_ERR_BACKEND, "cublasLtCreate failed (is libcublasLt installed?)");
        return create_fail(be, err, st);
    }
    if (cublasSetStream(c->blas, c->stream[0]) != CUBLAS_STATUS_SUCCESS ||
        cublasSetWorkspace(c->blas, c->ws, c->ws_bytes) != CUBLAS_STATUS_SUCCESS) {
        st = slc_fail(be, SL_ERR_BACKEND, "cuBLAS stream/workspace setup failed");
        return create_fail(be, err, st);
    }
#undef CREATE_TRY
    SL_DEBUG("cuda: %s (sm_%d, %d SMs, %.1f GiB)", p.name, be->info.cc, p.multiProcessorCount,
             p.totalGlobalMem / 1073741824.0);
    *out = be;
    return SL_OK;
}
