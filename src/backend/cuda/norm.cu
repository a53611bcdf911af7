/* backend/cuda/norm.cu — row-statistics ops: rms_norm (+modulation), layer_norm (+scale/shift),
 * gated_add (tanh-gated sandwich residual with its RMSNorm), softmax, rope (with the fused
 * per-head RMSNorm of q/k), group_norm (+SiLU).
 *
 * bf16/f16 rows of up to 8192 elements (D % 8 == 0, 16-byte aligned) — every row op of the DiT —
 * run the register-resident kernels below (one read of the row; see their comment), as does rope
 * for head dims 64/128/256. Everything else (f32, mixed dtypes, odd lengths or offsets, softmax,
 * SLUICE_CUDA_ROWS=v1) runs the two-pass kernels:
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
        for (int j = 0; j < N; j++)
            v[j] = ld_any(p, dt, i + j);
    }
    template <int N> __device__ __forceinline__ void st(int64_t i, const float (&v)[N]) const {
#pragma unroll
        for (int j = 0; j < N; j++)
            st_any(p, dt, i + j, v[j]);
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
            for (int j = 0; j < N; j++)
                ss += v[j] * v[j];
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
__global__ void k_ln(AY y, AX x, vecarg w, vecarg b, vecarg sc, vecarg sh_, int64_t rows, int64_t D,
                     float eps) {
    __shared__ float sh[32];
    const int64_t nc = D / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t base = r * D;
        float s = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++)
                s += v[j];
        }
        const float mean = block_sum(s, sh) / (float)D;
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++)
                ss += (v[j] - mean) * (v[j] - mean);
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
                for (int j = 0; j < N; j++)
                    ss += v[j] * v[j];
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
            for (int j = 0; j < N; j++)
                mx = fmaxf(mx, v[j]);
        }
        mx = block_max(mx, sh);
        float s = 0.0f;
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++)
                s += expf(v[j] - mx);
        }
        const float inv = 1.0f / block_sum(s, sh);
        for (int64_t c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[N];
            x.template ld<N>(base + c * N, v);
#pragma unroll
            for (int j = 0; j < N; j++)
                v[j] = expf(v[j] - mx) * inv;
            y.template st<N>(base + c * N, v);
        }
    }
}

/* ---- register-resident row kernels (16-bit rows, D % 8 == 0, D ≤ 8192, 16-byte aligned) ----
 *
 * One row per warp (D ≤ 1024: TPR 32, four rows per 128-thread block) or per 128-thread block
 * (D ≤ 8192: TPR 128). Each thread issues the loads of its V vectors of 8 elements at once and
 * keeps them (as raw 16-bit vectors) in registers across the reduction, so a row is read from
 * memory once and many loads are in flight per SM; the two-pass kernels above re-read the row after
 * a block-wide barrier. Vector arguments are read directly (f32/bf16/f16, 16-byte aligned), with
 * no conversion launch. Unit c of a row (elements 8c..8c+7) belongs to thread c % TPR. */

struct vec8 {
    const void *p;
    int kind; /* 0 absent, 1 f32, 2 bf16, 3 f16 */
};

/* o = elements i..i+7 of the vector (f32 as two 16-byte loads) */
__device__ __forceinline__ void ld8(const vec8 &a, int64_t i, float (&o)[8]) {
    if (a.kind == 1) {
        const float4 *q = reinterpret_cast<const float4 *>((const float *)a.p + i);
        const float4 x = q[0], y = q[1];
        o[0] = x.x, o[1] = x.y, o[2] = x.z, o[3] = x.w, o[4] = y.x, o[5] = y.y, o[6] = y.z,
        o[7] = y.w;
    } else if (a.kind == 2) {
        ld_vec<bf16, 8>((const bf16 *)a.p + i, o);
    } else {
        ld_vec<__half, 8>((const __half *)a.p + i, o);
    }
}

template <typename T>
__device__ __forceinline__ void unpack8(const slc_vec<T, 8> &t, float (&o)[8]) {
#pragma unroll
    for (int j = 0; j < 8; j++)
        o[j] = to_f(t.v[j]);
}

