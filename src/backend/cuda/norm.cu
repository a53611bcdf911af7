/* backend/cuda/norm.cu — row-statistics ops: rms_norm (+modulation), layer_norm (+scale/shift),
 * gated_add (tanh-gated sandwich residual with its RMSNorm), softmax, rope (with the fused
 * per-head RMSNorm of q/k), group_norm (+SiLU).
 *
 * Row kernels run one block per row: a first pass reduces the row's statistics in f32 (per-thread
 * partial sums, then a warp/block tree), later passes re-read the row (it is in L1/L2 by then)
 * and write the result rounded once. Rows are moved 8 elements per access when the row length and
 * the pointers allow it. Operand sets whose dtypes differ run through the "any" accessor, which
 * reads each element's dtype at run time. Small vectors (norm weights, modulation, gates) arrive
 * as f32 (converted once per call by slc_vectors when stored otherwise).
 *
 * Statistics are f32 here and double on the CPU backend; with bf16 outputs the difference is far
 * below one output ulp. */
#include <math.h>

#include "backend/cuda/cuda_impl.h"

/* ---- accessors: typed (vector loads) or dtype-at-run-time (scalar) ---- */

template <typename T> struct acc_t {
    T *p;
    template <int N> __device__ __forceinline__ void ld(int64_t i, float (&v)[N]) const {
        ld_vec<T, N>(p + i, v);
    }
    template <int N> __device__ __forceinline__ void st(int64_t i, const float (&v)[N]) const {
        st_vec<T, N>(p + i, v);
    }
};
struct acc_any {
    void *p;
    int dt;
    template <int N> __device__ __forceinline__ void ld(int64_t i, float (&v)[N]) const {
#pragma unroll
        for (int j = 0; j < N; j++) v[j] = ld_any(p, dt, i + j);
    }
    template <int N> __device__ __forceinline__ void st(int64_t i, const float (&v)[N]) const {
#pragma unroll
        for (int j = 0; j < N; j++) st_any(p, dt, i + j, v[j]);
    }
};

/* A small vector argument (norm weight, modulation, gate, bias) as f32, or absent. Vectors
 * stored in other dtypes are converted once per call into the backend's vector scratch
 * (slc_vectors), so kernels read plain floats. */
struct vecarg {
    const float *p;
    __device__ __forceinline__ float at(int64_t i, float dflt) const { return p ? p[i] : dflt; }
};

/* ---- row kernels ---- */

/* y = x·rstd ⊙ w ⊙ mod */
template <typename AX, typename AY, int N>
__global__ void k_rms(AY y, AX x, vecarg w, vecarg mod, int64_t rows, int64_t D, float eps) {
    __shared__ float sh[32];
    const int64_t nc = D / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t base = r * D;
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) ss += v[j] * v[j];
        }
        ss = block_sum(ss, sh);
        const float rs = 1.0f / sqrtf(ss / (float)D + eps);
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) {
                int64_t i = c * N + j;
                v[j] = v[j] * rs * w.at(i, 1.0f) * mod.at(i, 1.0f);
            }
            y.template st<N>(base + c * N, v);
        }
    }
}

/* y = ((x − mean)·rstd ⊙ w + b) ⊙ scale + shift */
template <typename AX, typename AY, int N>
__global__ void k_ln(AY y, AX x, vecarg w, vecarg b, vecarg sc, vecarg sh_, int64_t rows,
                     int64_t D, float eps) {
    __shared__ float sh[32];
    const int64_t nc = D / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t base = r * D;
        float s = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) s += v[j];
        }
        const float mean = block_sum(s, sh) / (float)D;
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) ss += (v[j] - mean) * (v[j] - mean);
        }
        const float rs = 1.0f / sqrtf(block_sum(ss, sh) / (float)D + eps);
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) {
                int64_t i = c * N + j;
                float t = (v[j] - mean) * rs;
                if (w.p) t *= w.at(i, 1.0f);
                if (b.p) t += b.at(i, 0.0f);
                if (sc.p) t *= sc.at(i, 1.0f);
                if (sh_.p) t += sh_.at(i, 0.0f);
                v[j] = t;
            }
            y.template st<N>(base + c * N, v);
        }
    }
}

