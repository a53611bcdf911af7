/* CPU matmul (any weight dtype) and conv2d (im2col), both on OpenBLAS sgemm.
 *
 * matmul y[M,N] = x[M,K]·W[N,K]ᵀ + b: the weight is processed in tiles of NT rows. A pool thread
 * takes a tile, dequantises its rows into its own f32 scratch [NT, K] (an f32 weight is used in
 * place) and runs a single-threaded sgemm for y[:, tile]. The whole weight is never expanded;
 * per-thread scratch is NT·K floats (about 1 MiB) plus, for a non-f32 y, M·NT floats.
 *
 * conv2d: y[Cout, Ho·Wo] = W[Cout, Cin·kh·kw] · col[Cin·kh·kw, Ho·Wo], where col (im2col) is
 * built for a band of output rows at a time (about 4 MiB of scratch per thread), so scratch does
 * not grow with the image. A 1×1 stride-1 unpadded convolution reads x directly. */
#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/cpu/cpu_impl.h"

/* ---- matmul ---- */

typedef struct mm_job {
    sl_cpu *c;
    sl_tensor *y;
    const sl_tensor *w;
    const float *x;    /* [M, K] f32 */
    const float *bias; /* [N] f32 or NULL */
    int64_t M, K, N, nt;
    size_t wrow; /* bytes per weight row */
    atomic_int fail;
} mm_job;

static void mm_fn(void *arg, int64_t t0, int64_t t1, int tid) {
    mm_job *j = arg;
    int64_t M = j->M, K = j->K, N = j->N;
    bool wf32 = j->w->dtype == SL_DTYPE_F32, yf32 = j->y->dtype == SL_DTYPE_F32;
    size_t need = (wf32 ? 0 : (size_t)(j->nt * K)) + (yf32 ? 0 : (size_t)(M * j->nt));
    float *scr = need ? cpu_scratch(j->c, tid, need) : NULL;
    if (need && !scr) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *wt = scr, *ct = wf32 ? scr : scr + j->nt * K;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n0 = t * j->nt, nn = SL_MIN(j->nt, N - n0);
        const float *wp;
        if (wf32) {
            wp = (const float *)j->w->data + n0 * K;
        } else {
            const char *src = (const char *)j->w->data + (size_t)n0 * j->wrow;
            for (int64_t r = 0; r < nn; r++) cpu_load(j->w->dtype, src + (size_t)r * j->wrow, 0, wt + r * K, K);
            wp = wt;
        }
        float *cp = yf32 ? (float *)j->y->data + n0 : ct;
        int64_t ldc = yf32 ? N : nn;
        if (K > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nn, (int)K, 1.0f,
                        j->x, (int)K, wp, (int)K, 0.0f, cp, (int)ldc);
        } else {
            for (int64_t m = 0; m < M; m++) memset(cp + m * ldc, 0, (size_t)nn * sizeof(float));
        }
        if (j->bias)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < nn; n++) cp[m * ldc + n] += j->bias[n0 + n];
        if (!yf32)
            for (int64_t m = 0; m < M; m++) cpu_store(j->y->dtype, j->y->data, m * N + n0, cp + m * ldc, nn);
    }
}

