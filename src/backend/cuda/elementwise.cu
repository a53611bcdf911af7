/* backend/cuda/elementwise.cu — element-wise ops: binary, scale, unary, glu, fill, repeat_rows,
 * timestep_embed, and the dtype conversions (copy between activation dtypes, 2-D strided
 * conversion with an optional bias used by the GEMM and conv paths).
 *
 * Layers (STYLE §7): kernels; launchers taking the stream; the op entry points. Fast kernels are
 * templated on the activation types and move 8 elements per access (16 bytes for bf16/f16, two
 * 16-byte accesses for f32) when every pointer is aligned to 8 elements; otherwise (views at odd
 * offsets) the same kernel runs with 1 element per access. Mixed-dtype operand sets that have no
 * template instance run through a generic kernel that reads each operand's dtype at run time.
 * All arithmetic is f32; results are rounded once to the output dtype (RNE). */
#include <math.h>

#include "backend/cuda/cuda_impl.h"

#define THREADS 256

static int grid_cap(sl_backend *be) { return SLC(be)->sm_count * 16; }

/* ---- element functions ---- */

__device__ __forceinline__ float unary_f(int op, float x) {
    switch (op) {
    case SL_UNARY_SILU: return x / (1.0f + expf(-x));
    case SL_UNARY_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    case SL_UNARY_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case SL_UNARY_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case SL_UNARY_TANH: return tanhf(x);
    case SL_UNARY_RELU: return x > 0.0f ? x : 0.0f;
    case SL_UNARY_NEG: return -x;
    default: return expf(x); /* SL_UNARY_EXP */
    }
}

__device__ __forceinline__ float binary_f(int op, float a, float b) {
    return op == SL_BINARY_ADD ? a + b : op == SL_BINARY_SUB ? a - b : a * b;
}

struct f_unary {
    int op;
    __device__ float operator()(float x) const { return unary_f(op, x); }
};
struct f_scale {
    float s, b;
    __device__ float operator()(float x) const { return x * s + b; }
};
struct f_ident {
    __device__ float operator()(float x) const { return x; }
};

/* ---- kernels ---- */

/* y = f(x) over n elements, N per access (N = 8 needs 8-element alignment of x and y). */
template <typename TX, typename TY, int N, typename F>
__global__ void k_map(TY *__restrict__ y, const TX *__restrict__ x, int64_t n, F f) {
    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t nv = n / N;
    for (int64_t i = tid; i < nv; i += stride) {
        float v[N];
        ld_vec<TX, N>(x + i * N, v);
#pragma unroll
        for (int j = 0; j < N; j++) v[j] = f(v[j]);
        st_vec<TY, N>(y + i * N, v);
    }
    const int64_t t = nv * N + tid; /* fewer than N left: the first threads take them */
    if (tid < N && t < n) y[t] = from_f<TY>(f(to_f(x[t])));
}

/* The same with operand dtypes read at run time (scalar accesses). */
template <typename F>
__global__ void k_map_any(void *y, int yt, const void *x, int xt, int64_t n, F f) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        st_any(y, yt, i, f(ld_any(x, xt, i)));
}

/* y = a ∘ b; bmode 0: b has a's shape, 1: b is a row of `cols` broadcast, 2: b is one element. */
template <typename T, int N>
__global__ void k_binary(T *__restrict__ y, const T *__restrict__ a, const T *__restrict__ b,
                         int64_t n, int64_t cols, int bmode, int op) {
    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t nv = n / N;
    const float b0 = bmode == 2 ? to_f(b[0]) : 0.0f;
    for (int64_t i = tid; i < nv; i += stride) {
        float va[N], vb[N];
        ld_vec<T, N>(a + i * N, va);
        if (bmode == 0) {
            ld_vec<T, N>(b + i * N, vb);
        } else if (bmode == 1) {
            ld_vec<T, N>(b + (i * N) % cols, vb); /* cols % N == 0: never straddles a row */
        } else {
#pragma unroll
            for (int j = 0; j < N; j++) vb[j] = b0;
        }
#pragma unroll
        for (int j = 0; j < N; j++) va[j] = binary_f(op, va[j], vb[j]);
        st_vec<T, N>(y + i * N, va);
    }
    const int64_t t = nv * N + tid;
    if (tid < N && t < n) {
        float vb = bmode == 0 ? to_f(b[t]) : bmode == 1 ? to_f(b[t % cols]) : b0;
        y[t] = from_f<T>(binary_f(op, to_f(a[t]), vb));
    }
}

