/* backend/cuda/dequant.cu — turning rows of any weight dtype (fp8 and every GGUF block type)
 * into activation dtypes: the copy and get_rows ops, and the per-chunk weight dequantisation the
 * GEMM path runs before cuBLASLt.
 *
 * One kernel per source type (a template on the type id): a thread produces 8 consecutive
 * elements of one row (8-element groups never straddle a block or a sub-block scale of any GGUF
 * type) and stores them as one 16-byte access when the output allows. Values follow core/quant.c
 * (formats.md §4) exactly: every product and sum uses the _rn intrinsics, which nvcc never
 * contracts into FMAs, in the reference's evaluation order; the f32 result is then rounded once to
 * the output dtype. Block fields are read byte-wise (blocks are only 2-byte aligned). */
#include <math.h>

#include "backend/cuda/cuda_impl.h"

__device__ __forceinline__ float h16(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

/* o[j] = element e0 + j of the row at `row` (e0 a multiple of 8, whole group inside the row for
 * block types; scalar types may end early, callers guard with ncols). */
template <int QT>
__device__ __forceinline__ void deq8(const uint8_t *__restrict__ row, int64_t e0, int64_t ncols,
                                     float (&o)[8]) {
    if (QT == SL_DTYPE_F32 || QT == SL_DTYPE_BF16 || QT == SL_DTYPE_F16 ||
        QT == SL_DTYPE_F8_E4M3 || QT == SL_DTYPE_F8_E5M2) {
#pragma unroll
        for (int j = 0; j < 8; j++) o[j] = e0 + j < ncols ? ld_any(row, QT, e0 + j) : 0.0f;
    } else if (QT == SL_DTYPE_Q4_0 || QT == SL_DTYPE_Q4_1 || QT == SL_DTYPE_Q5_0 ||
               QT == SL_DTYPE_Q5_1) {
        const int bs = QT == SL_DTYPE_Q4_0 ? 18 : QT == SL_DTYPE_Q4_1 ? 20 : QT == SL_DTYPE_Q5_0 ? 22 : 24;
        const uint8_t *b = row + (e0 / 32) * bs;
        const int l = (int)(e0 % 32);
        const float d = h16(b);
        const float m = (QT == SL_DTYPE_Q4_1 || QT == SL_DTYPE_Q5_1) ? h16(b + 2) : 0.0f;
        uint32_t qh = 0;
        const uint8_t *qs;
        if (QT == SL_DTYPE_Q5_0) {
            qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
            qs = b + 6;
        } else if (QT == SL_DTYPE_Q5_1) {
            qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
            qs = b + 8;
        } else {
            qs = b + (QT == SL_DTYPE_Q4_0 ? 2 : 4);
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int e = l + j;
            int q = e < 16 ? (qs[e] & 15) : (qs[e - 16] >> 4);
            if (QT == SL_DTYPE_Q5_0 || QT == SL_DTYPE_Q5_1) q |= (int)((qh >> e) & 1u) << 4;
            if (QT == SL_DTYPE_Q4_0) o[j] = __fmul_rn((float)(q - 8), d);
            else if (QT == SL_DTYPE_Q5_0) o[j] = __fmul_rn((float)(q - 16), d);
            else o[j] = __fadd_rn(__fmul_rn((float)q, d), m);
        }
    } else if (QT == SL_DTYPE_Q8_0) {
        const uint8_t *b = row + (e0 / 32) * 34;
        const int l = (int)(e0 % 32);
        const float d = h16(b);
        const uint16_t *q2 = reinterpret_cast<const uint16_t *>(b + 2 + l); /* 2-byte aligned */
#pragma unroll
        for (int j = 0; j < 4; j++) {
            uint16_t w = q2[j];
            o[2 * j] = __fmul_rn((float)(int8_t)(w & 0xff), d);
            o[2 * j + 1] = __fmul_rn((float)(int8_t)(w >> 8), d);
        }
    } else if (QT == SL_DTYPE_Q2_K) {
        const uint8_t *b = row + (e0 / 256) * 84;
        const int l = (int)(e0 % 256);
        const uint8_t sc = b[l / 16];
        const float d = h16(b + 80), dmin = h16(b + 82);
        const float dl = __fmul_rn(d, (float)(sc & 15)), ml = __fmul_rn(dmin, (float)(sc >> 4));
        const int h = l / 128, t = (l % 128) / 32, r0 = l % 32;
        const uint8_t *qs = b + 16 + 32 * h + r0;
#pragma unroll
        for (int j = 0; j < 8; j++)
            o[j] = __fsub_rn(__fmul_rn(dl, (float)((qs[j] >> (2 * t)) & 3)), ml);
    } else if (QT == SL_DTYPE_Q3_K) {
        const uint8_t *b = row + (e0 / 256) * 110;
        const int l = (int)(e0 % 256);
        const uint8_t *B = b + 96;
        const int sj = l / 16;
        const int lo4 = sj < 8 ? (B[sj] & 15) : (B[sj - 8] >> 4);
        const int hi2 = (B[8 + (sj & 3)] >> (2 * (sj >> 2))) & 3;
        const float dl = __fmul_rn(h16(b + 108), (float)((lo4 | hi2 << 4) - 32));
        const int h = l / 128, t = (l % 128) / 32, r0 = l % 32, k = l / 32;
        const uint8_t *qs = b + 32 + 32 * h + r0, *hm = b + r0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int v = ((qs[j] >> (2 * t)) & 3) - (((hm[j] >> k) & 1) ? 0 : 4);
            o[j] = __fmul_rn(dl, (float)v);
        }
    } else if (QT == SL_DTYPE_Q4_K || QT == SL_DTYPE_Q5_K) {
        const int bs = QT == SL_DTYPE_Q4_K ? 144 : 176;
        const uint8_t *b = row + (e0 / 256) * bs;
        const int l = (int)(e0 % 256);
        const float d = h16(b), dmin = h16(b + 2);
        const uint8_t *B = b + 4;
        const int sb = l / 32;
        int sc, mn;
        if (sb < 4) {
            sc = B[sb] & 63;
            mn = B[sb + 4] & 63;
        } else {
            sc = (B[sb + 4] & 15) | ((B[sb - 4] >> 6) << 4);
            mn = (B[sb + 4] >> 4) | ((B[sb] >> 6) << 4);
        }
        const float d1 = __fmul_rn(d, (float)sc), m1 = __fmul_rn(dmin, (float)mn);
        const int c = l / 64, r = l % 64;
        const uint8_t *qs = b + (QT == SL_DTYPE_Q4_K ? 16 : 48) + 32 * c + (r % 32);
        const uint8_t *qh = b + 16 + (l % 32);
        const int shift = r < 32 ? 0 : 4;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int q = (qs[j] >> shift) & 15;
            if (QT == SL_DTYPE_Q5_K) q |= ((qh[j] >> sb) & 1) << 4;
            o[j] = __fsub_rn(__fmul_rn(d1, (float)q), m1);
        }
    } else if (QT == SL_DTYPE_Q6_K) {
        const uint8_t *b = row + (e0 / 256) * 210;
        const int l = (int)(e0 % 256);
        const float f = __fmul_rn(h16(b + 208), (float)(int8_t)b[192 + l / 16]);
        const int h = l / 128, g = (l % 128) / 32, r0 = l % 32;
        const uint8_t *ql = b + 64 * h + 32 * (g & 1) + r0, *qh = b + 128 + 32 * h + r0;
        const int sh = g < 2 ? 0 : 4;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int q = (((ql[j] >> sh) & 15) | (((qh[j] >> (2 * g)) & 3) << 4)) - 32;
            o[j] = __fmul_rn(f, (float)q);
        }
    }
}

