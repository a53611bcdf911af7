/* backend/cuda/attention.cu — o = softmax(q·kᵀ·scale [+ causal mask])·v.
 *
 * Path order: cuDNN's fused flash attention (attention_cudnn.cu: bf16/f16, Dh % 8 == 0, loaded at
 * run time, sm_80+) when it loads and accepts the shape; then the flash kernel below; then the
 * generic path. SLUICE_CUDA_ATTN picks one (cuda.cu).
 *
 * Flash path (bf16 or f16 q/k/v/o of one dtype, head dim 64 or 128, 16-byte aligned rows): a
 * FlashAttention-2 style kernel on mma.sync m16n8k16 tensor-core instructions (sm_80+). A block
 * owns BR = 16·NW query rows of one head; each warp owns 16 rows, keeps its Q fragments in
 * registers for the whole kernel, and walks the keys in tiles of BC = 64 that cp.async brings into
 * shared memory two tiles deep (rows padded by 16 bytes so ldmatrix is conflict-free). Per tile:
 * S = Q·Kᵀ in f32, online softmax in f32 (running max and sum per row, exp2 with the scale folded
 * in), P rounded to the input dtype, O += P·V in f32 accumulators. No S×S matrix exists. GQA maps
 * query head h to kv head h / (Hq/Hk); the causal mask skips whole tiles above the diagonal.
 *
 * Generic path (any head dim, f32 or mixed dtypes): per head and per chunk of query rows, cuBLAS
 * computes the scores in f32, a row kernel applies the (causal) softmax and writes P, cuBLAS
 * multiplies by V. The chunk keeps scores within the scratch budget, so the VAE's single-head
 * attention (Dh 512, 16384 tokens at 1024²) never forms its 1 GiB score matrix at once. */
#include <math.h>

#include "backend/cuda/cuda_impl.h"

/* ---- tensor-core primitives (sm_80+) ---- */

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                        uint32_t &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                          uint32_t &r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

template <typename T> struct mma_t;
template <> struct mma_t<bf16> {
    static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
};
template <> struct mma_t<__half> {
    static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
};

/* ---- flash kernel ---- */

#define FA_BC 64

struct fa_args {
    const void *q, *k, *v;
    void *o;
    int Sq, Sk, Hq, Hk;
    int64_t q_bs, k_bs, v_bs, o_bs; /* batch strides (elements) */
    float scale_log2;               /* scale · log2(e) */
    int causal;
};

template <int DH> constexpr int fa_smem_bytes() {
    return 2 * 2 * FA_BC * (DH + 8) * 2;
}

/* Fragment layouts (PTX ISA, mma.m16n8k16): g = lane/4, t = lane%4.
 *   A (16×16, row): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 8+2t..), a3 (g+8, 8+2t..)
 *   B (16×8, col):  b0 (k 2t..2t+1, n g), b1 (k 8+2t.., n g)
 *   C (16×8):       c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1) */