__global__ void k_binary_any(void *y, int yt, const void *a, int at, const void *b, int bt,
                             int64_t n, int64_t cols, int bmode, int op) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) {
        int64_t j = bmode == 0 ? i : bmode == 1 ? i % cols : 0;
        st_any(y, yt, i, binary_f(op, ld_any(a, at, i), ld_any(b, bt, j)));
    }
}

/* y = act(g) ⊙ u */
template <typename T, int N>
__global__ void k_glu(T *__restrict__ y, const T *__restrict__ g, const T *__restrict__ u,
                      int64_t n, int act) {
    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t nv = n / N;
    for (int64_t i = tid; i < nv; i += stride) {
        float vg[N], vu[N];
        ld_vec<T, N>(g + i * N, vg);
        ld_vec<T, N>(u + i * N, vu);
#pragma unroll
        for (int j = 0; j < N; j++) vg[j] = unary_f(act, vg[j]) * vu[j];
        st_vec<T, N>(y + i * N, vg);
    }
    const int64_t t = nv * N + tid;
    if (tid < N && t < n) y[t] = from_f<T>(unary_f(act, to_f(g[t])) * to_f(u[t]));
}

__global__ void k_glu_any(void *y, int yt, const void *g, int gt, const void *u, int ut, int64_t n,
                          int act) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        st_any(y, yt, i, unary_f(act, ld_any(g, gt, i)) * ld_any(u, ut, i));
}

template <typename T, int N> __global__ void k_fill(T *__restrict__ y, int64_t n, float value) {
    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t nv = n / N;
    float v[N];
#pragma unroll
    for (int j = 0; j < N; j++) v[j] = value;
    for (int64_t i = tid; i < nv; i += stride) st_vec<T, N>(y + i * N, v);
    const int64_t t = nv * N + tid;
    if (tid < N && t < n) y[t] = from_f<T>(value);
}

/* dst[r, c] = src[r, c] (+ bias[c]), strided rows; any dtypes (bias: any scalar float). */
__global__ void k_convert_2d(void *dst, int dt, int64_t ldd, const void *src, int st, int64_t lds,
                             int64_t R, int64_t C, const void *bias, int bt) {
    const int64_t n = R * C, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride) {
        int64_t r = i / C, c = i - r * C;
        float v = ld_any(src, st, r * lds + c);
        if (bias) v += ld_any(bias, bt, c);
        st_any(dst, dt, r * ldd + c, v);
    }
}

/* y [rows, D] = x [D] (x any scalar float dtype). */
template <typename T>
__global__ void k_repeat_rows(T *__restrict__ y, const void *x, int xt, int64_t rows, int64_t D) {
    const int64_t n = rows * D, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = from_f<T>(ld_any(x, xt, i % D));
}

#define TS_MAX 64
struct ts_args {
    float t[TS_MAX];
};
/* y [n, dim] f32; row i: [cos(arg_k) …, sin(arg_k) …] (or sin first), arg_k = (t_i·t_scale)·freq_k,
 * freq_k = exp(nl·k/half) with nl = −ln(max_period) rounded from double on the host: the CPU
 * reference's order. GPU expf/cosf differ from glibc's by an ulp or two (≈6e-5 at |arg| ≈ 1000). */
__global__ void k_timestep(float *y, ts_args a, int n, int dim, float t_scale, float nl,
                           int cos_first) {
    const int half = dim / 2;
    const int64_t total = (int64_t)n * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int r = (int)(i / half), k = (int)(i - (int64_t)r * half);
        float freq = expf(nl * (float)k / (float)half);
        float arg = a.t[r] * t_scale * freq;
        float cv = cosf(arg), sv = sinf(arg);
        float *row = y + (int64_t)r * dim;
        row[k] = cos_first ? cv : sv;
        row[half + k] = cos_first ? sv : cv;
    }
}

/* ---- launchers ---- */