/* This thread's V units of the row (absent units read as zeros). */
template <typename T, int TPR, int V>
__device__ __forceinline__ void row_load(const T *row, int nc, int tid, slc_vec<T, 8> (&r)[V]) {
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = tid + k * TPR;
        if (c < nc) {
            r[k] = *reinterpret_cast<const slc_vec<T, 8> *>(row + (int64_t)c * 8);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++)
                r[k].v[j] = from_f<T>(0.0f);
        }
    }
}

/* Sum over the row's threads: the warp (TPR 32), or the block (TPR 128; sh: 4 floats used by
 * this call only, so consecutive calls need no barrier between them). */
template <int TPR> __device__ __forceinline__ float row_sum(float v, float *sh) {
    v = warp_sum(v);
    if (TPR == 32) return v;
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    return (sh[0] + sh[1]) + (sh[2] + sh[3]);
}

/* The row this thread works on and its index within the row; false past the last row. */
template <int TPR> __device__ __forceinline__ bool row_of(int64_t rows, int64_t *r, int *tid) {
    *tid = TPR == 32 ? (int)(threadIdx.x & 31) : (int)threadIdx.x;
    *r = TPR == 32 ? (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5) : (int64_t)blockIdx.x;
    return *r < rows; /* uniform per warp (TPR 32) or per block (TPR 128) */
}

/* y = x·rstd ⊙ w ⊙ mod */
template <typename T, int TPR, int V>
__global__ void __launch_bounds__(128) k_rms_r(T *__restrict__ y, const T *__restrict__ x, vec8 w,
                                               vec8 mod, int64_t rows, int D, float eps) {
    __shared__ float sh[4];
    int64_t r;
    int tid;
    if (!row_of<TPR>(rows, &r, &tid)) return;
    const int nc = D / 8;
    slc_vec<T, 8> xr[V];
    row_load<T, TPR, V>(x + r * D, nc, tid, xr);
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        float a[8];
        unpack8(xr[k], a);
#pragma unroll
        for (int j = 0; j < 8; j++)
            ss += a[j] * a[j];
    }
    const float rs = 1.0f / sqrtf(row_sum<TPR>(ss, sh) / (float)D + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = tid + k * TPR;
        if (c >= nc) continue;
        float a[8], f[8];
        unpack8(xr[k], a);
#pragma unroll
        for (int j = 0; j < 8; j++)
            a[j] *= rs;
        if (w.kind) {
            ld8(w, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] *= f[j];
        }
        if (mod.kind) {
            ld8(mod, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] *= f[j];
        }
        st_vec<T, 8>(y + r * D + (int64_t)c * 8, a);
    }
}

/* y = ((x − mean)·rstd ⊙ w + b) ⊙ scale + shift; mean and variance from the registers */
template <typename T, int TPR, int V>
__global__ void __launch_bounds__(128)
    k_ln_r(T *__restrict__ y, const T *__restrict__ x, vec8 w, vec8 b, vec8 sc, vec8 shf,
           int64_t rows, int D, float eps) {
    __shared__ float sh[2][4];
    int64_t r;
    int tid;
    if (!row_of<TPR>(rows, &r, &tid)) return;
    const int nc = D / 8;
    slc_vec<T, 8> xr[V];
    row_load<T, TPR, V>(x + r * D, nc, tid, xr);
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        float a[8];
        unpack8(xr[k], a);
#pragma unroll
        for (int j = 0; j < 8; j++)
            s += a[j];
    }
    const float mean = row_sum<TPR>(s, sh[0]) / (float)D;
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        if (tid + k * TPR >= nc) continue; /* padding units are zeros, not mean */
        float a[8];
        unpack8(xr[k], a);