/* dst row r = row (ids ? ids[r] : r) of src, nrows × ncols, 8 elements per thread. A gathered id
 * outside [0, vrows) yields a row of NaN (the device cannot return an error; the CPU backend
 * rejects such ids up front). */
template <int QT, typename TY, bool VEC>
__global__ void k_dequant(TY *__restrict__ y, const uint8_t *__restrict__ src,
                          const int32_t *__restrict__ ids, int64_t vrows, int64_t nrows,
                          int64_t ncols, int64_t row_bytes) {
    const int64_t gpr = (ncols + 7) / 8, total = nrows * gpr;
    for (int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; gid < total;
         gid += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = gid / gpr, e0 = (gid - r * gpr) * 8;
        int64_t sr = r;
        bool bad = false;
        if (ids) {
            sr = ids[r];
            bad = sr < 0 || sr >= vrows;
        }
        float o[8];
        if (bad) {
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = __int_as_float(0x7fc00000);
        } else {
            deq8<QT>(src + sr * row_bytes, e0, ncols, o);
        }
        TY *yr = y + r * ncols + e0;
        if (VEC) {
            st_vec<TY, 8>(yr, o);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (e0 + j < ncols) yr[j] = from_f<TY>(o[j]);
        }
    }
}

template <int QT, typename TY>
static void launch_dq(cudaStream_t s, int grid, void *y, const void *src, const int32_t *ids,
                      int64_t vrows, int64_t nrows, int64_t ncols, int64_t rb, bool vec) {
    if (vec)
        k_dequant<QT, TY, true><<<grid, 256, 0, s>>>((TY *)y, (const uint8_t *)src, ids, vrows,
                                                     nrows, ncols, rb);
    else
        k_dequant<QT, TY, false><<<grid, 256, 0, s>>>((TY *)y, (const uint8_t *)src, ids, vrows,
                                                      nrows, ncols, rb);
}