template <typename T, int DH, int NW>
__global__ void __launch_bounds__(NW * 32) k_flash(fa_args a) {
    constexpr int BR = 16 * NW, BC = FA_BC, LDS = DH + 8, KS = DH / 16, NT = BC / 8, DT = DH / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *Ks = reinterpret_cast<T *>(smem_raw); /* [2][BC][LDS] */
    T *Vs = Ks + 2 * BC * LDS;               /* [2][BC][LDS] */

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int q0 = blockIdx.x * BR, hq = blockIdx.y, b = blockIdx.z;
    const int hk = hq / (a.Hq / a.Hk);
    const int64_t qss = (int64_t)a.Hq * DH, kss = (int64_t)a.Hk * DH;
    const T *qb = (const T *)a.q + b * a.q_bs + (int64_t)hq * DH;
    const T *kb = (const T *)a.k + b * a.k_bs + (int64_t)hk * DH;
    const T *vb = (const T *)a.v + b * a.v_bs + (int64_t)hk * DH;
    T *ob = (T *)a.o + b * a.o_bs + (int64_t)hq * DH;

    /* Q fragments of this warp's 16 rows, straight from global memory */
    const int r_lo = q0 + warp * 16 + g, r_hi = r_lo + 8;
    uint32_t qf[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        const int c = kk * 16 + 2 * t;
        qf[kk][0] = r_lo < a.Sq ? *reinterpret_cast<const uint32_t *>(qb + r_lo * qss + c) : 0u;
        qf[kk][1] = r_hi < a.Sq ? *reinterpret_cast<const uint32_t *>(qb + r_hi * qss + c) : 0u;
        qf[kk][2] = r_lo < a.Sq ? *reinterpret_cast<const uint32_t *>(qb + r_lo * qss + c + 8) : 0u;
        qf[kk][3] = r_hi < a.Sq ? *reinterpret_cast<const uint32_t *>(qb + r_hi * qss + c + 8) : 0u;
    }

    int nkt = (a.Sk + BC - 1) / BC;
    if (a.causal) {
        const int last = (q0 + BR - 1) / BC + 1; /* tiles holding keys ≤ the block's last row */
        nkt = nkt < last ? nkt : last;
    }

    /* one tile of K and V rows [j·BC, j·BC + BC) into buffer buf; rows past Sk are zero-filled */
    auto load_tile = [&](int j, int buf) {
        constexpr int CPR = DH / 8; /* 16-byte chunks per row */
        for (int i = threadIdx.x; i < BC * CPR; i += NW * 32) {
            const int r = i / CPR, ch = i % CPR, key = j * BC + r;
            const bool ok = key < a.Sk;
            const int kr = ok ? key : 0;
            cp_async16(smem_u32(Ks + (buf * BC + r) * LDS + ch * 8), kb + kr * kss + ch * 8,
                       ok ? 16 : 0);
            cp_async16(smem_u32(Vs + (buf * BC + r) * LDS + ch * 8), vb + kr * kss + ch * 8,
                       ok ? 16 : 0);
        }
    };

    float o[DT][4];
#pragma unroll
    for (int d = 0; d < DT; d++)
        o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

    if (nkt > 0) load_tile(0, 0);
    cp_commit();
    for (int j = 0; j < nkt; j++) {
        if (j + 1 < nkt) {
            load_tile(j + 1, (j + 1) & 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const T *K_ = Ks + (j & 1) * BC * LDS;
        const T *V_ = Vs + (j & 1) * BC * LDS;

        /* S = Q·Kᵀ: 16 rows × 64 keys per warp */
        float s[NT][4];
#pragma unroll
        for (int n = 0; n < NT; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const int mi = lane >> 3, mr = lane & 7;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                /* matrices: (keys 8n.., dims 16kk..), (8n.., 16kk+8..), (8n+8.., 16kk..), (8n+8..,
                 * 16kk+8..) */
                const int key = 8 * (n + (mi >> 1)) + mr, dim = 16 * kk + 8 * (mi & 1);
                uint32_t b0, b1, b2, b3;
                ldsm_x4(smem_u32(K_ + key * LDS + dim), b0, b1, b2, b3);
                mma_t<T>::run(s[n], qf[kk], b0, b1);
                mma_t<T>::run(s[n + 1], qf[kk], b2, b3);
            }
        }

        /* scale, mask, online softmax */
        const int kbase = j * BC;
        const bool edge = kbase + BC > a.Sk || (a.causal && kbase + BC - 1 > q0);
        float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
        for (int n = 0; n < NT; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[n][e] * a.scale_log2;
                if (edge) {
                    const int key = kbase + 8 * n + 2 * t + (e & 1);
                    const int row = e < 2 ? r_lo : r_hi;
                    if (key >= a.Sk || (a.causal && key > row)) x = -INFINITY;
                }
                s[n][e] = x;
            }
            mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
            mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
        }
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 1));
        mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 2));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 1));
        mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 2));
        const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
        /* a row with every key masked so far keeps max −inf: use 0 so no (−inf) − (−inf) */
        const float mu_lo = mn_lo == -INFINITY ? 0.0f : mn_lo;
        const float mu_hi = mn_hi == -INFINITY ? 0.0f : mn_hi;
        const float al_lo = exp2f(m_lo - mu_lo), al_hi = exp2f(m_hi - mu_hi);
        m_lo = mn_lo;
        m_hi = mn_hi;
        float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            s[n][0] = exp2f(s[n][0] - mu_lo);
            s[n][1] = exp2f(s[n][1] - mu_lo);
            s[n][2] = exp2f(s[n][2] - mu_hi);
            s[n][3] = exp2f(s[n][3] - mu_hi);
            sum_lo += s[n][0] + s[n][1];
            sum_hi += s[n][2] + s[n][3];
        }
        l_lo = l_lo * al_lo + sum_lo; /* per-thread partial sums; reduced over the row at the end */
        l_hi = l_hi * al_hi + sum_hi;