/* x += gate ⊙ rms_norm(y; w) (no norm when w is absent) */
template <typename AX, typename AY, int N>
__global__ void k_gated(AX x, AY y, vecarg w, vecarg gate, int64_t rows, int64_t D, float eps) {
    __shared__ float sh[32];
    const int64_t nc = D / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t base = r * D;
        float rs = 1.0f;
        if (w.p) {
            float ss = 0.0f;
            for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
                float v[N];
                y.template ld<N>(base + c * N, v);
#pragma unroll
                for (int j = 0; j < N; j++) ss += v[j] * v[j];
            }
            ss = block_sum(ss, sh);
            rs = 1.0f / sqrtf(ss / (float)D + eps);
        }
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N], a[N];
            y.template ld<N>(base + c * N, v);
            x.template ld<N>(base + c * N, a);
#pragma unroll
            for (int j = 0; j < N; j++) {
                int64_t i = c * N + j;
                float t = w.p ? v[j] * rs * w.at(i, 1.0f) : v[j];
                a[j] = a[j] + gate.at(i, 1.0f) * t;
            }
            x.template st<N>(base + c * N, a);
        }
    }
}

template <typename AX, typename AY, int N>
__global__ void k_softmax(AY y, AX x, int64_t rows, int64_t D) {
    __shared__ float sh[32];
    const int64_t nc = D / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t base = r * D;
        float mx = -INFINITY;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) mx = fmaxf(mx, v[j]);
        }
        mx = block_max(mx, sh);
        float s = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) s += expf(v[j] - mx);
        }
        const float inv = 1.0f / block_sum(s, sh);
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++) v[j] = expf(v[j] - mx) * inv;
            y.template st<N>(base + c * N, v);
        }
    }
}

/* ---- rope: one warp per (token, head) vector of Dh ---- */

/* INTERLEAVED: a unit is N consecutive elements (N even: whole pairs). HALF: a unit is N elements
 * at d and their partners at d + Dh/2. */
template <typename AX, typename AY, int N, bool HALF>
__global__ void k_rope(AY y, AX x, vecarg nw, const float *__restrict__ tab, int64_t T, int64_t H,
                       int64_t Dh, float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t nvec = T * H;
    const int64_t half = Dh / 2;
    const int64_t units = HALF ? half / N : Dh / N;
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < nvec;
         r += (int64_t)gridDim.x * (blockDim.x >> 5)) {
        const int64_t base = r * Dh, t = r / H;
        const float *cs = tab + t * Dh; /* (cos, sin) of pair p at cs[2p], cs[2p+1] */
        float rs = 1.0f;
        if (nw.p) {
            float ss = 0.0f;
            for (int64_t u = lane; u < units; u += 32) {
                float a[N];
                x.template ld<N>(base + u * N, a);
#pragma unroll
                for (int j = 0; j < N; j++) ss += a[j] * a[j];
                if (HALF) {
                    x.template ld<N>(base + half + u * N, a);
#pragma unroll
                    for (int j = 0; j < N; j++) ss += a[j] * a[j];
                }
            }
            ss = warp_sum(ss);
            rs = 1.0f / sqrtf(ss / (float)Dh + eps);
        }
        for (int64_t u = lane; u < units; u += 32) {
            const int64_t d0 = u * N;
            float a[N];
            x.template ld<N>(base + d0, a);
            if (nw.p) {
#pragma unroll
                for (int j = 0; j < N; j++) a[j] = a[j] * rs * nw.at(d0 + j, 1.0f);
            }
            if (!HALF) {
#pragma unroll
                for (int j = 0; j < N; j += 2) {
                    const int64_t p = (d0 + j) / 2;
                    const float c = cs[2 * p], s = cs[2 * p + 1], e0 = a[j], e1 = a[j + 1];
                    a[j] = e0 * c - e1 * s;
                    a[j + 1] = e0 * s + e1 * c;
                }
                y.template st<N>(base + d0, a);
            } else {
                float b[N];
                x.template ld<N>(base + half + d0, b);
                if (nw.p) {
#pragma unroll
                    for (int j = 0; j < N; j++) b[j] = b[j] * rs * nw.at(half + d0 + j, 1.0f);
                }
#pragma unroll
                for (int j = 0; j < N; j++) {
                    const int64_t p = d0 + j;
                    const float c = cs[2 * p], s = cs[2 * p + 1], e0 = a[j], e1 = b[j];
                    a[j] = e0 * c - e1 * s;
                    b[j] = e1 * c + e0 * s;
                }
                y.template st<N>(base + d0, a);
                y.template st<N>(base + half + d0, b);
            }
        }
    }
}

/* ---- group_norm: partial Welford statistics, per-group totals, then apply ---- */