template <typename TX, typename TY, typename F>
static sl_status launch_map(sl_backend *be, void *y, const void *x, int64_t n, F f) {
    cudaStream_t s = slc_stream(be);
    bool v8 = slc_aligned(x, 8 * sizeof(TX)) && slc_aligned(y, 8 * sizeof(TY));
    int grid = slc_blocks(v8 ? n / 8 + 1 : n, THREADS, grid_cap(be));
    if (v8)
        k_map<TX, TY, 8, F><<<grid, THREADS, 0, s>>>((TY *)y, (const TX *)x, n, f);
    else
        k_map<TX, TY, 1, F><<<grid, THREADS, 0, s>>>((TY *)y, (const TX *)x, n, f);
    SLC_LAUNCHED(be);
    return SL_OK;
}

template <typename F>
static sl_status launch_map_any(sl_backend *be, void *y, sl_dtype yt, const void *x, sl_dtype xt,
                                int64_t n, F f) {
    k_map_any<F><<<slc_blocks(n, THREADS, grid_cap(be)), THREADS, 0, slc_stream(be)>>>(
        y, (int)yt, x, (int)xt, n, f);
    SLC_LAUNCHED(be);
    return SL_OK;
}

/* f applied to x into y; the fast path when the dtypes match, generic otherwise. */
template <typename F>
static sl_status map_same_or_any(sl_backend *be, sl_tensor *y, const sl_tensor *x, F f) {
    int64_t n = sl_tensor_numel(x);
    if (!n) return SL_OK;
    if (x->dtype == y->dtype) {
        SLC_ACT_SWITCH(x->dtype, T, return launch_map<T, T, F>(be, y->data, x->data, n, f));
    }
    return launch_map_any(be, y->data, y->dtype, x->data, x->dtype, n, f);
}

sl_status slc_convert(sl_backend *be, void *dst, sl_dtype dt, const void *src, sl_dtype st,
                      int64_t n) {
    if (!n) return SL_OK;
    SL_ASSERT(slc_is_act(dt));
    if (!slc_is_act(st)) return launch_map_any(be, dst, dt, src, st, n, f_ident());
    SLC_ACT_SWITCH(st, TX, SLC_ACT_SWITCH(dt, TY, return launch_map<TX, TY>(be, dst, src, n, f_ident())));
    return SL_OK;
}

sl_status slc_convert_2d(sl_backend *be, void *dst, sl_dtype dt, int64_t ldd, const void *src,
                         sl_dtype st, int64_t lds, int64_t R, int64_t C, const void *bias,
                         sl_dtype bt) {
    if (R * C == 0) return SL_OK;
    k_convert_2d<<<slc_blocks(R * C, THREADS, grid_cap(be)), THREADS, 0, slc_stream(be)>>>(
        dst, (int)dt, ldd, src, (int)st, lds, R, C, bias, (int)bt);
    SLC_LAUNCHED(be);
    return SL_OK;
}

/* ---- op entry points ---- */

extern "C" sl_status slc_op_scale(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s,
                                  float bias) {
    return map_same_or_any(be, y, x, f_scale{s, bias});
}

extern "C" sl_status slc_op_unary(sl_backend *be, sl_unary_op op, sl_tensor *y, const sl_tensor *x) {
    if ((unsigned)op > SL_UNARY_EXP) return slc_fail(be, SL_ERR_UNSUPPORTED, "unary op %d", (int)op);
    return map_same_or_any(be, y, x, f_unary{(int)op});
}