#pragma unroll
        for (int d = 0; d < DT; d++) {
            o[d][0] *= al_lo;
            o[d][1] *= al_lo;
            o[d][2] *= al_hi;
            o[d][3] *= al_hi;
        }

        /* O += P·V: P's C fragments of key tiles 2kc, 2kc+1 are the A fragment of chunk kc */
#pragma unroll
        for (int kc = 0; kc < BC / 16; kc++) {
            uint32_t pa[4];
            pa[0] = mma_t<T>::pack(s[2 * kc][0], s[2 * kc][1]);
            pa[1] = mma_t<T>::pack(s[2 * kc][2], s[2 * kc][3]);
            pa[2] = mma_t<T>::pack(s[2 * kc + 1][0], s[2 * kc + 1][1]);
            pa[3] = mma_t<T>::pack(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
            for (int d = 0; d < DT; d += 2) {
                /* transposed matrices: (keys 16kc.., dims 8d..), (16kc+8.., 8d..), (16kc..,
                 * 8d+8..), (16kc+8.., 8d+8..) */
                const int key = 16 * kc + 8 * (mi & 1) + mr, dim = 8 * (d + (mi >> 1));
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(smem_u32(V_ + key * LDS + dim), b0, b1, b2, b3);
                mma_t<T>::run(o[d], pa, b0, b1);
                mma_t<T>::run(o[d + 1], pa, b2, b3);
            }
        }
        __syncthreads(); /* the buffer is refilled two iterations on */
    }

    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
    const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f;
    const float inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
    const int64_t oss = qss;
#pragma unroll
    for (int d = 0; d < DT; d++) {
        const int c = 8 * d + 2 * t;
        if (r_lo < a.Sq)
            *reinterpret_cast<uint32_t *>(ob + r_lo * oss + c) =
                mma_t<T>::pack(o[d][0] * inv_lo, o[d][1] * inv_lo);
        if (r_hi < a.Sq)
            *reinterpret_cast<uint32_t *>(ob + r_hi * oss + c) =
                mma_t<T>::pack(o[d][2] * inv_hi, o[d][3] * inv_hi);
    }
}

template <typename T, int DH, int NW>
static sl_status launch_flash(sl_backend *be, const fa_args &a, int B) {
    constexpr int smem = fa_smem_bytes<DH>();
    if (smem > SLC(be)->smem_optin)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "attention: %d bytes of shared memory needed",
                        smem);
    SLC_TRY(be, cudaFuncSetAttribute(k_flash<T, DH, NW>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    dim3 grid((unsigned)((a.Sq + 16 * NW - 1) / (16 * NW)), (unsigned)a.Hq, (unsigned)B);
    k_flash<T, DH, NW><<<grid, NW * 32, smem, slc_stream(be)>>>(a);
    SLC_LAUNCHED(be);
    return SL_OK;
}

template <typename T>
static sl_status flash_dispatch(sl_backend *be, const fa_args &a, int B, int Dh, int nw) {
    if (Dh == 128)
        return nw == 8 ? launch_flash<T, 128, 8>(be, a, B) : launch_flash<T, 128, 4>(be, a, B);
    return nw == 8 ? launch_flash<T, 64, 8>(be, a, B) : launch_flash<T, 64, 4>(be, a, B);
}

/* ---- generic path ---- */

/* P[r, :] = softmax(S[r, :]) (S f32 already scaled), keys j > q0 + r masked when causal. */
__global__ void k_attn_softmax(void *P, int pt, const float *S, int64_t rows, int64_t Sk,
                               int64_t q0, int causal) {
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *sr = S + r * Sk;
        const int64_t lim = causal ? (q0 + r + 1 < Sk ? q0 + r + 1 : Sk) : Sk;
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            mx = fmaxf(mx, sr[j]);
        mx = block_max(mx, sh);
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < lim; j += blockDim.x)
            s += expf(sr[j] - mx);
        const float inv = 1.0f / block_sum(s, sh);
        for (int64_t j = threadIdx.x; j < Sk; j += blockDim.x)
            st_any(P, pt, r * Sk + j, j < lim ? expf(sr[j] - mx) * inv : 0.0f);
    }
}