struct wf {
    float n, mean, m2;
};
__device__ __forceinline__ wf wf_merge(wf a, wf b) {
    float n = a.n + b.n;
    if (n == 0.0f) return a;
    float d = b.mean - a.mean, fb = b.n / n;
    return wf{n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
}

/* grid (chunks, groups): block (c, g) covers elements [c·chunk, (c+1)·chunk) of group g. */
template <typename AX>
__global__ void k_gn_partial(AX x, int64_t gsize, int64_t chunk, float *part) {
    __shared__ wf sh[32];
    const int64_t g = blockIdx.y, c0 = blockIdx.x * chunk;
    const int64_t c1 = c0 + chunk < gsize ? c0 + chunk : gsize;
    wf a = {0.0f, 0.0f, 0.0f};
    for (int64_t i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
        float v[1];
        x.template ld<1>(g * gsize + i, v);
        a.n += 1.0f;
        float d = v[0] - a.mean;
        a.mean += d / a.n;
        a.m2 += d * (v[0] - a.mean);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        wf b = {__shfl_xor_sync(0xffffffffu, a.n, o), __shfl_xor_sync(0xffffffffu, a.mean, o),
                __shfl_xor_sync(0xffffffffu, a.m2, o)};
        a = wf_merge(a, b);
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) sh[w] = a;
    __syncthreads();
    if (w == 0) {
        a = lane < nw ? sh[lane] : wf{0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            wf b = {__shfl_xor_sync(0xffffffffu, a.n, o), __shfl_xor_sync(0xffffffffu, a.mean, o),
                    __shfl_xor_sync(0xffffffffu, a.m2, o)};
            a = wf_merge(a, b);
        }
        if (lane == 0) {
            float *p = part + 3 * (g * gridDim.x + blockIdx.x);
            p[0] = a.n;
            p[1] = a.mean;
            p[2] = a.m2;
        }
    }
}

/* one warp per group: stats[g] = (mean, rstd) */
__global__ void k_gn_final(const float *part, int nchunks, int groups, float eps, float *stats) {
    const int g = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (g >= groups) return;
    wf a = {0.0f, 0.0f, 0.0f};
    for (int c = lane; c < nchunks; c += 32) {
        const float *p = part + 3 * ((int64_t)g * nchunks + c);
        a = wf_merge(a, wf{p[0], p[1], p[2]});
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        wf b = {__shfl_xor_sync(0xffffffffu, a.n, o), __shfl_xor_sync(0xffffffffu, a.mean, o),
                __shfl_xor_sync(0xffffffffu, a.m2, o)};
        a = wf_merge(a, b);
    }
    if (lane == 0) {
        stats[2 * g] = a.mean;
        stats[2 * g + 1] = 1.0f / sqrtf(a.m2 / a.n + eps);
    }
}

/* y = (x − mean_g)·rstd_g·w_c + b_c (then SiLU); S elements per channel, cpg channels a group. */
template <typename AX, typename AY, int N>
__global__ void k_gn_apply(AY y, AX x, const float *stats, vecarg w, vecarg b, int64_t n,
                           int64_t S, int64_t cpg, int silu) {
    const int64_t nv = n / N, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nv; i += stride) {
        const int64_t e = i * N, c = e / S, g = c / cpg; /* S % N == 0: one channel per unit */
        const float mean = stats[2 * g], rs = stats[2 * g + 1];
        const float wc = w.at(c, 1.0f), bc = b.at(c, 0.0f);
        float v[N];
        x.template ld<N>(e, v);
#pragma unroll
        for (int j = 0; j < N; j++) {
            float t = (v[j] - mean) * rs * wc + bc;
            v[j] = silu ? t / (1.0f + expf(-t)) : t;
        }
        y.template st<N>(e, v);
    }
}

/* ---- launchers ---- */

/* Threads per row block: enough for one pass of N-element units, a multiple of 32, ≤ 1024. */
static int row_threads(int64_t units) {
    int64_t t = (units + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t > 1024 ? 1024 : t);
}

static int row_grid(sl_backend *be, int64_t rows) {
    int64_t cap = (int64_t)SLC(be)->sm_count * 64;
    return (int)(rows < cap ? (rows < 1 ? 1 : rows) : cap);
}

/* Choose accessors for a pair of row tensors and call LAUNCH(AX, AY, N, ax, ay). Both typed and
 * of one dtype: 8-element units when D % 8 == 0 and both pointers are aligned to them. */
