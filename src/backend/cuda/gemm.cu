/* backend/cuda/gemm.cu — matmul y[M,N] = x[M,K]·w[N,K]ᵀ (+ bias) through cuBLASLt, for weights of
 * every float and block dtype, and the plain cublasGemmEx wrapper the conv and attention paths use.
 *
 * Precision. The GEMM runs in the activation dtype G of x with f32 accumulation: bf16·bf16 and
 * f16·f16 on tensor cores; f32 on TF32 tensor cores by default (PyTorch's default for
 * convolutions; about 1e-3 relative error), or in full f32 with SLUICE_CUDA_F32_GEMM=f32.
 *
 * Weights in another dtype (fp8, GGUF blocks, or a float type other than G) are dequantised on the
 * GPU into a reusable scratch buffer in G, a chunk of output features at a time (at most
 * SLUICE_CUDA_SCRATCH_MB of scratch, 64 MiB by default; the FFN weight 10240×3840 in bf16 is 75 MiB
 * and runs as two chunks), each chunk followed by its GEMM on the same stream. Weight values
 * are exactly core/quant.c's, then rounded to G (bf16 keeps 8 significant bits: a relative error
 * of at most 2^-9 per weight on top of the stored quantisation).
 *
 * Bias is fused with cuBLASLt's BIAS epilogue (converted to the output dtype first when stored
 * differently). Outputs cuBLASLt cannot write from G (bf16 out of an f16 GEMM, 16-bit out of an
 * f32 GEMM) go through an f32 tile in scratch and one conversion kernel that also adds the bias.
 *
 * Plans: the heuristic's choice is cached per (shape, leading dims, dtypes, epilogue, pointer
 * alignments) in a small table, so steady-state calls cost two descriptor creations and the
 * launch. When cuBLASLt offers no algorithm the call falls back to cublasGemmEx plus a bias add. */
#include <limits.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"

/* ---- cublasGemmEx ---- */

static cublasComputeType_t compute_for(sl_backend *be, sl_dtype ab) {
    if (ab != SL_DTYPE_F32) return CUBLAS_COMPUTE_32F;
    return SLC(be)->f32_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

sl_status slc_gemm_ex(sl_backend *be, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                      float alpha, const void *A, int64_t lda, const void *B, int64_t ldb,
                      sl_dtype ab, float beta, void *C, int64_t ldc, sl_dtype ct) {
    if (!m || !n) return SL_OK;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "GEMM of %lld×%lld×%lld exceeds 32-bit sizes",
                        (long long)m, (long long)n, (long long)k);
    SL_ASSERT(ct == ab || ct == SL_DTYPE_F32);
    SLC_BLAS_TRY(be, cublasGemmEx(SLC(be)->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  tb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)m, (int)n, (int)k, &alpha, A,
                                  slc_cuda_type(ab), (int)lda, B, slc_cuda_type(ab), (int)ldb, &beta,
                                  C, slc_cuda_type(ct), (int)ldc, compute_for(be, ab),
                                  CUBLAS_GEMM_DEFAULT));
    return SL_OK;
}

/* ---- cuBLASLt with a plan cache ---- */

static uint32_t align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t r = 256;
    while (r > 1 && (a % r)) r >>= 1;
    return r;
}

typedef struct lt_key {
    int64_t m, n, k, lda, ldb, ldd;
    int32_t ab, dt, bias, tf32;
    uint32_t al_a, al_b, al_d, al_bias;
} lt_key;

/* Look the plan up or ask the heuristic; *algo valid when it returns true. */
static bool lt_plan(sl_backend *be, const lt_key *key, cublasLtMatmulDesc_t op,
                    cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld,
                    cublasLtMatmulAlgo_t *algo) {
    slc *c = SLC(be);
    uint64_t kb[12] = {0};
    static_assert(sizeof(lt_key) <= sizeof kb, "plan key too large");
    memcpy(kb, key, sizeof *key);
    slc_lt_plan *victim = &c->plans[0];
    for (int i = 0; i < SLC_LT_CACHE; i++) {
        slc_lt_plan *p = &c->plans[i];
        if (p->used && !memcmp(p->key, kb, sizeof p->key)) {
            p->stamp = ++c->plan_clock;
            *algo = p->algo;
            return p->ok;
        }
        if (!p->used || p->stamp < victim->stamp) victim = p;
        if (!p->used) break;
    }
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    memset(&res, 0, sizeof res);
    if (cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS) {
        size_t ws = c->ws_bytes;
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                             sizeof ws);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                             &key->al_a, sizeof key->al_a);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                             &key->al_b, sizeof key->al_b);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                             &key->al_d, sizeof key->al_d);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                             &key->al_d, sizeof key->al_d);
        if (cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &res, &nres) !=
            CUBLAS_STATUS_SUCCESS)
            nres = 0;
        cublasLtMatmulPreferenceDestroy(pref);
    }
    victim->used = true;
    memcpy(victim->key, kb, sizeof victim->key);
    victim->ok = nres > 0;
    victim->algo = res.algo;
    victim->stamp = ++c->plan_clock;
    *algo = res.algo;
    return victim->ok;
}

