/* backend/cuda/layout.cu — ops that move elements without arithmetic: permute, concat, slice
 * (one 4-D strided copy kernel), patchify / unpatchify (with dtype conversion), nearest-neighbour
 * upsampling.
 *
 * These run once or twice per step on small tensors (or once per VAE upsample), so they use one
 * scalar element per thread with 32-bit index arithmetic where the sizes allow; the strided copy
 * moves whole elements of 1, 2, 4 or 8 bytes. */
#include "backend/cuda/cuda_impl.h"

#define THREADS 256

static int grid_for(sl_backend *be, int64_t n) { return slc_blocks(n, THREADS, SLC(be)->sm_count * 16); }

/* ---- strided copy ---- */

struct box4 {
    int64_t ne[4], ds[4], ss[4];
};

template <typename E, typename I>
__global__ void k_copy_strided(E *__restrict__ dst, const E *__restrict__ src, box4 b, I total) {
    const I stride = (I)gridDim.x * blockDim.x;
    const I n3 = (I)b.ne[3], n2 = (I)b.ne[2], n1 = (I)b.ne[1];
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        I t = i;
        const I i3 = t % n3;
        t /= n3;
        const I i2 = t % n2;
        t /= n2;
        const I i1 = t % n1;
        const I i0 = t / n1;
        dst[i0 * (I)b.ds[0] + i1 * (I)b.ds[1] + i2 * (I)b.ds[2] + i3 * (I)b.ds[3]] =
            src[i0 * (I)b.ss[0] + i1 * (I)b.ss[1] + i2 * (I)b.ss[2] + i3 * (I)b.ss[3]];
    }
}

template <typename E>
static void launch_strided(sl_backend *be, void *dst, const void *src, const box4 &b, int64_t total,
                           bool small) {
    cudaStream_t s = slc_stream(be);
    if (small)
        k_copy_strided<E, int32_t><<<grid_for(be, total), THREADS, 0, s>>>((E *)dst, (const E *)src,
                                                                          b, (int32_t)total);
    else
        k_copy_strided<E, int64_t><<<grid_for(be, total), THREADS, 0, s>>>((E *)dst, (const E *)src,
                                                                          b, total);
}

sl_status slc_copy_strided(sl_backend *be, void *dst, const int64_t dstride[4], const void *src,
                           const int64_t sstride[4], const int64_t ne[4], size_t esize) {
    box4 b;
    int64_t total = 1, span = 1;
    for (int k = 0; k < 4; k++) {
        b.ne[k] = ne[k];
        b.ds[k] = dstride[k];
        b.ss[k] = sstride[k];
        total *= ne[k];
        /* the largest offset either side reaches must fit 32 bits for the int32 path */
        span += (ne[k] > 0 ? ne[k] - 1 : 0) * (dstride[k] > sstride[k] ? dstride[k] : sstride[k]);
    }
    if (!total) return SL_OK;
    /* whole box contiguous on both sides: one memcpy */
    if (ne[3] == 1 || (dstride[3] == 1 && sstride[3] == 1)) {
        bool dense = true;
        int64_t expect = 1;
        for (int k = 3; k >= 0; k--) {
            if (ne[k] == 1) continue;
            if (dstride[k] != expect || sstride[k] != expect) dense = false;
            expect *= ne[k];
        }
        if (dense) {
            SLC_TRY(be, cudaMemcpyAsync(dst, src, (size_t)total * esize, cudaMemcpyDeviceToDevice,
                                        slc_stream(be)));
            return SL_OK;
        }
    }
    const bool small = total < INT32_MAX && span < INT32_MAX;
    switch (esize) {
    case 1: launch_strided<uint8_t>(be, dst, src, b, total, small); break;
    case 2: launch_strided<uint16_t>(be, dst, src, b, total, small); break;
    case 4: launch_strided<uint32_t>(be, dst, src, b, total, small); break;
    case 8: launch_strided<uint64_t>(be, dst, src, b, total, small); break;
    default: return slc_fail(be, SL_ERR_UNSUPPORTED, "strided copy of %zu-byte elements", esize);
    }
    SLC_LAUNCHED(be);
    return SL_OK;
}

/* A tensor's shape padded to 4 dims (leading 1s) and its contiguous strides in elements. */
static void shape4(const sl_tensor *t, int64_t ne[4], int64_t st[4]) {
    const int pad = 4 - t->ndim;
    for (int k = 0; k < 4; k++) ne[k] = k < pad ? 1 : t->ne[k - pad];
    st[3] = 1;
    for (int k = 2; k >= 0; k--) st[k] = st[k + 1] * ne[k + 1];
}

extern "C" sl_status slc_op_permute(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                    const int perm[4]) {
    int64_t xne[4], xs[4], yne[4], ys[4], ss[4];
    shape4(x, xne, xs);
    shape4(y, yne, ys);
    const int pad = 4 - x->ndim;
    for (int k = 0; k < 4; k++) ss[k] = k < pad ? 0 : xs[pad + perm[k - pad]];
    return slc_copy_strided(be, y->data, ys, x->data, ss, yne, slc_esize(x->dtype));
}

