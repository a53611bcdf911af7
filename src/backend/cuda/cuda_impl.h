/* backend/cuda/cuda_impl.h — internals shared by the .cu files of the CUDA backend.
 *
 * C++ only, included by the .cu files of src/backend/cuda (and the kernel lab); nothing else sees it. It
 * holds the backend's private state, the error macros (one SLC_TRY for CUDA calls, SLC_BLAS_TRY
 * for cuBLAS/cuBLASLt, SLC_LAUNCHED after every kernel launch), the device-side scalar and
 * vector load/store helpers every kernel uses, and the op entry points that cuda.cu places in
 * the vtable (each defined in the .cu file of its op family, as the third layer of STYLE §7).
 *
 * Streams: every op runs on the compute stream (stream[SL_QUEUE_COMPUTE]); uploads on the copy
 * queue use stream[SL_QUEUE_COPY]. Both are non-blocking streams.
 *
 * Scratch: one grow-only device buffer per backend, handed out whole to the op that asks
 * (slc_scratch). Ops use it only on the compute stream, so consecutive ops reuse it in stream
 * order without synchronisation; growing it frees the old buffer with cudaFree, which waits for
 * queued work first. Its size is bounded (weight dequantisation works in chunks of at most
 * SLUICE_CUDA_SCRATCH_MB, default 64 MiB, plus small extras), so a caller sizing the device budget
 * should reserve slc_scratch_bound() bytes beside its own buffers. */
#ifndef SL_BACKEND_CUDA_IMPL_H
#define SL_BACKEND_CUDA_IMPL_H

#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]] /* core/status.h is C11; this spelling keeps it valid in C++ */
#endif
extern "C" {
#include "backend/backend.h"
}
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

/* ---- backend state ---- */

#define SLC_LT_CACHE 64
typedef struct slc_lt_plan {
    bool used;
    uint64_t key[12];               /* shape, dtypes, leading dims, epilogue, alignments */
    cublasLtMatmulAlgo_t algo;
    bool ok;                         /* false: heuristics found nothing for this key */
    uint64_t stamp;                  /* last use, for replacement */
} slc_lt_plan;

typedef struct slc {
    int device;
    int sm_count;
    int smem_optin;                  /* max dynamic shared memory per block after opt-in */
    cudaStream_t stream[2];          /* [SL_QUEUE_COMPUTE], [SL_QUEUE_COPY] */
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *ws;                        /* cuBLAS/cuBLASLt workspace (compute stream only) */
    size_t ws_bytes;
    void *scratch;                   /* grow-only, see above */
    void *vscratch;                  /* grow-only: small vector arguments converted to f32 */
    size_t vscratch_bytes;
    size_t scratch_bytes;
    size_t scratch_cap;              /* chunk budget for weight dequantisation and im2col */
    bool f32_tf32;                   /* f32 GEMMs on TF32 tensor cores (default) */
    int attn_variant;                /* 0 auto, 4/8 warps of the mma kernel, -1 generic path */
    int attn_cudnn;                  /* cuDNN attention: 0 never, 1 where it accepts the shape (the
                                        portable kernels otherwise), 2 forced (a refusal is an error) */
    bool attn_cudnn_composite;       /* only cuDNN's composite SDPA graph (lab comparison) */
    struct slc_dnn *dnn;             /* cuDNN state, created at the first attention (attention_cudnn.cu) */
    bool rows_v1;                    /* SLUICE_CUDA_ROWS=v1: the two-pass row kernels only (lab) */
    slc_lt_plan plans[SLC_LT_CACHE];
    uint64_t plan_clock;
} slc;

static inline slc *SLC(sl_backend *be) { return (slc *)be->impl; }
static inline cudaStream_t slc_stream(sl_backend *be) { return SLC(be)->stream[SL_QUEUE_COMPUTE]; }

/* ---- errors ---- */