/* D[m,n] (col-major, ld ldd, dtype dt) = Aᵀ·B where A is k×m (ld lda) and B is k×n (ld ldb), both
 * of dtype ab; plus bias[m] (dtype dt) when given. Returns SL_ERR_UNSUPPORTED (quietly, with
 * *tried false) when cuBLASLt has no algorithm, so the caller can fall back. */
static sl_status lt_gemm(sl_backend *be, int64_t m, int64_t n, int64_t k, const void *A,
                         int64_t lda, const void *B, int64_t ldb, sl_dtype ab, void *D, int64_t ldd,
                         sl_dtype dt, const void *bias, bool *ran) {
    slc *c = SLC(be);
    *ran = false;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulAlgo_t algo;
    sl_status st = SL_OK;
    const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    const float alpha = 1.0f, beta = 0.0f;
    lt_key key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
    key.ab = (int32_t)ab, key.dt = (int32_t)dt, key.bias = bias != NULL;
    key.tf32 = ab == SL_DTYPE_F32 && c->f32_tf32;
    key.al_a = align_of(A), key.al_b = align_of(B), key.al_d = align_of(D);
    key.al_bias = bias ? align_of(bias) : 0;

#define LT(call)                                                                                   \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            st = slc_blas_fail(be, (int)s_, #call, __FILE__, __LINE__);                            \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    LT(cublasLtMatmulDescCreate(&op, compute_for(be, ab), CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (bias) LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    LT(cublasLtMatrixLayoutCreate(&la, slc_cuda_type(ab), (uint64_t)k, (uint64_t)m, lda));
    LT(cublasLtMatrixLayoutCreate(&lb, slc_cuda_type(ab), (uint64_t)k, (uint64_t)n, ldb));
    LT(cublasLtMatrixLayoutCreate(&ld, slc_cuda_type(dt), (uint64_t)m, (uint64_t)n, ldd));
    if (!lt_plan(be, &key, op, la, lb, ld, &algo)) {
        st = SL_ERR_UNSUPPORTED;
        goto fail;
    }
    LT(cublasLtMatmul(c->lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &algo, c->ws,
                      c->ws_bytes, slc_stream(be)));
    *ran = true;
#undef LT
fail:
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return st;
}

/* One output tile: D = A·B (+bias) via cuBLASLt, else cublasGemmEx and a bias pass. */
static sl_status gemm_tile(sl_backend *be, int64_t m, int64_t n, int64_t k, const void *A,
                           int64_t lda, const void *B, int64_t ldb, sl_dtype ab, void *D,
                           int64_t ldd, sl_dtype dt, const void *bias) {
    bool ran = false;
    sl_status st = lt_gemm(be, m, n, k, A, lda, B, ldb, ab, D, ldd, dt, bias, &ran);
    if (ran) return SL_OK;
    if (st == SL_ERR_OOM_DEVICE) return st;
    /* no cuBLASLt algorithm (or it refused this layout): the classic API, bias as its own pass */
    SLC_CHECK(slc_gemm_ex(be, true, false, m, n, k, 1.0f, A, lda, B, ldb, ab, 0.0f, D, ldd, dt));
    if (bias) /* D is n rows (of the row-major view) of m columns */
        SLC_CHECK(slc_convert_2d(be, D, dt, ldd, D, dt, ldd, n, m, bias, dt));
    return SL_OK;
}

