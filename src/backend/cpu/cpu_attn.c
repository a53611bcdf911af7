/* CPU attention: o = softmax(q·kᵀ·scale [+ causal mask])·v, blockwise over queries.
 *
 * A work item is (batch b, query head h, block of BQ queries). It forms the scores of its block
 * against every key it may see (S [BQ, nk] in per-thread scratch, nk = Sk, or the last query's
 * index + 1 when causal) with one sgemm over the strided head slices of q and k, takes an exact
 * softmax per row in f32 (max subtracted, sum in double), multiplies by v with a second sgemm and
 * divides each output row by its sum. Scratch is BQ·Sk floats per thread: no Sq×Sk matrix. GQA:
 * query head h reads kv head h / (Hq/Hk). Inputs that are not f32 are converted once per call. */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>

#include "backend/cpu/cpu_impl.h"

#define BQ 64

typedef struct attn_job {
    sl_cpu *c;
    const float *q, *k, *v; /* [B, Sq|Sk, H, Dh] f32 */
    float *o;
    int64_t B, Sq, Sk, Hq, Hk, Dh, nqb;
    float scale;
    bool causal;
    atomic_int fail;
} attn_job;

static void attn_fn(void *arg, int64_t i0, int64_t i1, int tid) {
    attn_job *j = arg;
    int64_t Dh = j->Dh, ldq = j->Hq * Dh, ldk = j->Hk * Dh, grp = j->Hq / j->Hk;
    float *S = cpu_scratch(j->c, tid, (size_t)(BQ * j->Sk));
    if (!S) {
        atomic_store(&j->fail, 1);
        return;
    }
    for (int64_t it = i0; it < i1; it++) {
        int64_t qb = it % j->nqb, h = (it / j->nqb) % j->Hq, b = it / (j->nqb * j->Hq);
        int64_t g = h / grp, r0 = qb * BQ, nq = SL_MIN((int64_t)BQ, j->Sq - r0);
        int64_t nk = j->causal ? r0 + nq : j->Sk;
        const float *Q = j->q + (b * j->Sq + r0) * ldq + h * Dh;
        const float *K = j->k + b * j->Sk * ldk + g * Dh;
        const float *V = j->v + b * j->Sk * ldk + g * Dh;
        float *O = j->o + (b * j->Sq + r0) * ldq + h * Dh;
        if (nk == 0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)Dh, j->scale, Q,
                    (int)ldq, K, (int)ldk, 0.0f, S, (int)nk);
        float inv[BQ];
        for (int64_t r = 0; r < nq; r++) {
            float *s = S + r * nk;
            int64_t last = j->causal ? r0 + r + 1 : nk; /* keys [0, last) are visible */
            float mx = -INFINITY;
            for (int64_t c = 0; c < last; c++) mx = s[c] > mx ? s[c] : mx;
            double sum = 0;
            for (int64_t c = 0; c < last; c++) {
                s[c] = expf(s[c] - mx);
                sum += s[c];
            }
            for (int64_t c = last; c < nk; c++) s[c] = 0.0f;
            inv[r] = (float)(1.0 / sum);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)Dh, (int)nk, 1.0f, S,
                    (int)nk, V, (int)ldk, 0.0f, O, (int)ldq);
        for (int64_t r = 0; r < nq; r++)
            for (int64_t d = 0; d < Dh; d++) O[r * ldq + d] *= inv[r];
    }
}

/* t as f32: its own data when f32, else a converted copy in shared slot `which`. */
static const float *as_f32(sl_cpu *c, int which, const sl_tensor *t) {
    if (t->dtype == SL_DTYPE_F32) return t->data;
    int64_t n = sl_tensor_numel(t);
    float *f = cpu_scratch(c, cpu_shared_slot(c, which), (size_t)n);
    if (f) cpu_load(t->dtype, t->data, 0, f, n);
    return f;
}

sl_status cpu_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                        const sl_tensor *v, float scale, bool causal) {
    CPU_CHECK_DEV(be, "attention", o, q, k, v);
    sl_cpu *c = cpu_of(be);
    attn_job j = {.c = c, .scale = scale, .causal = causal};
    int off = q->ndim == 4 ? 1 : 0;
    j.B = off ? q->ne[0] : 1;
    j.Sq = q->ne[off];
    j.Hq = q->ne[off + 1];
    j.Dh = q->ne[off + 2];
    j.Sk = k->ne[off];
    j.Hk = k->ne[off + 1];
    if (j.B * j.Sq * j.Hq * j.Dh == 0) return SL_OK;
    if (j.Sk == 0)
        return cpu_fail(be, SL_ERR_INVALID_ARG, "attention: no keys (Sk = 0): softmax is undefined");
    j.q = as_f32(c, CPU_SHARED_A, q);
    j.k = as_f32(c, CPU_SHARED_B, k);
    j.v = as_f32(c, CPU_SHARED_C, v);
    bool of32 = o->dtype == SL_DTYPE_F32;
    j.o = of32 ? o->data : cpu_scratch(c, cpu_shared_slot(c, CPU_SHARED_D), (size_t)sl_tensor_numel(o));
    if (!j.q || !j.k || !j.v || !j.o)
        return cpu_fail(be, SL_ERR_OOM_HOST, "attention: out of host memory converting inputs");
    j.nqb = (j.Sq + BQ - 1) / BQ;
    atomic_init(&j.fail, 0);
    sl_pool_for(c->pool, j.B * j.Hq * j.nqb, 1, attn_fn, &j);
    if (atomic_load(&j.fail))
        return cpu_fail(be, SL_ERR_OOM_HOST, "attention: out of host memory for score blocks");
    if (!of32) cpu_store(o->dtype, o->data, 0, j.o, sl_tensor_numel(o));
    return SL_OK;
}