static sl_status attention_generic(sl_backend *be, sl_tensor *o, const sl_tensor *q,
                                   const sl_tensor *k, const sl_tensor *v, float scale, bool causal,
                                   int64_t B, int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hk,
                                   int64_t Dh) {
    const bool same = q->dtype == k->dtype && q->dtype == v->dtype;
    const sl_dtype CT = same ? q->dtype : SL_DTYPE_F32;
    const size_t ec = slc_esize(CT);
    const bool odirect = o->dtype == CT || o->dtype == SL_DTYPE_F32;
    const size_t cap = SLC(be)->scratch_cap;
    int64_t Qc = (int64_t)(cap / ((size_t)Sk * (4 + ec)));
    if (Qc < 16) Qc = 16;
    if (Qc > Sq) Qc = Sq;
    const size_t conv = same ? 0
                             : slc_align((size_t)B * Sq * Hq * Dh * 4) +
                                   2 * slc_align((size_t)B * Sk * Hk * Dh * 4);
    const size_t sbytes = slc_align((size_t)Qc * Sk * 4), pbytes = slc_align((size_t)Qc * Sk * ec);
    const size_t tbytes = odirect ? 0 : slc_align((size_t)Qc * Dh * 4);
    char *scr;
    SLC_CHECK(slc_scratch(be, conv + sbytes + pbytes + tbytes, (void **)&scr));
    const void *qd = q->data, *kd = k->data, *vd = v->data;
    if (!same) {
        char *p = scr;
        SLC_CHECK(slc_convert(be, p, SL_DTYPE_F32, q->data, q->dtype, B * Sq * Hq * Dh));
        qd = p;
        p += slc_align((size_t)B * Sq * Hq * Dh * 4);
        SLC_CHECK(slc_convert(be, p, SL_DTYPE_F32, k->data, k->dtype, B * Sk * Hk * Dh));
        kd = p;
        p += slc_align((size_t)B * Sk * Hk * Dh * 4);
        SLC_CHECK(slc_convert(be, p, SL_DTYPE_F32, v->data, v->dtype, B * Sk * Hk * Dh));
        vd = p;
    }
    float *S = (float *)(scr + conv);
    void *P = scr + conv + sbytes;
    float *tmp = (float *)(scr + conv + sbytes + pbytes);
    const size_t eo = slc_esize(o->dtype);
    const int64_t grp = Hq / Hk;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / grp;
            const char *Kh = (const char *)kd + ((size_t)(b * Sk * Hk + hk) * Dh) * ec;
            const char *Vh = (const char *)vd + ((size_t)(b * Sk * Hk + hk) * Dh) * ec;
            for (int64_t q0 = 0; q0 < Sq; q0 += Qc) {
                const int64_t qn = Sq - q0 < Qc ? Sq - q0 : Qc;
                const char *Qh = (const char *)qd + ((size_t)((b * Sq + q0) * Hq + h) * Dh) * ec;
                char *Oh = (char *)o->data + ((size_t)((b * Sq + q0) * Hq + h) * Dh) * eo;
                /* Sᵀ (Sk × qn, col-major) = K_h (Dh × Sk)ᵀ · Q_c (Dh × qn) */
                SLC_CHECK(slc_gemm_ex(be, true, false, Sk, qn, Dh, scale, Kh, Hk * Dh, Qh, Hq * Dh,
                                      CT, 0.0f, S, Sk, SL_DTYPE_F32));
                k_attn_softmax<<<slc_blocks(qn, 1, SLC(be)->sm_count * 8), 256, 0,
                                 slc_stream(be)>>>(P, (int)CT, S, qn, Sk, q0, causal ? 1 : 0);
                SLC_LAUNCHED(be);
                /* O_cᵀ (Dh × qn) = V_hᵀ (Dh × Sk) · Pᵀ (Sk × qn) */
                if (odirect) {
                    SLC_CHECK(slc_gemm_ex(be, false, false, Dh, qn, Sk, 1.0f, Vh, Hk * Dh, P, Sk,
                                          CT, 0.0f, Oh, Hq * Dh, o->dtype));
                } else {
                    SLC_CHECK(slc_gemm_ex(be, false, false, Dh, qn, Sk, 1.0f, Vh, Hk * Dh, P, Sk,
                                          CT, 0.0f, tmp, Dh, SL_DTYPE_F32));
                    SLC_CHECK(slc_convert_2d(be, Oh, o->dtype, Hq * Dh, tmp, SL_DTYPE_F32, Dh, qn,
                                             Dh, NULL, SL_DTYPE_F32));
                }
            }
        }
    return SL_OK;
}