sl_status cpu_matmul(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                     const sl_tensor *bias) {
    CPU_CHECK_DEV(be, "matmul", y, x, w, bias);
    sl_cpu *c = cpu_of(be);
    if (!cpu_can_load(w->dtype) || (bias && !cpu_can_load(bias->dtype)))
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "matmul: cpu backend cannot read %s weights",
                        sl_dtype_name(w->dtype));
    mm_job j = {.c = c, .y = y, .w = w};
    j.M = sl_tensor_nrows(x);
    j.K = sl_tensor_ncols(x);
    j.N = w->ne[0];
    if (j.M == 0 || j.N == 0) return SL_OK;
    if ((j.M | j.N | j.K) > 0x7fffffff)
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "matmul: dimensions beyond 2^31 (BLAS int)");
    j.wrow = sl_dtype_row_bytes(w->dtype, j.K);
    if (x->dtype == SL_DTYPE_F32) {
        j.x = x->data;
    } else {
        float *xf = cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_B), (size_t)(j.M * j.K));
        if (!xf) return cpu_fail(be, SL_ERR_OOM_HOST, "matmul: out of host memory converting x");
        cpu_load(x->dtype, x->data, 0, xf, j.M * j.K);
        j.x = xf;
    }
    if (bias) {
        float *bf = cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_A), (size_t)j.N);
        if (!bf) return cpu_fail(be, SL_ERR_OOM_HOST, "matmul: out of host memory");
        cpu_load(bias->dtype, bias->data, 0, bf, j.N);
        j.bias = bf;
    }
    /* Tile: about 1 MiB of f32 weight rows (4 MiB when M is large, so that sgemm packs x fewer
     * times), a multiple of 16 rows, and at least two tiles per thread when N allows, so that both
     * the dequantisation and the sgemm are shared out. */
    int64_t nt = (j.M >= 256 ? (int64_t)1 << 20 : (int64_t)1 << 18) / SL_MAX(j.K, (int64_t)1);
    int64_t per = (j.N + 2 * c->nthreads - 1) / (2 * c->nthreads);
    nt = SL_MIN(nt, per);
    nt = SL_MAX((int64_t)16, nt / 16 * 16);
    j.nt = SL_MIN(nt, j.N);
    atomic_init(&j.fail, 0);
    sl_pool_for(c->pool, (j.N + j.nt - 1) / j.nt, 1, mm_fn, &j);
    return atomic_load(&j.fail) ? cpu_fail(be, SL_ERR_OOM_HOST, "matmul: out of host memory for tiles")
                                : SL_OK;
}

/* ---- conv2d ---- */

typedef struct conv_job {
    sl_cpu *c;
    sl_tensor *y;
    const float *x; /* [Cin, H, W] f32 */
    const float *w; /* [Cout, Cin·kh·kw] f32 */
    const float *b; /* [Cout] or NULL */
    int64_t Cin, H, W, Cout, kh, kw, Ho, Wo, rows; /* rows: output rows per band */
    int stride, top, left;
    bool direct; /* 1×1, stride 1, no padding: x is already col */
    atomic_int fail;
} conv_job;

static void conv_fn(void *arg, int64_t b0, int64_t b1, int tid) {
    conv_job *j = arg;
    int64_t Ckk = j->Cin * j->kh * j->kw, HWo = j->Ho * j->Wo;
    bool yf32 = j->y->dtype == SL_DTYPE_F32;
    size_t need = (j->direct ? 0 : (size_t)(Ckk * j->rows * j->Wo)) +
                  (yf32 ? 0 : (size_t)(j->Cout * j->rows * j->Wo));
    float *scr = need ? cpu_scratch(j->c, tid, need) : NULL;
    if (need && !scr) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *col = scr, *ct = j->direct ? scr : scr + Ckk * j->rows * j->Wo;
    for (int64_t band = b0; band < b1; band++) {
        int64_t r0 = band * j->rows, nr = SL_MIN(j->rows, j->Ho - r0), ncol = nr * j->Wo;
        const float *B;
        int64_t ldb;
        if (j->direct) {
            B = j->x + r0 * j->W;
            ldb = j->H * j->W;
        } else {
            for (int64_t ci = 0; ci < j->Cin; ci++)
                for (int64_t dy = 0; dy < j->kh; dy++)
                    for (int64_t dx = 0; dx < j->kw; dx++) {
                        float *dst = col + ((ci * j->kh + dy) * j->kw + dx) * ncol;
                        const float *xc = j->x + ci * j->H * j->W;
                        for (int64_t r = 0; r < nr; r++) {
                            int64_t iy = (r0 + r) * j->stride - j->top + dy;
                            float *d = dst + r * j->Wo;
                            if (iy < 0 || iy >= j->H) {
                                memset(d, 0, (size_t)j->Wo * sizeof(float));
                                continue;
                            }
                            const float *xr = xc + iy * j->W;
                            for (int64_t ox = 0; ox < j->Wo; ox++) {
                                int64_t ix = ox * j->stride - j->left + dx;
                                d[ox] = ix >= 0 && ix < j->W ? xr[ix] : 0.0f;
                            }
                        }
                    }
            B = col;
            ldb = ncol;
        }
        float *C = yf32 ? (float *)j->y->data + r0 * j->Wo : ct;
        int64_t ldc = yf32 ? HWo : ncol;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->Cout, (int)ncol, (int)Ckk,
                    1.0f, j->w, (int)Ckk, B, (int)ldb, 0.0f, C, (int)ldc);
        for (int64_t co = 0; co < j->Cout; co++) {
            float *cr = C + co * ldc;
            if (j->b)
                for (int64_t i = 0; i < ncol; i++) cr[i] += j->b[co];
            if (!yf32) cpu_store(j->y->dtype, j->y->data, co * HWo + r0 * j->Wo, cr, ncol);
        }
    }
}