#define ROW_DISPATCH(be, xt, yt, D, LAUNCH)                                                        \
    do {                                                                                           \
        if ((xt)->dtype == (yt)->dtype) {                                                          \
            SLC_ACT_SWITCH((xt)->dtype, T_, {                                                      \
                acc_t<T_> ax_{(T_ *)(xt)->data}, ay_{(T_ *)(yt)->data};                            \
                if ((D) % 8 == 0 && slc_aligned((xt)->data, 8 * sizeof(T_)) &&                    \
                    slc_aligned((yt)->data, 8 * sizeof(T_))) {                                     \
                    LAUNCH(acc_t<T_>, acc_t<T_>, 8, ax_, ay_);                                     \
                } else {                                                                           \
                    LAUNCH(acc_t<T_>, acc_t<T_>, 1, ax_, ay_);                                     \
                }                                                                                  \
            });                                                                                    \
        } else {                                                                                   \
            acc_any ax_{(xt)->data, (int)(xt)->dtype}, ay_{(yt)->data, (int)(yt)->dtype};          \
            LAUNCH(acc_any, acc_any, 1, ax_, ay_);                                                 \
        }                                                                                          \
        SLC_LAUNCHED(be);                                                                          \
    } while (0)

/* The op's vector arguments as f32 device pointers (NULL stays NULL). */
#define VECTORS(n, ...)                                                                            \
    const sl_tensor *vin_[n] = {__VA_ARGS__};                                                      \
    const float *vf_[n];                                                                           \
    SLC_CHECK(slc_vectors(be, vin_, n, vf_))
static vecarg va(const float *p) { return vecarg{p}; }

extern "C" sl_status slc_op_rms_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                     const sl_tensor *w, const sl_tensor *mod, float eps) {
    const int64_t D = sl_tensor_ncols(x), rows = sl_tensor_nrows(x);
    if (!D || !rows) return SL_OK;
    VECTORS(2, w, mod);
    cudaStream_t s = slc_stream(be);
#define L_RMS(AX, AY, N, ax, ay)                                                                   \
    k_rms<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(ay, ax, va(vf_[0]),        \
                                                                       va(vf_[1]), rows, D, eps)
    ROW_DISPATCH(be, x, y, D, L_RMS);
#undef L_RMS
    return SL_OK;
}

extern "C" sl_status slc_op_layer_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                       const sl_tensor *w, const sl_tensor *b,
                                       const sl_tensor *scale, const sl_tensor *shift, float eps) {
    const int64_t D = sl_tensor_ncols(x), rows = sl_tensor_nrows(x);
    if (!D || !rows) return SL_OK;
    VECTORS(4, w, b, scale, shift);
    cudaStream_t s = slc_stream(be);
#define L_LN(AX, AY, N, ax, ay)                                                                    \
    k_ln<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(                             \
        ay, ax, va(vf_[0]), va(vf_[1]), va(vf_[2]), va(vf_[3]), rows, D, eps)
    ROW_DISPATCH(be, x, y, D, L_LN);
#undef L_LN
    return SL_OK;
}

extern "C" sl_status slc_op_gated_add(sl_backend *be, sl_tensor *x, const sl_tensor *y,
                                      const sl_tensor *w, const sl_tensor *gate, float eps) {
    const int64_t D = sl_tensor_ncols(x), rows = sl_tensor_nrows(x);
    if (!D || !rows) return SL_OK;
    VECTORS(2, w, gate);
    cudaStream_t s = slc_stream(be);
    /* ROW_DISPATCH's first tensor is the residual x, the second the branch y */
#define L_GATED(AX, AY, N, ax, ay)                                                                 \
    k_gated<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(ax, ay, va(vf_[0]),      \
                                                                         va(vf_[1]), rows, D, eps)
    ROW_DISPATCH(be, x, y, D, L_GATED);
#undef L_GATED
    return SL_OK;
}

extern "C" sl_status slc_op_softmax(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    const int64_t D = sl_tensor_ncols(x), rows = sl_tensor_nrows(x);
    if (!D || !rows) return SL_OK;
    cudaStream_t s = slc_stream(be);
#define L_SM(AX, AY, N, ax, ay)                                                                    \
    k_softmax<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(ay, ax, rows, D)
    ROW_DISPATCH(be, x, y, D, L_SM);
#undef L_SM
    return SL_OK;
}