/* ---- op entry point ---- */

extern "C" sl_status slc_op_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q,
                                      const sl_tensor *k, const sl_tensor *v, float scale,
                                      bool causal) {
    const bool b4 = q->ndim == 4;
    const int64_t B = b4 ? q->ne[0] : 1, Sq = q->ne[b4 ? 1 : 0], Hq = q->ne[b4 ? 2 : 1],
                  Dh = q->ne[b4 ? 3 : 2];
    const int64_t Sk = k->ne[k->ndim == 4 ? 1 : 0], Hk = k->ne[k->ndim == 4 ? 2 : 1];
    if (!B || !Sq || !Hq || !Dh) return SL_OK;
    if (!Sk) return slc_op_fill(be, o, 0.0f);
    const int variant = SLC(be)->attn_variant;
    const sl_dtype dt = q->dtype;
    const bool same16 = (dt == SL_DTYPE_BF16 || dt == SL_DTYPE_F16) && k->dtype == dt &&
                        v->dtype == dt && o->dtype == dt && slc_aligned(q->data, 16) &&
                        slc_aligned(k->data, 16) && slc_aligned(v->data, 16) &&
                        slc_aligned(o->data, 16);
    if (SLC(be)->attn_cudnn && same16 && Dh % 8 == 0 && Dh <= 256) {
        const sl_status st =
            slc_dnn_attention(be, o, q, k, v, scale, causal, B, Sq, Sk, Hq, Hk, Dh);
        /* refused or absent (nothing enqueued): the portable kernels, unless cuDNN was forced */
        if (st != SL_ERR_UNSUPPORTED || SLC(be)->attn_cudnn == 2) return st;
    }
    const bool flash = variant >= 0 && same16 && (Dh == 64 || Dh == 128) && Sq < INT32_MAX / 2 &&
                       Sk < INT32_MAX / 2 && Hq <= 65535 && B <= 65535;
    if (!flash) return attention_generic(be, o, q, k, v, scale, causal, B, Sq, Sk, Hq, Hk, Dh);
    fa_args a;
    a.q = q->data, a.k = k->data, a.v = v->data, a.o = o->data;
    a.Sq = (int)Sq, a.Sk = (int)Sk, a.Hq = (int)Hq, a.Hk = (int)Hk;
    a.q_bs = Sq * Hq * Dh, a.o_bs = Sq * Hq * Dh;
    a.k_bs = Sk * Hk * Dh, a.v_bs = Sk * Hk * Dh;
    a.scale_log2 = scale * 1.4426950408889634f;
    a.causal = causal ? 1 : 0;
    const int nw = variant == 8 ? 8 : 4;
    if (dt == SL_DTYPE_BF16) return flash_dispatch<bf16>(be, a, (int)B, (int)Dh, nw);
    return flash_dispatch<__half>(be, a, (int)B, (int)Dh, nw);
}