#pragma unroll
        for (int j = 0; j < 8; j++)
            ss += (a[j] - mean) * (a[j] - mean);
    }
    const float rs = 1.0f / sqrtf(row_sum<TPR>(ss, sh[1]) / (float)D + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = tid + k * TPR;
        if (c >= nc) continue;
        float a[8], f[8];
        unpack8(xr[k], a);
#pragma unroll
        for (int j = 0; j < 8; j++)
            a[j] = (a[j] - mean) * rs;
        if (w.kind) {
            ld8(w, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] *= f[j];
        }
        if (b.kind) {
            ld8(b, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] += f[j];
        }
        if (sc.kind) {
            ld8(sc, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] *= f[j];
        }
        if (shf.kind) {
            ld8(shf, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] += f[j];
        }
        st_vec<T, 8>(y + r * D + (int64_t)c * 8, a);
    }
}

/* x += gate ⊙ rms_norm(y; w) (no norm when w is absent); the residual's loads are issued with the
 * branch's when the registers allow (V ≤ 4) */
template <typename T, int TPR, int V>
__global__ void __launch_bounds__(128) k_gated_r(T *__restrict__ x, const T *__restrict__ y, vec8 w,
                                                 vec8 gate, int64_t rows, int D, float eps) {
    __shared__ float sh[4];
    constexpr bool PRE = V <= 4;
    int64_t r;
    int tid;
    if (!row_of<TPR>(rows, &r, &tid)) return;
    const int nc = D / 8;
    slc_vec<T, 8> yr[V], xr[PRE ? V : 1];
    row_load<T, TPR, V>(y + r * D, nc, tid, yr);
    if constexpr (PRE) row_load<T, TPR, V>(x + r * D, nc, tid, xr);
    float rs = 1.0f;
    if (w.kind) {
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            float a[8];
            unpack8(yr[k], a);
#pragma unroll
            for (int j = 0; j < 8; j++)
                ss += a[j] * a[j];
        }
        rs = 1.0f / sqrtf(row_sum<TPR>(ss, sh) / (float)D + eps);
    }
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int c = tid + k * TPR;
        if (c >= nc) continue;
        T *xp = x + r * D + (int64_t)c * 8;
        float a[8], res[8], f[8];
        unpack8(yr[k], a);
        if constexpr (PRE)
            unpack8(xr[k], res);
        else
            ld_vec<T, 8>(xp, res);
        if (w.kind) {
            ld8(w, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] = a[j] * rs * f[j];
        }
        if (gate.kind) {
            ld8(gate, (int64_t)c * 8, f);
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] *= f[j];
        }
#pragma unroll
        for (int j = 0; j < 8; j++)
            res[j] += a[j];
        st_vec<T, 8>(xp, res);
    }
}

/* rope (+ per-head RMSNorm) on [T, H, Dh] with Dh = 8·TPV (TPV 8, 16 or 32): TPV lanes per
 * (token, head) vector, one unit of 8 each, 128/TPV vectors per block. HALF pairs element d with
 * d + Dh/2, which sits in lane ^ TPV/2: partners are exchanged by shuffle after the norm. tab: f32
 * [T, Dh/2, 2] (cos, sin) per pair, 16-byte aligned. */