extern "C" sl_status slc_op_matmul(sl_backend *be, sl_tensor *y, const sl_tensor *x,
                                   const sl_tensor *w, const sl_tensor *bias) {
    slc *c = SLC(be);
    const int64_t M = sl_tensor_nrows(x), K = sl_tensor_ncols(x), N = w->ne[0];
    if (!M || !N) return SL_OK;
    const sl_dtype G = x->dtype;
    if (!sl_dtype_get(w->dtype)->is_float)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "matmul: weight dtype %s", sl_dtype_name(w->dtype));
    if (bias && !slc_is_scalar_float(bias->dtype))
        return slc_fail(be, SL_ERR_UNSUPPORTED, "matmul: bias dtype %s", sl_dtype_name(bias->dtype));
    if (!K) { /* an empty sum: y = bias or 0 */
        SLC_CHECK(slc_op_fill(be, y, 0.0f));
        if (bias)
            SLC_CHECK(slc_convert_2d(be, y->data, y->dtype, N, y->data, y->dtype, N, M, N,
                                     bias->data, bias->dtype));
        return SL_OK;
    }
    const bool ydirect = y->dtype == G || (y->dtype == SL_DTYPE_F32 && G != SL_DTYPE_F32);
    const sl_dtype D_t = ydirect ? y->dtype : SL_DTYPE_F32;
    const bool wdirect = w->dtype == G;
    const size_t eg = slc_esize(G), cap = c->scratch_cap;

    /* chunk of output features (weight rows) and of tokens */
    int64_t nc = N, mc = M;
    if (!wdirect) {
        nc = (int64_t)(cap / ((size_t)K * eg));
        if (nc >= 128) nc = nc / 128 * 128;
        if (nc < 1) nc = 1;
        if (nc > N) nc = N;
        /* even chunks: 10240 in a 8704-row budget runs as 2×5120, not 8704 + 1536 */
        const int64_t nchunks = (N + nc - 1) / nc;
        int64_t even = (N + nchunks - 1) / nchunks;
        if (even >= 128) even = (even + 127) / 128 * 128;
        if (even < nc) nc = even;
    }
    if (!ydirect) {
        mc = (int64_t)(cap / ((size_t)nc * 4));
        if (mc < 1) mc = 1;
        if (mc > M) mc = M;
    }
    const bool bias_conv = bias && ydirect && bias->dtype != D_t;
    const size_t wbytes = wdirect ? 0 : slc_align((size_t)nc * K * eg);
    const size_t bbytes = bias_conv ? slc_align((size_t)N * slc_esize(D_t)) : 0;
    const size_t tbytes = ydirect ? 0 : slc_align((size_t)mc * nc * 4);
    char *scr = NULL;
    if (wbytes + bbytes + tbytes) SLC_CHECK(slc_scratch(be, wbytes + bbytes + tbytes, (void **)&scr));
    void *wbuf = scr, *bbuf = scr + wbytes, *tmp = scr + wbytes + bbytes;
    const void *bptr = bias ? bias->data : NULL;
    if (bias_conv) {
        SLC_CHECK(slc_convert(be, bbuf, D_t, bias->data, bias->dtype, N));
        bptr = bbuf;
    }
    const size_t wrow = sl_dtype_row_bytes(w->dtype, K);
    const size_t ey = slc_esize(y->dtype);
    for (int64_t n0 = 0; n0 < N; n0 += nc) {
        const int64_t ncur = N - n0 < nc ? N - n0 : nc;
        const void *A = (const char *)w->data + (size_t)n0 * wrow;
        if (!wdirect) {
            SLC_CHECK(slc_dequant(be, wbuf, G, A, w->dtype, ncur * K));
            A = wbuf;
        }
        for (int64_t m0 = 0; m0 < M; m0 += mc) {
            const int64_t mcur = M - m0 < mc ? M - m0 : mc;
            const void *B = (const char *)x->data + (size_t)m0 * K * eg;
            char *yt = (char *)y->data + ((size_t)m0 * N + n0) * ey;
            if (ydirect) {
                const void *bp = bptr ? (const char *)bptr + (size_t)n0 * slc_esize(D_t) : NULL;
                SLC_CHECK(gemm_tile(be, ncur, mcur, K, A, K, B, K, G, yt, N, D_t, bp));
            } else {
                SLC_CHECK(gemm_tile(be, ncur, mcur, K, A, K, B, K, G, tmp, ncur, SL_DTYPE_F32, NULL));
                const void *bp = bias ? (const char *)bias->data + (size_t)n0 * slc_esize(bias->dtype) : NULL;
                SLC_CHECK(slc_convert_2d(be, yt, y->dtype, N, tmp, SL_DTYPE_F32, ncur, mcur, ncur,
                                         bp, bias ? bias->dtype : SL_DTYPE_F32));
            }
        }
    }
    return SL_OK;
}