sl_status cpu_conv2d(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                     const sl_tensor *b, int stride, const int pad[4]) {
    CPU_CHECK_DEV(be, "conv2d", y, x, w, b);
    sl_cpu *c = cpu_of(be);
    if (!cpu_can_load(w->dtype))
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "conv2d: cpu backend cannot read %s weights",
                        sl_dtype_name(w->dtype));
    conv_job j = {.c = c, .y = y, .stride = stride, .top = pad[0], .left = pad[2]};
    j.Cin = x->ne[0];
    j.H = x->ne[1];
    j.W = x->ne[2];
    j.Cout = w->ne[0];
    j.kh = w->ne[2];
    j.kw = w->ne[3];
    j.Ho = y->ne[1];
    j.Wo = y->ne[2];
    int64_t Ckk = j.Cin * j.kh * j.kw;
    if (j.Cout * j.Ho * j.Wo == 0) return SL_OK;
    if (Ckk == 0) {
        float v = 0; /* no inputs: y = bias */
        for (int64_t co = 0; co < j.Cout; co++) {
            if (b) cpu_load(b->dtype, b->data, co, &v, 1);
            for (int64_t i = 0; i < j.Ho * j.Wo; i++) cpu_store(y->dtype, y->data, co * j.Ho * j.Wo + i, &v, 1);
        }
        return SL_OK;
    }
    j.direct = j.kh == 1 && j.kw == 1 && stride == 1 && !pad[0] && !pad[1] && !pad[2] && !pad[3];
    if (w->dtype == SL_DTYPE_F32) {
        j.w = w->data;
    } else { /* conv weights are small (≤ 2.4 M values in the Flux VAE): expand once per call */
        float *wf = cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_A), (size_t)(j.Cout * Ckk));
        if (!wf) return cpu_fail(be, SL_ERR_OOM_HOST, "conv2d: out of host memory");
        cpu_load(w->dtype, w->data, 0, wf, j.Cout * Ckk);
        j.w = wf;
    }
    if (b) {
        float *bf = cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_B), (size_t)j.Cout);
        if (!bf) return cpu_fail(be, SL_ERR_OOM_HOST, "conv2d: out of host memory");
        cpu_load(b->dtype, b->data, 0, bf, j.Cout);
        j.b = bf;
    }
    if (x->dtype == SL_DTYPE_F32) {
        j.x = x->data;
    } else {
        int64_t n = sl_tensor_numel(x);
        float *xf = cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_C), (size_t)n);
        if (!xf) return cpu_fail(be, SL_ERR_OOM_HOST, "conv2d: out of host memory converting x");
        cpu_load(x->dtype, x->data, 0, xf, n);
        j.x = xf;
    }
    /* bands of about 1 M col values (4 MiB), at least two bands per thread when Ho allows */
    int64_t rows = SL_MAX((int64_t)1, ((int64_t)1 << 20) / SL_MAX(Ckk * j.Wo, (int64_t)1));
    int64_t per = (j.Ho + 2 * c->nthreads - 1) / (2 * c->nthreads);
    j.rows = SL_MAX((int64_t)1, SL_MIN(rows, per));
    atomic_init(&j.fail, 0);
    sl_pool_for(c->pool, (j.Ho + j.rows - 1) / j.rows, 1, conv_fn, &j);
    return atomic_load(&j.fail) ? cpu_fail(be, SL_ERR_OOM_HOST, "conv2d: out of host memory for im2col")
                                : SL_OK;
}