/* Rows of any float/block dtype into f32/bf16/f16 rows (gathered by device ids when given). */
static sl_status dequant_rows(sl_backend *be, void *dst, sl_dtype dt, const void *src, sl_dtype st,
                              const int32_t *ids, int64_t vrows, int64_t nrows, int64_t ncols) {
    if (!nrows || !ncols) return SL_OK;
    const sl_dtype_info *si = sl_dtype_get(st);
    if (!si->is_float || ncols % si->blck)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "cannot dequantise %s rows of %lld", si->name,
                        (long long)ncols);
    const int64_t rb = (int64_t)sl_dtype_row_bytes(st, ncols);
    const int64_t total = nrows * ((ncols + 7) / 8);
    const int grid = slc_blocks(total, 256, SLC(be)->sm_count * 32);
    cudaStream_t s = slc_stream(be);
    size_t es = slc_esize(dt);
    bool vec = ncols % 8 == 0 && slc_aligned(dst, 8 * es);
#define DQ_CASE(QT)                                                                                \
    case QT:                                                                                       \
        SLC_ACT_SWITCH(dt, TY, launch_dq<QT, TY>(s, grid, dst, src, ids, vrows, nrows, ncols, rb, vec)); \
        break;
    switch (st) {
        DQ_CASE(SL_DTYPE_F32)
        DQ_CASE(SL_DTYPE_F16)
        DQ_CASE(SL_DTYPE_BF16)
        DQ_CASE(SL_DTYPE_F8_E4M3)
        DQ_CASE(SL_DTYPE_F8_E5M2)
        DQ_CASE(SL_DTYPE_Q4_0)
        DQ_CASE(SL_DTYPE_Q4_1)
        DQ_CASE(SL_DTYPE_Q5_0)
        DQ_CASE(SL_DTYPE_Q5_1)
        DQ_CASE(SL_DTYPE_Q8_0)
        DQ_CASE(SL_DTYPE_Q2_K)
        DQ_CASE(SL_DTYPE_Q3_K)
        DQ_CASE(SL_DTYPE_Q4_K)
        DQ_CASE(SL_DTYPE_Q5_K)
        DQ_CASE(SL_DTYPE_Q6_K)
    default:
        return slc_fail(be, SL_ERR_UNSUPPORTED, "no CUDA dequantiser for %s", si->name);
    }
#undef DQ_CASE
    SLC_LAUNCHED(be);
    return SL_OK;
}

sl_status slc_dequant(sl_backend *be, void *dst, sl_dtype dt, const void *src, sl_dtype st,
                      int64_t n) {
    /* one long row: element groups never depend on row boundaries */
    return dequant_rows(be, dst, dt, src, st, NULL, 1, 1, n);
}

extern "C" sl_status slc_op_copy(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    const int64_t n = sl_tensor_numel(x);
    if (!n) return SL_OK;
    if (slc_is_act(x->dtype)) {
        if (x->dtype == y->dtype) {
            SLC_TRY(be, cudaMemcpyAsync(y->data, x->data, sl_tensor_nbytes(x),
                                        cudaMemcpyDeviceToDevice, slc_stream(be)));
            return SL_OK;
        }
        return slc_convert(be, y->data, y->dtype, x->data, x->dtype, n);
    }
    return dequant_rows(be, y->data, y->dtype, x->data, x->dtype, NULL, 1, sl_tensor_nrows(x),
                        sl_tensor_ncols(x));
}

extern "C" sl_status slc_op_get_rows(sl_backend *be, sl_tensor *y, const sl_tensor *table,
                                     const sl_tensor *ids) {
    return dequant_rows(be, y->data, y->dtype, table->data, table->dtype,
                        (const int32_t *)ids->data, table->ne[0], ids->ne[0], table->ne[1]);
}