extern "C" sl_status slc_op_concat(sl_backend *be, sl_tensor *y, const sl_tensor *a,
                                   const sl_tensor *b, int dim) {
    int64_t yne[4], ys[4], ane[4], as[4], bne[4], bs[4];
    shape4(y, yne, ys);
    shape4(a, ane, as);
    shape4(b, bne, bs);
    const int d4 = dim + 4 - a->ndim;
    const size_t es = slc_esize(a->dtype);
    SLC_CHECK(slc_copy_strided(be, y->data, ys, a->data, as, ane, es));
    char *yb = (char *)y->data + (size_t)(ane[d4] * ys[d4]) * es;
    return slc_copy_strided(be, yb, ys, b->data, bs, bne, es);
}

extern "C" sl_status slc_op_slice(sl_backend *be, sl_tensor *y, const sl_tensor *x, int dim,
                                  int64_t start) {
    int64_t yne[4], ys[4], xne[4], xs[4];
    shape4(y, yne, ys);
    shape4(x, xne, xs);
    const int d4 = dim + 4 - x->ndim;
    const size_t es = slc_esize(x->dtype);
    const char *xb = (const char *)x->data + (size_t)(start * xs[d4]) * es;
    return slc_copy_strided(be, y->data, ys, xb, xs, yne, es);
}

/* ---- patchify / unpatchify ---- */

/* Token t = h·Wt + w, feature f; image element (c, h·p + ph, w·p + pw). inverse: the image is the
 * output. One thread per element of the output. */
__global__ void k_patch(void *out, int ot, const void *in, int it, int64_t C, int64_t H, int64_t W,
                        int64_t p, int order, int inverse) {
    const int64_t Wt = W / p, F = p * p * C, n = C * H * W;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c, y, x;
        if (inverse) { /* i over the image */
            c = i / (H * W);
            const int64_t r = i - c * H * W;
            y = r / W;
            x = r - y * W;
        } else { /* i over the tokens */
            const int64_t t = i / F, f = i - t * F;
            int64_t ph, pw;
            if (order == SL_PATCH_PW_C) {
                ph = f / (p * C);
                pw = (f / C) % p;
                c = f % C;
            } else {
                c = f / (p * p);
                ph = (f / p) % p;
                pw = f % p;
            }
            y = (t / Wt) * p + ph;
            x = (t % Wt) * p + pw;
        }
        const int64_t ph = y % p, pw = x % p, t = (y / p) * Wt + x / p;
        const int64_t f = order == SL_PATCH_PW_C ? (ph * p + pw) * C + c : (c * p + ph) * p + pw;
        const int64_t ii = (c * H + y) * W + x, ti = t * F + f;
        if (inverse)
            st_any(out, ot, ii, ld_any(in, it, ti));
        else
            st_any(out, ot, ti, ld_any(in, it, ii));
    }
}

static sl_status patch(sl_backend *be, sl_tensor *out, const sl_tensor *in, const sl_tensor *img,
                       int p, sl_patch_order order, bool inverse) {
    if (order != SL_PATCH_PW_C && order != SL_PATCH_C_PW)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "patchify: unknown order %d", (int)order);
    const int64_t n = sl_tensor_numel(img);
    if (!n) return SL_OK;
    k_patch<<<grid_for(be, n), THREADS, 0, slc_stream(be)>>>(
        out->data, (int)out->dtype, in->data, (int)in->dtype, img->ne[0], img->ne[1], img->ne[2], p,
        (int)order, inverse ? 1 : 0);
    SLC_LAUNCHED(be);
    return SL_OK;
}

extern "C" sl_status slc_op_patchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                                     sl_patch_order order) {
    return patch(be, y, x, x, p, order, false);
}

extern "C" sl_status slc_op_unpatchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                                       sl_patch_order order) {
    return patch(be, y, x, y, p, order, true);
}

/* ---- upsample ---- */

template <typename TX, typename TY>
__global__ void k_upsample(TY *__restrict__ y, const TX *__restrict__ x, int64_t C, int64_t H,
                           int64_t W, int f) {
    const int64_t Ho = H * f, Wo = W * f, n = C * Ho * Wo;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i / (Ho * Wo), r = i - c * Ho * Wo, oy = r / Wo, ox = r - oy * Wo;
        y[i] = from_f<TY>(to_f(x[(c * H + oy / f) * W + ox / f]));
    }
}

extern "C" sl_status slc_op_upsample_nearest(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                             int factor) {
    const int64_t n = sl_tensor_numel(y);
    if (!n) return SL_OK;
    cudaStream_t s = slc_stream(be);
    SLC_ACT_SWITCH(x->dtype, TX, SLC_ACT_SWITCH(y->dtype, TY, k_upsample<TX, TY><<<grid_for(be, n), THREADS, 0, s>>>((TY *)y->data, (const TX *)x->data, x->ne[0], x->ne[1], x->ne[2], factor)));
    SLC_LAUNCHED(be);
    return SL_OK;
}
