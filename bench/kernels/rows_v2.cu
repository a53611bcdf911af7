/* bench/kernels/rows_v2.cu — a candidate for the row kernels (rms_norm ⊙ w ⊙ mod, gated_add), kept
 * in the lab until a GPU run shows it beats src/backend/cuda/norm.cu (STYLE §8). Not yet run on a
 * GPU: the lab validates it against the CPU backend before it times it.
 *
 * What it changes (docs/KERNELS.md: the shipped row kernels reach 27–37% of copy bandwidth on an
 * H200): 128-thread blocks, one row each, every thread holding its V ≤ 4 eight-element vectors in
 * registers across the reduction, so the row is read once and several rows per SM have loads in
 * flight; vector arguments are read directly in f32 or bf16 (no conversion launches).
 * bf16 activations only; rows of at most 4096 elements, D % 8 == 0, 16-byte aligned pointers.
 *
 *   mode 0 (rms_norm):  out = in·rstd(in) ⊙ a ⊙ b          (a = w, b = mod)
 *   mode 1 (gated_add): out += b ⊙ (in·rstd(in) ⊙ a)       (out = residual x, in = branch y,
 *                                                           a = w, b = gate)
 * Vector kinds: 0 absent (1.0), 1 f32, 2 bf16. Entry points return 0, -1 when the shape is
 * outside this kernel, or a CUDA error code; they run on the legacy default stream and time
 * themselves (the backend's stream is private to it). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

typedef __nv_bfloat16 bf16;

struct alignas(16) v8 {
    bf16 e[8];
};

__device__ __forceinline__ void ld8(const bf16 *p, float (&o)[8]) {
    v8 t = *reinterpret_cast<const v8 *>(p);
#pragma unroll
    for (int j = 0; j < 8; j++) o[j] = __bfloat162float(t.e[j]);
}
__device__ __forceinline__ void st8(bf16 *p, const float (&o)[8]) {
    v8 t;
#pragma unroll
    for (int j = 0; j < 8; j++) t.e[j] = __float2bfloat16_rn(o[j]);
    *reinterpret_cast<v8 *>(p) = t;
}
__device__ __forceinline__ void ldv(const void *p, int kind, int64_t i, float (&o)[8]) {
    if (kind == 1) {
        const float4 *q = reinterpret_cast<const float4 *>((const float *)p + i);
        float4 a = q[0], b = q[1];
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w, o[4] = b.x, o[5] = b.y, o[6] = b.z, o[7] = b.w;
    } else if (kind == 2) {
        ld8((const bf16 *)p + i, o);
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) o[j] = 1.0f;
    }
}

template <int V, int MODE>
__global__ void __launch_bounds__(128) k_rows(bf16 *__restrict__ out, const bf16 *__restrict__ in,
                                              const void *a, int ak, const void *b, int bk, int D,
                                              float eps) {
    __shared__ float sh[4];
    const int nc = D / 8;
    const int64_t base = (int64_t)blockIdx.x * D;
    float v[V][8];
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = threadIdx.x + k * 128;
        if (c < nc) {
            ld8(in + base + c * 8, v[k]);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) v[k][j] = 0.0f;
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++)
#pragma unroll
        for (int j = 0; j < 8; j++) ss += v[k][j] * v[k][j];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = ss;
    __syncthreads();
    const float rs = 1.0f / sqrtf((sh[0] + sh[1] + sh[2] + sh[3]) / (float)D + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = threadIdx.x + k * 128;
        if (c >= nc) continue;
        float fa[8], fb[8], o[8];
        ldv(a, ak, (int64_t)c * 8, fa);
        ldv(b, bk, (int64_t)c * 8, fb);
        if (MODE == 0) {
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = v[k][j] * rs * fa[j] * fb[j];
        } else {
            float r[8];
            ld8(out + base + c * 8, r);
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = r[j] + fb[j] * (v[k][j] * rs * fa[j]);
        }
        st8(out + base + c * 8, o);
    }
}

template <int MODE>
static int launch(void *out, const void *in, const void *a, int ak, const void *b, int bk,
                  int64_t rows, int D, float eps) {
    if (D % 8 || D > 4096 || rows > 0x7fffffff || ((uintptr_t)out | (uintptr_t)in) % 16) return -1;
    const int V = (D / 8 + 127) / 128;
    bf16 *o = (bf16 *)out;
    const bf16 *i = (const bf16 *)in;
    if (V <= 1)
        k_rows<1, MODE><<<(unsigned)rows, 128>>>(o, i, a, ak, b, bk, D, eps);
    else if (V <= 2)
        k_rows<2, MODE><<<(unsigned)rows, 128>>>(o, i, a, ak, b, bk, D, eps);
    else
        k_rows<4, MODE><<<(unsigned)rows, 128>>>(o, i, a, ak, b, bk, D, eps);
    return (int)cudaGetLastError();
}

static int run(int mode, void *out, const void *in, const void *a, int ak, const void *b, int bk,
               int64_t rows, int D, float eps) {
    return mode == 0 ? launch<0>(out, in, a, ak, b, bk, rows, D, eps)
                     : launch<1>(out, in, a, ak, b, bk, rows, D, eps);
}

static int cmp_f(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

extern "C" {
/* One run, then a device synchronisation (so the caller may download through any stream). */
int lab_rows_v2_run(int mode, void *out, const void *in, const void *a, int ak, const void *b,
                    int bk, int64_t rows, int D, float eps) {
    int r = run(mode, out, in, a, ak, b, bk, rows, D, eps);
    if (r) return r;
    return (int)cudaDeviceSynchronize();
}

/* Median milliseconds of `reps` runs (after 3 warm-ups), rotating over nsets out/in pairs. */
int lab_rows_v2_time(int mode, void *const *outs, const void *const *ins, int nsets, const void *a,
                     int ak, const void *b, int bk, int64_t rows, int D, float eps, int reps,
                     float *median_ms) {
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) || cudaEventCreate(&e1)) return (int)cudaGetLastError();
    int r = 0;
    for (int i = 0; i < 3 && !r; i++) r = run(mode, outs[i % nsets], ins[i % nsets], a, ak, b, bk, rows, D, eps);
    float *t = (float *)malloc(sizeof(float) * (size_t)(reps > 0 ? reps : 1));
    for (int i = 0; i < reps && !r; i++) {
        cudaEventRecord(e0, 0);
        r = run(mode, outs[i % nsets], ins[i % nsets], a, ak, b, bk, rows, D, eps);
        cudaEventRecord(e1, 0);
        if (!r) r = (int)cudaEventSynchronize(e1);
        if (!r) r = (int)cudaEventElapsedTime(&t[i], e0, e1);
    }
    if (!r) {
        qsort(t, (size_t)reps, sizeof *t, cmp_f);
        *median_ms = t[reps / 2];
    }
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return r;
}
}