/* Fill be->last_error with "<what>: <cuda error name> (<description>) at file:line" and return
 * SL_ERR_OOM_DEVICE for allocation failures, SL_ERR_BACKEND otherwise. */
sl_status slc_cuda_fail(sl_backend *be, cudaError_t e, const char *what, const char *file, int line);
sl_status slc_blas_fail(sl_backend *be, int status, const char *what, const char *file, int line);
/* be->last_error = message; returns st. */
sl_status slc_fail(sl_backend *be, sl_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SLC_TRY(be, call)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return slc_cuda_fail((be), e_, #call, __FILE__, __LINE__);          \
    } while (0)
#define SLC_BLAS_TRY(be, call)                                                                     \
    do {                                                                                           \
        int s_ = (int)(call);                                                                      \
        if (s_ != 0) return slc_blas_fail((be), s_, #call, __FILE__, __LINE__);                    \
    } while (0)
/* After every kernel launch: configuration errors surface here, faults at the next sync. */
#define SLC_LAUNCHED(be) SLC_TRY((be), cudaGetLastError())
/* Propagate a status from a helper. */
#define SLC_CHECK(expr)                                                                            \
    do {                                                                                           \
        sl_status st_ = (expr);                                                                    \
        if (st_ != SL_OK) return st_;                                                              \
    } while (0)

/* ---- scratch ---- */

/* A device buffer of at least `bytes` for this op (contents undefined, 256-byte aligned), valid
 * until the next slc_scratch call. Call it once per op with the op's whole need, then carve. */
sl_status slc_scratch(sl_backend *be, size_t bytes, void **out);
static inline size_t slc_align(size_t x) { return (x + 255) & ~(size_t)255; }
/* out[i] = v[i]'s data as f32 on the device: the tensor itself when it is f32, else a converted
 * copy in the vector scratch (valid until the next slc_vectors call; stream-ordered like
 * slc_scratch); NULL for NULL. Vectors must be f32/bf16/f16/fp8. */
sl_status slc_vectors(sl_backend *be, const sl_tensor *const *v, int n, const float **out);

/* ---- dtype helpers (host) ---- */

static inline bool slc_is_act(sl_dtype t) {
    return t == SL_DTYPE_F32 || t == SL_DTYPE_BF16 || t == SL_DTYPE_F16;
}
/* A dtype that ld_any (below) reads: f32, bf16, f16, fp8 e4m3/e5m2. */
static inline bool slc_is_scalar_float(sl_dtype t) {
    return slc_is_act(t) || t == SL_DTYPE_F8_E4M3 || t == SL_DTYPE_F8_E5M2;
}
static inline size_t slc_esize(sl_dtype t) { return (size_t)sl_dtype_get(t)->bsize; }
static inline bool slc_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }
static inline int slc_blocks(int64_t n, int threads, int cap) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (int)(b < cap ? b : cap);
}
static inline cudaDataType_t slc_cuda_type(sl_dtype t) {
    return t == SL_DTYPE_F32 ? CUDA_R_32F : t == SL_DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* Run `body` with T bound to the C++ type of activation dtype dt (f32/bf16/f16). */
#define SLC_ACT_SWITCH(dt, T, ...)                                                                 \
    switch (dt) {                                                                                  \
    case SL_DTYPE_F32: {                                                                           \
        typedef float T;                                                                           \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case SL_DTYPE_BF16: {                                                                          \
        typedef bf16 T;                                                                            \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case SL_DTYPE_F16: {                                                                           \
        typedef __half T;                                                                          \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    default: SL_ASSERTF(0, "not an activation dtype: %s", sl_dtype_name(dt));                     \
    }

/* ---- device helpers ---- */

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

/* fp8 decoders (formats.md §6.3/6.4), exact. */
__device__ __forceinline__ float e4m3_to_f(uint32_t b) {
    uint32_t s = (b & 0x80u) << 24, E = (b >> 3) & 15u, M = b & 7u;
    if (E == 15u && M == 7u) return __uint_as_float(s | 0x7fc00000u);
    if (E == 0u) return __uint_as_float(s | __float_as_uint((float)M * 0.001953125f)); /* M·2^-9 */
    return __uint_as_float(s | ((E + 120u) << 23) | (M << 20));
}
__device__ __forceinline__ float e5m2_to_f(uint32_t b) {
    return __half2float(__ushort_as_half((unsigned short)(b << 8)));
}

/* One element of a scalar float dtype (f32, bf16, f16, e4m3, e5m2) chosen at run time; used for
 * small vectors (norm weights, gates, biases) whose dtype is whatever the checkpoint stored. */
__device__ __forceinline__ float ld_any(const void *p, int dt, int64_t i) {
    switch (dt) {
    case SL_DTYPE_F32: return ((const float *)p)[i];
    case SL_DTYPE_BF16: return __bfloat162float(((const bf16 *)p)[i]);
    case SL_DTYPE_F16: return __half2float(((const __half *)p)[i]);
    case SL_DTYPE_F8_E4M3: return e4m3_to_f(((const uint8_t *)p)[i]);
    default: return e5m2_to_f(((const uint8_t *)p)[i]);
    }
}
__device__ __forceinline__ void st_any(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case SL_DTYPE_F32: ((float *)p)[i] = v; break;
    case SL_DTYPE_BF16: ((bf16 *)p)[i] = __float2bfloat16_rn(v); break;
    default: ((__half *)p)[i] = __float2half_rn(v); break;
    }
}

/* N consecutive elements as one aligned access (16 or 32 bytes for N = 8: the compiler emits
 * 128-bit loads/stores). The caller guarantees alignment to N·sizeof(T). */
template <typename T, int N> struct alignas(sizeof(T) * N) slc_vec {
    T v[N];
};
template <typename T, int N> __device__ __forceinline__ void ld_vec(const T *p, float (&o)[N]) {
    slc_vec<T, N> t = *reinterpret_cast<const slc_vec<T, N> *>(p);
#pragma unroll
    for (int i = 0; i < N; i++) o[i] = to_f(t.v[i]);
}
template <typename T, int N> __device__ __forceinline__ void st_vec(T *p, const float (&o)[N]) {
    slc_vec<T, N> t;
#pragma unroll
    for (int i = 0; i < N; i++) t.v[i] = from_f<T>(o[i]);
    *reinterpret_cast<slc_vec<T, N> *>(p) = t;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
 * sh: 32 floats of shared memory. Contains __syncthreads. */
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

/* ---- shared launchers (used by several op files) ---- */

/* dst = src converted, n elements of activation dtypes (any pair), on the compute stream. */
sl_status slc_convert(sl_backend *be, void *dst, sl_dtype dt, const void *src, sl_dtype st,
                      int64_t n);
/* dst (dt: f32/bf16/f16) = n elements of any float or block dtype at src; n is a whole number of
 * blocks. Block types reproduce core/quant.c's values exactly (no FMA contraction). */
sl_status slc_dequant(sl_backend *be, void *dst, sl_dtype dt, const void *src, sl_dtype st,
                      int64_t n);
/* 4-D strided copy of elements of `esize` bytes: dst[i0,i1,i2,i3] at Σ i·dstride = src at
 * Σ i·sstride (strides in elements). Used by permute, concat, slice. */
sl_status slc_copy_strided(sl_backend *be, void *dst, const int64_t dstride[4], const void *src,
                           const int64_t sstride[4], const int64_t ne[4], size_t esize);
/* dst[r, c] (ld ldd, dtype dt) = src[r, c] (ld lds, st) + (bias ? bias[c] : 0), r < R, c < C. */
sl_status slc_convert_2d(sl_backend *be, void *dst, sl_dtype dt, int64_t ldd, const void *src,
                         sl_dtype st, int64_t lds, int64_t R, int64_t C, const void *bias,
                         sl_dtype bt);
/* A plain GEMM through cublasGemmEx on the compute stream, column-major as cuBLAS sees it:
 * C[m,n] = alpha·op(A)·op(B) + beta·C. A and B of dtype ab (f32/bf16/f16), C of dtype ct (ab or
 * f32); f32 uses TF32 unless SLUICE_CUDA_F32_GEMM=f32. */
sl_status slc_gemm_ex(sl_backend *be, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                      float alpha, const void *A, int64_t lda, const void *B, int64_t ldb, sl_dtype ab,
                      float beta, void *C, int64_t ldc, sl_dtype ct);
/* Maximum scratch bytes any op asks for (for budget planning). */
size_t slc_scratch_bound(sl_backend *be);

/* Attention through cuDNN's fused flash attention (attention_cudnn.cu), for q/k/v/o of one dtype
 * (bf16/f16) in the [B, S, H, Dh] layout with 16-byte aligned data, Dh % 8 == 0. SL_OK: enqueued
 * on the compute stream. SL_ERR_UNSUPPORTED: cuDNN is absent or refused this shape, nothing was
 * enqueued and be->last_error says why (the caller falls back to its own kernels). Other statuses:
 * a failure after work may have been enqueued. */
sl_status slc_dnn_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                            const sl_tensor *v, float scale, bool causal, int64_t B, int64_t Sq,
                            int64_t Sk, int64_t Hq, int64_t Hk, int64_t Dh);
/* Release the backend's cuDNN handle and cached plans (NULL state is fine). */
void slc_dnn_free(sl_backend *be);

/* ---- op entry points (the vtable's ops; see backend.h for semantics) ---- */
extern "C" {
sl_status slc_op_matmul(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                        const sl_tensor *bias);
sl_status slc_op_binary(sl_backend *be, sl_binary_op op, sl_tensor *y, const sl_tensor *a,
                        const sl_tensor *b);
sl_status slc_op_scale(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s, float bias);
sl_status slc_op_unary(sl_backend *be, sl_unary_op op, sl_tensor *y, const sl_tensor *x);
sl_status slc_op_glu(sl_backend *be, sl_unary_op act, sl_tensor *y, const sl_tensor *g,
                     const sl_tensor *u);
sl_status slc_op_rms_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                          const sl_tensor *mod, float eps);
sl_status slc_op_layer_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                            const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift,
                            float eps);
sl_status slc_op_group_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, int groups,
                            const sl_tensor *w, const sl_tensor *b, float eps, bool silu);
sl_status slc_op_rope(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w,
                      float eps, const sl_tensor *tab, sl_rope_mode mode);
sl_status slc_op_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                           const sl_tensor *v, float scale, bool causal);
sl_status slc_op_softmax(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status slc_op_gated_add(sl_backend *be, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                           const sl_tensor *gate, float eps);
sl_status slc_op_conv2d(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                        const sl_tensor *b, int stride, const int pad[4]);
sl_status slc_op_upsample_nearest(sl_backend *be, sl_tensor *y, const sl_tensor *x, int factor);
sl_status slc_op_patchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                          sl_patch_order order);
sl_status slc_op_unpatchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                            sl_patch_order order);
sl_status slc_op_permute(sl_backend *be, sl_tensor *y, const sl_tensor *x, const int perm[4]);
sl_status slc_op_concat(sl_backend *be, sl_tensor *y, const sl_tensor *a, const sl_tensor *b,
                        int dim);
sl_status slc_op_slice(sl_backend *be, sl_tensor *y, const sl_tensor *x, int dim, int64_t start);
sl_status slc_op_copy(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status slc_op_get_rows(sl_backend *be, sl_tensor *y, const sl_tensor *table,
                          const sl_tensor *ids);
sl_status slc_op_repeat_rows(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status slc_op_timestep_embed(sl_backend *be, sl_tensor *y, const float *t, int n, float t_scale,
                                float max_period, bool cos_first);
sl_status slc_op_fill(sl_backend *be, sl_tensor *y, float value);
}

#endif