template <typename T, int TPV, bool HALF>
__global__ void __launch_bounds__(128)
    k_rope_r(T *__restrict__ y, const T *__restrict__ x, vec8 nw, const float *__restrict__ tab,
             int64_t nvec, int64_t H, float eps) {
    constexpr int Dh = 8 * TPV;
    const int lane = threadIdx.x % TPV;
    const int64_t r0 = (int64_t)blockIdx.x * (128 / TPV) + threadIdx.x / TPV;
    const bool live = r0 < nvec; /* dead lanes still take part in the shuffles */
    const int64_t r = live ? r0 : nvec - 1, t = r / H;
    const int d0 = lane * 8;
    float a[8];
    ld_vec<T, 8>(x + r * Dh + d0, a);
    if (nw.kind) {
        float ss = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++)
            ss += a[j] * a[j];
#pragma unroll
        for (int o = TPV / 2; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        const float rs = 1.0f / sqrtf(ss / (float)Dh + eps);
        float f[8];
        ld8(nw, d0, f);
#pragma unroll
        for (int j = 0; j < 8; j++)
            a[j] = a[j] * rs * f[j];
    }
    float out[8];
    const float *cs = tab + t * Dh;
    if (!HALF) {
        /* pair p = (d0 + j)/2 at cs[2p], cs[2p + 1] = cs[d0 + j], cs[d0 + j + 1] */
        const float4 c0 = *reinterpret_cast<const float4 *>(cs + d0);
        const float4 c1 = *reinterpret_cast<const float4 *>(cs + d0 + 4);
        const float cv[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            const float c = cv[j], s = cv[j + 1];
            out[j] = a[j] * c - a[j + 1] * s;
            out[j + 1] = a[j] * s + a[j + 1] * c;
        }
    } else {
        constexpr int half = Dh / 2;
        const bool first = d0 < half;
        float bq[8];
#pragma unroll
        for (int j = 0; j < 8; j++)
            bq[j] = __shfl_xor_sync(0xffffffffu, a[j], TPV / 2);
        const int p0 = first ? d0 : d0 - half; /* pair index of element j: p0 + j */
        const float4 *c4 = reinterpret_cast<const float4 *>(cs + 2 * p0);
#pragma unroll
        for (int h = 0; h < 4; h++) {
            const float4 cc = c4[h]; /* (cos, sin) of pairs p0 + 2h, p0 + 2h + 1 */
            const int j = 2 * h;
            /* first half: e0 = a, e1 = partner → e0·c − e1·s; second half: e1 = a → e1·c + e0·s */
            out[j] = first ? a[j] * cc.x - bq[j] * cc.y : a[j] * cc.x + bq[j] * cc.y;
            out[j + 1] =
                first ? a[j + 1] * cc.z - bq[j + 1] * cc.w : a[j + 1] * cc.z + bq[j + 1] * cc.w;
        }
    }
    if (live) st_vec<T, 8>(y + r * Dh + d0, out);
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
                for (int j = 0; j < N; j++)
                    ss += a[j] * a[j];
                if (HALF) {
                    x.template ld<N>(base + half + u * N, a);
#pragma unroll
                    for (int j = 0; j < N; j++)
                        ss += a[j] * a[j];
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
                for (int j = 0; j < N; j++)
                    a[j] = a[j] * rs * nw.at(d0 + j, 1.0f);
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
                    for (int j = 0; j < N; j++)
                        b[j] = b[j] * rs * nw.at(half + d0 + j, 1.0f);
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
__global__ void k_gn_apply(AY y, AX x, const float *stats, vecarg w, vecarg b, int64_t n, int64_t S,
                           int64_t cpg, int silu) {
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
                if ((D) % 8 == 0 && slc_aligned((xt)->data, 8 * sizeof(T_)) &&                     \
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

/* The register-resident kernels' layout for rows of D elements (threads per row, units of 8 per
 * thread); false when D is outside them. */
static bool fast_layout(int64_t D, int *tpr, int *nv) {
    if (D <= 0 || D % 8 || D > 8192) return false;
    const int64_t u = D / 8;
    if (u <= 128) {
        *tpr = 32;
        *nv = u <= 32 ? 1 : u <= 64 ? 2 : 4;
    } else {
        *tpr = 128;
        *nv = u <= 256 ? 2 : u <= 512 ? 4 : 8;
    }
    return true;
}

/* Rows the register-resident kernels take: one 16-bit dtype, 16-byte aligned, a grid that fits. */
static bool fast_rows(sl_backend *be, const sl_tensor *a, const sl_tensor *b, int64_t rows) {
    return !SLC(be)->rows_v1 && a->dtype == b->dtype &&
           (a->dtype == SL_DTYPE_BF16 || a->dtype == SL_DTYPE_F16) && slc_aligned(a->data, 16) &&
           slc_aligned(b->data, 16) && rows < INT32_MAX;
}

/* An optional vector argument read in place (f32/bf16/f16, 16-byte aligned); false otherwise. */
static bool fast_vec(const sl_tensor *t, vec8 *o) {
    o->p = NULL;
    o->kind = 0;
    if (!t) return true;
    o->p = t->data;
    o->kind = t->dtype == SL_DTYPE_F32    ? 1
              : t->dtype == SL_DTYPE_BF16 ? 2
              : t->dtype == SL_DTYPE_F16  ? 3
                                          : 0;
    return o->kind != 0 && slc_aligned(t->data, 16);
}

/* LAUNCH(T, TPR, V) for the layout chosen by fast_layout and the 16-bit dtype dt. */
#define FAST_TV(T, tpr, nv, LAUNCH)                                                                \
    do {                                                                                           \
        if (tpr == 32) {                                                                           \
            if (nv == 1)                                                                           \
                LAUNCH(T, 32, 1);                                                                  \
            else if (nv == 2)                                                                      \
                LAUNCH(T, 32, 2);                                                                  \
            else                                                                                   \
                LAUNCH(T, 32, 4);                                                                  \
        } else {                                                                                   \
            if (nv == 2)                                                                           \
                LAUNCH(T, 128, 2);                                                                 \
            else if (nv == 4)                                                                      \
                LAUNCH(T, 128, 4);                                                                 \
            else                                                                                   \
                LAUNCH(T, 128, 8);                                                                 \
        }                                                                                          \
    } while (0)
#define FAST_ROWS(dt, tpr, nv, LAUNCH)                                                             \
    do {                                                                                           \
        if ((dt) == SL_DTYPE_BF16)                                                                 \
            FAST_TV(bf16, tpr, nv, LAUNCH);                                                        \
        else                                                                                       \
            FAST_TV(__half, tpr, nv, LAUNCH);                                                      \
    } while (0)
/* blocks of 128 threads: four rows each (TPR 32) or one */
static unsigned fast_grid(int64_t rows, int tpr) {
    return (unsigned)(tpr == 32 ? (rows + 3) / 4 : rows);
}

/* The op's vector arguments as f32 device pointers (NULL stays NULL). */
#define VECTORS(n, ...)                                                                            \
    const sl_tensor *vin_[n] = {__VA_ARGS__};                                                      \
    const float *vf_[n];                                                                           \
    SLC_CHECK(slc_vectors(be, vin_, n, vf_))
static vecarg va(const float *p) {
    return vecarg{p};
}

extern "C" sl_status slc_op_rms_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                     const sl_tensor *w, const sl_tensor *mod, float eps) {
    const int64_t D = sl_tensor_ncols(x), rows = sl_tensor_nrows(x);
    if (!D || !rows) return SL_OK;
    cudaStream_t s = slc_stream(be);
    int tpr, nv;
    vec8 vw, vm;
    if (fast_rows(be, x, y, rows) && fast_layout(D, &tpr, &nv) && fast_vec(w, &vw) &&
        fast_vec(mod, &vm)) {
#define L_RMS_R(T, TPR, V)                                                                         \
    k_rms_r<T, TPR, V><<<fast_grid(rows, TPR), 128, 0, s>>>((T *)y->data, (const T *)x->data, vw,  \
                                                            vm, rows, (int)D, eps)
        FAST_ROWS(x->dtype, tpr, nv, L_RMS_R);
#undef L_RMS_R
        SLC_LAUNCHED(be);
        return SL_OK;
    }
    VECTORS(2, w, mod);
#define L_RMS(AX, AY, N, ax, ay)                                                                   \
    k_rms<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(ay, ax, va(vf_[0]),         \
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
    cudaStream_t s = slc_stream(be);
    int tpr, nv;
    vec8 vw, vb, vs, vh;
    if (fast_rows(be, x, y, rows) && fast_layout(D, &tpr, &nv) && fast_vec(w, &vw) &&
        fast_vec(b, &vb) && fast_vec(scale, &vs) && fast_vec(shift, &vh)) {
#define L_LN_R(T, TPR, V)                                                                          \
    k_ln_r<T, TPR, V><<<fast_grid(rows, TPR), 128, 0, s>>>((T *)y->data, (const T *)x->data, vw,   \
                                                           vb, vs, vh, rows, (int)D, eps)
        FAST_ROWS(x->dtype, tpr, nv, L_LN_R);
#undef L_LN_R
        SLC_LAUNCHED(be);
        return SL_OK;
    }
    VECTORS(4, w, b, scale, shift);
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
    cudaStream_t s = slc_stream(be);
    int tpr, nv;
    vec8 vw, vg;
    if (fast_rows(be, x, y, rows) && fast_layout(D, &tpr, &nv) && fast_vec(w, &vw) &&
        fast_vec(gate, &vg)) {
#define L_GATED_R(T, TPR, V)                                                                       \
    k_gated_r<T, TPR, V><<<fast_grid(rows, TPR), 128, 0, s>>>((T *)x->data, (const T *)y->data,    \
                                                              vw, vg, rows, (int)D, eps)
        FAST_ROWS(x->dtype, tpr, nv, L_GATED_R);
#undef L_GATED_R
        SLC_LAUNCHED(be);
        return SL_OK;
    }
    VECTORS(2, w, gate);
    /* ROW_DISPATCH's first tensor is the residual x, the second the branch y */
#define L_GATED(AX, AY, N, ax, ay)                                                                 \
    k_gated<AX, AY, N><<<row_grid(be, rows), row_threads(D / N), 0, s>>>(ax, ay, va(vf_[0]),       \
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
    vec8 vn;
    if (fast_rows(be, x, y, T * H) && (Dh == 64 || Dh == 128 || Dh == 256) &&
        tab->dtype == SL_DTYPE_F32 && slc_aligned(tab->data, 16) && fast_vec(norm_w, &vn)) {
        const int64_t nvec = T * H;
        const float *tb = (const float *)tab->data;
        cudaStream_t s = slc_stream(be);
#define L_ROPE_R(T_, TPV)                                                                          \
    do {                                                                                           \
        const unsigned g = (unsigned)((nvec + 128 / TPV - 1) / (128 / TPV));                       \
        if (mode == SL_ROPE_HALF)                                                                  \
            k_rope_r<T_, TPV, true>                                                                \
                <<<g, 128, 0, s>>>((T_ *)y->data, (const T_ *)x->data, vn, tb, nvec, H, eps);      \
        else                                                                                       \
            k_rope_r<T_, TPV, false>                                                               \
                <<<g, 128, 0, s>>>((T_ *)y->data, (const T_ *)x->data, vn, tb, nvec, H, eps);      \
    } while (0)
#define L_ROPE_DH(T_)                                                                              \
    do {                                                                                           \
        if (Dh == 64)                                                                              \
            L_ROPE_R(T_, 8);                                                                       \
        else if (Dh == 128)                                                                        \
            L_ROPE_R(T_, 16);                                                                      \
        else                                                                                       \
            L_ROPE_R(T_, 32);                                                                      \
    } while (0)
        if (x->dtype == SL_DTYPE_BF16)
            L_ROPE_DH(bf16);
        else
            L_ROPE_DH(__half);
#undef L_ROPE_DH
#undef L_ROPE_R
        SLC_LAUNCHED(be);
        return SL_OK;
    }
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
            k_rope<AX, AY, N, true><<<grid, threads, 0, s>>>(ay, ax, nw, tb, T, H, Dh, eps);       \
        else                                                                                       \
            k_rope<AX, AY, (N < 2 ? 2 : N), false>                                                 \
                <<<grid, threads, 0, s>>>(ay, ax, nw, tb, T, H, Dh, eps);                          \
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

extern "C" sl_status slc_op_group_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, int groups,
                                       const sl_tensor *w, const sl_tensor *b, float eps,
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
    SLC_CHECK(slc_scratch(be,
                          slc_align((size_t)groups * nchunks * 3 * sizeof(float)) +
                              (size_t)groups * 2 * sizeof(float),
                          &scr));
    float *part = (float *)scr;
    float *stats = (float *)((char *)scr + slc_align((size_t)groups * nchunks * 3 * sizeof(float)));
    cudaStream_t s = slc_stream(be);
    dim3 pg((unsigned)nchunks, (unsigned)groups);
    if (slc_is_act(x->dtype)) {
        SLC_ACT_SWITCH(x->dtype, T_,
                       k_gn_partial<acc_t<T_>>
                       <<<pg, 256, 0, s>>>(acc_t<T_>{(T_ *)x->data}, gsize, chunk, part));
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
