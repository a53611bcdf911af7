/* backend/cuda/conv.cu — conv2d y [Cout, Ho, Wo] = conv(x [Cin, H, W], w [Cout, Cin, kh, kw]) + b.
 *
 * As a GEMM: Y [Cout, P] = W [Cout, Kc] · Col [Kc, P] with Kc = Cin·kh·kw and P = Ho·Wo. Col is
 * built by an im2col kernel in column tiles of Pc output pixels (Pc chosen so one tile stays within
 * the scratch budget, SLUICE_CUDA_SCRATCH_MB), each tile followed by its cuBLAS GEMM; a 1×1
 * convolution with stride 1 and no padding uses x itself as Col. The GEMM runs in x's dtype with
 * f32 accumulation (f32 on TF32 tensor cores unless SLUICE_CUDA_F32_GEMM=f32); weights stored in
 * another float dtype are converted once per call into scratch. The bias is written into the
 * output first and the GEMM accumulates onto it (beta = 1).
 *
 * Cost note: im2col writes kh·kw copies of the input. For the VAE's 3×3 convolutions at 1024²
 * that traffic, not the GEMM, dominates; an implicit-GEMM kernel would remove it. */
#include "backend/cuda/cuda_impl.h"

/* col [Kc, Pc] (ld Pc) for output pixels [p0, p0 + Pc) */
template <typename T>
__global__ void k_im2col(T *__restrict__ col, const T *__restrict__ x, int64_t Cin, int64_t H,
                         int64_t W, int kh, int kw, int stride, int pt, int pl, int64_t Wo,
                         int64_t p0, int64_t Pc) {
    const int64_t Kc = Cin * kh * kw, n = Kc * Pc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t kc = i / Pc, pp = i - kc * Pc, p = p0 + pp;
        const int64_t oy = p / Wo, ox = p - oy * Wo;
        const int64_t ci = kc / (kh * kw);
        const int r = (int)(kc - ci * kh * kw), ky = r / kw, kx = r - ky * kw;
        const int64_t iy = oy * stride - pt + ky, ix = ox * stride - pl + kx;
        col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(ci * H + iy) * W + ix] : from_f<T>(0.0f);
    }
}

/* dst[r, c] (ld) = bias[r] (any scalar float dtype) or 0 */
__global__ void k_rowfill(void *dst, int dt, int64_t ld, int64_t R, int64_t C, const void *bias,
                          int bt) {
    const int64_t n = R * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / C, c = i - r * C;
        st_any(dst, dt, r * ld + c, bias ? ld_any(bias, bt, r) : 0.0f);
    }
}

static sl_status rowfill(sl_backend *be, void *dst, sl_dtype dt, int64_t ld, int64_t R, int64_t C,
                         const sl_tensor *b) {
    k_rowfill<<<slc_blocks(R * C, 256, SLC(be)->sm_count * 16), 256, 0, slc_stream(be)>>>(
        dst, (int)dt, ld, R, C, b ? b->data : NULL, b ? (int)b->dtype : 0);
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_conv2d(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                   const sl_tensor *w, const sl_tensor *b, int stride,
                                   const int pad[4]) {
    const int64_t Cin = x->ne[0], H = x->ne[1], W = x->ne[2];
    const int64_t Cout = w->ne[0], kh = w->ne[2], kw = w->ne[3];
    const int64_t Ho = y->ne[1], Wo = y->ne[2], P = Ho * Wo, Kc = Cin * kh * kw;
    if (!Cout || !P) return SL_OK;
    if (!slc_is_scalar_float(w->dtype) || (b && !slc_is_scalar_float(b->dtype)))
        return slc_fail(be, SL_ERR_UNSUPPORTED, "conv2d: weight %s / bias %s on the CUDA backend",
                        sl_dtype_name(w->dtype), b ? sl_dtype_name(b->dtype) : "-");
    const sl_dtype G = x->dtype;
    const size_t eg = slc_esize(G), cap = SLC(be)->scratch_cap;
    const bool direct_col = kh == 1 && kw == 1 && stride == 1 && !pad[0] && !pad[1] && !pad[2] &&
                            !pad[3];
    const bool ydirect = y->dtype == G || y->dtype == SL_DTYPE_F32;
    int64_t Pc = P;
    if (!direct_col) {
        Pc = (int64_t)(cap / ((size_t)(Kc ? Kc : 1) * eg));
        if (Pc >= 256) Pc = Pc / 256 * 256;
    }
    if (!ydirect) {
        int64_t t = (int64_t)(cap / ((size_t)Cout * 4));
        if (t < Pc) Pc = t;
    }
    if (Pc < 1) Pc = 1;
    if (Pc > P) Pc = P;
    const size_t wbytes = w->dtype == G ? 0 : slc_align((size_t)Cout * Kc * eg);
    const size_t cbytes = direct_col ? 0 : slc_align((size_t)Kc * Pc * eg);
    const size_t tbytes = ydirect ? 0 : slc_align((size_t)Cout * Pc * 4);
    char *scr = NULL;
    if (wbytes + cbytes + tbytes) SLC_CHECK(slc_scratch(be, wbytes + cbytes + tbytes, (void **)&scr));
    const void *wg = w->data;
    if (wbytes) {
        SLC_CHECK(slc_convert(be, scr, G, w->data, w->dtype, Cout * Kc));
        wg = scr;
    }
    void *col = scr + wbytes, *tmp = scr + wbytes + cbytes;
    if (!Kc) return rowfill(be, y->data, y->dtype, P, Cout, P, b);
    if (ydirect && b) SLC_CHECK(rowfill(be, y->data, y->dtype, P, Cout, P, b));
    const size_t ey = slc_esize(y->dtype);
    cudaStream_t s = slc_stream(be);
    for (int64_t p0 = 0; p0 < P; p0 += Pc) {
        const int64_t pc = P - p0 < Pc ? P - p0 : Pc;
        const void *A;
        int64_t lda;
        if (direct_col) {
            A = (const char *)x->data + (size_t)p0 * eg;
            lda = P;
        } else {
            SLC_ACT_SWITCH(G, T,
                           k_im2col<T><<<slc_blocks(Kc * pc, 256, SLC(be)->sm_count * 16), 256, 0, s>>>(
                               (T *)col, (const T *)x->data, Cin, H, W, (int)kh, (int)kw, stride,
                               pad[0], pad[2], Wo, p0, pc));
            SLC_LAUNCHED(be);
            A = col;
            lda = pc;
        }
        /* Yᵀ tile (pc × Cout, col-major) = Colᵀ (pc × Kc) · Wᵀ (Kc × Cout) */
        if (ydirect) {
            SLC_CHECK(slc_gemm_ex(be, false, false, pc, Cout, Kc, 1.0f, A, lda, wg, Kc, G,
                                  b ? 1.0f : 0.0f, (char *)y->data + (size_t)p0 * ey, P, y->dtype));
        } else {
            SLC_CHECK(rowfill(be, tmp, SL_DTYPE_F32, pc, Cout, pc, b));
            SLC_CHECK(slc_gemm_ex(be, false, false, pc, Cout, Kc, 1.0f, A, lda, wg, Kc, G, 1.0f, tmp,
                                  pc, SL_DTYPE_F32));
            SLC_CHECK(slc_convert_2d(be, (char *)y->data + (size_t)p0 * ey, y->dtype, P, tmp,
                                     SL_DTYPE_F32, pc, Cout, pc, NULL, SL_DTYPE_F32));
        }
    }
    return SL_OK;
}