extern "C" sl_status slc_op_binary(sl_backend *be, sl_binary_op op, sl_tensor *y,
                                   const sl_tensor *a, const sl_tensor *b) {
    int64_t n = sl_tensor_numel(a), nb = sl_tensor_numel(b), cols = sl_tensor_ncols(a);
    if (!n) return SL_OK;
    int bmode = nb == n ? 0 : nb == 1 ? 2 : 1;
    cudaStream_t s = slc_stream(be);
    if (a->dtype == b->dtype && a->dtype == y->dtype) {
        SLC_ACT_SWITCH(a->dtype, T, {
            bool v8 = slc_aligned(a->data, 8 * sizeof(T)) && slc_aligned(b->data, 8 * sizeof(T)) &&
                      slc_aligned(y->data, 8 * sizeof(T)) && (bmode != 1 || cols % 8 == 0);
            int grid = slc_blocks(v8 ? n / 8 + 1 : n, THREADS, grid_cap(be));
            if (v8)
                k_binary<T, 8><<<grid, THREADS, 0, s>>>((T *)y->data, (const T *)a->data,
                                                        (const T *)b->data, n, cols, bmode, (int)op);
            else
                k_binary<T, 1><<<grid, THREADS, 0, s>>>((T *)y->data, (const T *)a->data,
                                                        (const T *)b->data, n, cols, bmode, (int)op);
        });
    } else {
        k_binary_any<<<slc_blocks(n, THREADS, grid_cap(be)), THREADS, 0, s>>>(
            y->data, (int)y->dtype, a->data, (int)a->dtype, b->data, (int)b->dtype, n, cols, bmode,
            (int)op);
    }
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_glu(sl_backend *be, sl_unary_op act, sl_tensor *y, const sl_tensor *g,
                                const sl_tensor *u) {
    int64_t n = sl_tensor_numel(y);
    if (!n) return SL_OK;
    cudaStream_t s = slc_stream(be);
    if (g->dtype == u->dtype && g->dtype == y->dtype) {
        SLC_ACT_SWITCH(g->dtype, T, {
            bool v8 = slc_aligned(g->data, 8 * sizeof(T)) && slc_aligned(u->data, 8 * sizeof(T)) &&
                      slc_aligned(y->data, 8 * sizeof(T));
            int grid = slc_blocks(v8 ? n / 8 + 1 : n, THREADS, grid_cap(be));
            if (v8)
                k_glu<T, 8><<<grid, THREADS, 0, s>>>((T *)y->data, (const T *)g->data,
                                                     (const T *)u->data, n, (int)act);
            else
                k_glu<T, 1><<<grid, THREADS, 0, s>>>((T *)y->data, (const T *)g->data,
                                                     (const T *)u->data, n, (int)act);
        });
    } else {
        k_glu_any<<<slc_blocks(n, THREADS, grid_cap(be)), THREADS, 0, s>>>(
            y->data, (int)y->dtype, g->data, (int)g->dtype, u->data, (int)u->dtype, n, (int)act);
    }
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_fill(sl_backend *be, sl_tensor *y, float value) {
    int64_t n = sl_tensor_numel(y);
    if (!n) return SL_OK;
    cudaStream_t s = slc_stream(be);
    SLC_ACT_SWITCH(y->dtype, T, {
        bool v8 = slc_aligned(y->data, 8 * sizeof(T));
        int grid = slc_blocks(v8 ? n / 8 + 1 : n, THREADS, grid_cap(be));
        if (v8)
            k_fill<T, 8><<<grid, THREADS, 0, s>>>((T *)y->data, n, value);
        else
            k_fill<T, 1><<<grid, THREADS, 0, s>>>((T *)y->data, n, value);
    });
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_repeat_rows(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    int64_t D = sl_tensor_ncols(y), rows = sl_tensor_nrows(y);
    if (!slc_is_scalar_float(x->dtype))
        return slc_fail(be, SL_ERR_UNSUPPORTED, "repeat_rows: x dtype %s", sl_dtype_name(x->dtype));
    if (!rows || !D) return SL_OK;
    SLC_ACT_SWITCH(y->dtype, T,
                   k_repeat_rows<T><<<slc_blocks(rows * D, THREADS, grid_cap(be)), THREADS, 0,
                                      slc_stream(be)>>>((T *)y->data, x->data, (int)x->dtype, rows, D));
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_timestep_embed(sl_backend *be, sl_tensor *y, const float *t, int n,
                                           float t_scale, float max_period, bool cos_first) {
    int dim = (int)y->ne[1];
    for (int r0 = 0; r0 < n; r0 += TS_MAX) {
        int m = n - r0 < TS_MAX ? n - r0 : TS_MAX;
        ts_args a;
        for (int i = 0; i < TS_MAX; i++) a.t[i] = i < m ? t[r0 + i] : 0.0f;
        int64_t total = (int64_t)m * (dim / 2);
        if (!total) continue;
        k_timestep<<<slc_blocks(total, THREADS, grid_cap(be)), THREADS, 0, slc_stream(be)>>>(
            (float *)y->data + (int64_t)r0 * dim, a, m, dim, t_scale, (float)-log((double)max_period),
            cos_first);
        SLC_LAUNCHED(be);
    }
    return SL_OK;
}