extern "C" sl_status slc_op_rope(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                 const sl_tensor *norm_w, float eps, const sl_tensor *tab,
                                 sl_rope_mode mode) {
    if (mode != SL_ROPE_INTERLEAVED && mode != SL_ROPE_HALF)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "rope: unknown mode %d", (int)mode);
    const int64_t T = x->ne[0], H = x->ne[1], Dh = x->ne[2];
    if (!T || !H || !Dh) return SL_OK;
    VECTORS(1, norm_w);
    const vecarg nw = va(vf_[0]);
    const int64_t nvec = T * H;
    const int threads = 256;
    const int grid = slc_blocks(nvec, threads / 32, SLC(be)->sm_count * 64);
    cudaStream_t s = slc_stream(be);
    const float *tb = (const float *)tab->data;
    const bool half = mode == SL_ROPE_HALF;
    /* N = 4 needs the unit (and for HALF the half-offset) to stay 4-aligned */
#define L_ROPE(AX, AY, N, ax, ay)                                                                  \
    do {                                                                                           \
        if (half)                                                                                  \
            k_rope<AX, AY, N, true><<<grid, threads, 0, s>>>(ay, ax, nw, tb, T, H, Dh, eps); \
        else                                                                                       \
            k_rope<AX, AY, (N < 2 ? 2 : N), false><<<grid, threads, 0, s>>>(ay, ax, nw, tb, \
                                                                             T, H, Dh, eps);        \
    } while (0)
    if (x->dtype == y->dtype) {
        SLC_ACT_SWITCH(x->dtype, T_, {
            acc_t<T_> ax{(T_ *)x->data}, ay{(T_ *)y->data};
            bool v4 = (half ? (Dh / 2) % 4 == 0 : Dh % 4 == 0) &&
                      slc_aligned(x->data, 4 * sizeof(T_)) && slc_aligned(y->data, 4 * sizeof(T_));
            bool v2 = slc_aligned(x->data, 2 * sizeof(T_)) && slc_aligned(y->data, 2 * sizeof(T_));
            if (v4) {
                L_ROPE(acc_t<T_>, acc_t<T_>, 4, ax, ay);
            } else if (!half && v2) {
                L_ROPE(acc_t<T_>, acc_t<T_>, 2, ax, ay);
            } else {
                acc_any ax1{x->data, (int)x->dtype}, ay1{y->data, (int)y->dtype};
                L_ROPE(acc_any, acc_any, 1, ax1, ay1);
            }
        });
    } else {
        acc_any ax{x->data, (int)x->dtype}, ay{y->data, (int)y->dtype};
        L_ROPE(acc_any, acc_any, 1, ax, ay);
    }
#undef L_ROPE
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_group_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                       int groups, const sl_tensor *w, const sl_tensor *b, float eps,
                                       bool silu) {
    const int64_t C = x->ne[0], n = sl_tensor_numel(x);
    if (!n) return SL_OK;
    VECTORS(2, w, b);
    const int64_t S = n / C, cpg = C / groups, gsize = cpg * S;
    /* about 16K elements per partial block, at most 1024 partials per group */
    int64_t chunk = 16384;
    if ((gsize + chunk - 1) / chunk > 1024) chunk = (gsize + 1023) / 1024;
    const int nchunks = (int)((gsize + chunk - 1) / chunk);
    void *scr;
    SLC_CHECK(slc_scratch(be, slc_align((size_t)groups * nchunks * 3 * sizeof(float)) +
                                  (size_t)groups * 2 * sizeof(float),
                          &scr));
    float *part = (float *)scr;
    float *stats = (float *)((char *)scr + slc_align((size_t)groups * nchunks * 3 * sizeof(float)));
    cudaStream_t s = slc_stream(be);
    dim3 pg((unsigned)nchunks, (unsigned)groups);
    if (slc_is_act(x->dtype)) {
        SLC_ACT_SWITCH(x->dtype, T_,
                       k_gn_partial<acc_t<T_>><<<pg, 256, 0, s>>>(acc_t<T_>{(T_ *)x->data}, gsize,
                                                                  chunk, part));
    }
    SLC_LAUNCHED(be);
    k_gn_final<<<(groups + 7) / 8, 256, 0, s>>>(part, nchunks, groups, eps, stats);
    SLC_LAUNCHED(be);
    const int cap = SLC(be)->sm_count * 16;
#define L_GN(AX, AY, N, ax, ay)                                                                    \
    k_gn_apply<AX, AY, N><<<slc_blocks(n / N + 1, 256, cap), 256, 0, s>>>(                         \
        ay, ax, stats, va(vf_[0]), va(vf_[1]), n, S, cpg, silu ? 1 : 0)
    ROW_DISPATCH(be, x, y, S, L_GN);
#undef L_GN
    return SL_OK;
}
