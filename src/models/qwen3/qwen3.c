/* Qwen3 text encoder: config, name table, loading, forward, arena formula, synthetic lists.
 * Shapes and semantics: qwen3.h and specs/zimage.md §2. */
#include "models/qwen3/qwen3.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "models/synth.h"

sl_qwen3_cfg sl_qwen3_cfg_full(void) {
    return (sl_qwen3_cfg){.vocab = 151936,
                          .hidden = 2560,
                          .n_layers = 36,
                          .n_heads = 32,
                          .n_kv_heads = 8,
                          .head_dim = 128,
                          .ffn = 9728,
                          .rms_eps = 1e-6f,
                          .rope_theta = 1e6f};
}

sl_qwen3_cfg sl_qwen3_cfg_tiny(void) {
    return (sl_qwen3_cfg){.vocab = 4096,
                          .hidden = 256,
                          .n_layers = 4,
                          .n_heads = 4,
                          .n_kv_heads = 2,
                          .head_dim = 64,
                          .ffn = 768,
                          .rms_eps = 1e-6f,
                          .rope_theta = 1e6f};
}

/* ---- name table ---- */

/* What a per-layer tensor is, for its shape and its synthetic init. */
typedef enum { K_NORM_D, K_Q, K_KV, K_O, K_NORM_DH, K_UP, K_DOWN } layer_kind;

static const struct {
    const char *hf;   /* after "model.layers.{i}." (HF checkpoints, Comfy-Org files) */
    const char *gguf; /* after "blk.{i}." (llama.cpp GGUF conversions) */
    size_t off;       /* field in sl_qwen3_layer */
    layer_kind kind;
} LAYER_TENSORS[] = {
    {"input_layernorm.weight", "attn_norm.weight", offsetof(sl_qwen3_layer, attn_norm), K_NORM_D},
    {"self_attn.q_proj.weight", "attn_q.weight", offsetof(sl_qwen3_layer, wq), K_Q},
    {"self_attn.k_proj.weight", "attn_k.weight", offsetof(sl_qwen3_layer, wk), K_KV},
    {"self_attn.v_proj.weight", "attn_v.weight", offsetof(sl_qwen3_layer, wv), K_KV},
    {"self_attn.o_proj.weight", "attn_output.weight", offsetof(sl_qwen3_layer, wo), K_O},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", offsetof(sl_qwen3_layer, q_norm), K_NORM_DH},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", offsetof(sl_qwen3_layer, k_norm), K_NORM_DH},
    {"post_attention_layernorm.weight", "ffn_norm.weight", offsetof(sl_qwen3_layer, ffn_norm),
     K_NORM_D},
    {"mlp.gate_proj.weight", "ffn_gate.weight", offsetof(sl_qwen3_layer, w_gate), K_UP},
    {"mlp.up_proj.weight", "ffn_up.weight", offsetof(sl_qwen3_layer, w_up), K_UP},
    {"mlp.down_proj.weight", "ffn_down.weight", offsetof(sl_qwen3_layer, w_down), K_DOWN},
};

enum { LT_ATTN_NORM = 0, LT_Q = 1, LT_K = 2, LT_QNORM = 5, LT_GATE = 8 };

/* Global names per naming; llama.cpp keeps HF row order for Qwen3 (NEOX RoPE, no Q/K permute). */
typedef struct naming {
    const char *embed, *norm, *layer_fmt;
    bool gguf;
} naming;
static const naming NAMES_HF = {"model.embed_tokens.weight", "model.norm.weight",
                                "model.layers.%d.%s", false};
static const naming NAMES_GGUF = {"token_embd.weight", "output_norm.weight", "blk.%d.%s", true};

/* Expected shape of a layer tensor; returns ndim. */
static int layer_shape(const sl_qwen3_cfg *c, layer_kind k, int64_t ne[2]) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (k) {
    case K_NORM_D:
        ne[0] = c->hidden;
        return 1;
    case K_NORM_DH:
        ne[0] = c->head_dim;
        return 1;
    case K_Q:
        ne[0] = q, ne[1] = c->hidden;
        return 2;
    case K_KV:
        ne[0] = kv, ne[1] = c->hidden;
        return 2;
    case K_O:
        ne[0] = c->hidden, ne[1] = q;
        return 2;
    case K_UP:
        ne[0] = c->ffn, ne[1] = c->hidden;
        return 2;
    case K_DOWN:
        ne[0] = c->hidden, ne[1] = c->ffn;
        return 2;
    }
    SL_ASSERT(0);
    return 0;
}

/* Name of layer tensor i of `layer`. */
static void layer_name(char *buf, size_t n, const naming *nm, int layer, size_t i) {
    snprintf(buf, n, nm->layer_fmt, layer, nm->gguf ? LAYER_TENSORS[i].gguf : LAYER_TENSORS[i].hf);
}

/* ---- synthetic lists ---- */

sl_status sl_qwen3_synth_list(const char *size, const char *layout, sl_synth_list *out,
                              sl_err *err) {
    const naming *nm;
    if (!layout || !strcmp(layout, "official") || !strcmp(layout, "comfy") || !strcmp(layout, "hf"))
        nm = &NAMES_HF; /* Comfy-Org's qwen_3_4b.safetensors uses the HF names too */
    else if (!strcmp(layout, "gguf") || !strcmp(layout, "llama.cpp"))
        nm = &NAMES_GGUF;
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "qwen3: unknown layout '%s' (use official (HF names) or gguf (llama.cpp "
                          "names))",
                          layout);
    sl_qwen3_cfg c;
    if (size && !strcmp(size, "tiny"))
        c = sl_qwen3_cfg_tiny();
    else if (size && !strcmp(size, "full"))
        c = sl_qwen3_cfg_full();
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG, "qwen3: unknown size '%s' (use tiny or full)",
                          size ? size : "(null)");
    snprintf(out->arch, sizeof out->arch, "qwen3");
    /* Embedding N(0,1); linears N(0, 1/fan_in) so every projection of a unit-RMS input has unit
     * scale; norm weights around 1 (not exactly 1, so a norm whose weight is ignored shows). */
    sl_synth_list_add(out, nm->embed, 2, (const int64_t[]){c.vocab, c.hidden}, SL_INIT_NORMAL, 0.0f,
                      1.0f, false);
    char name[160];
    for (int l = 0; l < c.n_layers; l++) {
        for (size_t i = 0; i < SL_ARRAY_LEN(LAYER_TENSORS); i++) {
            int64_t ne[2];
            int nd = layer_shape(&c, LAYER_TENSORS[i].kind, ne);
            layer_name(name, sizeof name, nm, l, i);
            if (nd == 1)
                sl_synth_list_add(out, name, 1, ne, SL_INIT_NORMAL, 1.0f, 0.1f, true);
            else
                sl_synth_list_add(out, name, 2, ne, SL_INIT_NORMAL, 0.0f,
                                  (float)(1.0 / sqrt((double)ne[1])), false);
        }
    }
    sl_synth_list_add(out, nm->norm, 1, (const int64_t[]){c.hidden}, SL_INIT_NORMAL, 1.0f, 0.1f,
                      true);
    return SL_OK;
}

/* ---- loading ---- */

static int is_plain_float(sl_dtype d) {
    return sl_dtype_get(d)->is_float && !sl_dtype_get(d)->is_quant;
}

static const char *shape_str(int nd, const int64_t *ne, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

/* Find `name`, check its shape (and that vectors are plain floats), register it. */
static sl_status bind(const sl_wdir *wd, sl_res *res, int unit, const char *name, int nd,
                      const int64_t *ne, sl_tensor *dst, sl_err *err) {
    const sl_wentry *e = sl_wdir_find(wd, name);
    if (!e)
        return sl_err_set(err, SL_ERR_NOT_FOUND,
                          "qwen3: tensor '%s' is missing (is the file complete? a truncated "
                          "download or a different model?)",
                          name);
    int ok = e->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = e->ne[i] == ne[i];
    if (!ok) {
        char a[96], b[96];
        return sl_err_set(err, SL_ERR_SHAPE, "qwen3: tensor '%s' in %s has shape %s, expected %s",
                          e->name, sl_wdir_file_path(wd, e->file), shape_str(e->ndim, e->ne, a, 96),
                          shape_str(nd, ne, b, 96));
    }
    if (!sl_dtype_get(e->dtype)->is_float || (nd == 1 && !is_plain_float(e->dtype)))
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "qwen3: tensor '%s' in %s has dtype %s, which cannot be used here "
                          "(weights: float or quantised; norms: f32/f16/bf16)",
                          e->name, sl_wdir_file_path(wd, e->file), sl_dtype_name(e->dtype));
    if (res) {
        sl_res_add_tensor(res, unit, e, 0, 0, dst);
    } else {
        *dst = sl_wentry_tensor(e); /* shapes (and mapped bytes, for host-visible use) */
    }
    dst->name = e->name;
    return SL_OK;
}

void sl_qwen3_free(sl_qwen3 *m) {
    if (!m) return;
    free(m->layers);
    free(m);
}

sl_status sl_qwen3_load(const sl_wdir *wd, sl_res *res, const sl_qwen3_load_opts *opts,
                        sl_qwen3 **out, sl_err *err) {
    *out = NULL;
    sl_qwen3_load_opts o = opts ? *opts : (sl_qwen3_load_opts){.out_layer = -1};
    char name[160];

    const naming *nm = sl_wdir_find(wd, NAMES_GGUF.embed) ? &NAMES_GGUF : &NAMES_HF;
    const sl_wentry *emb = sl_wdir_find(wd, nm->embed), *probe[4] = {0};
    static const size_t probe_ix[4] = {LT_QNORM, LT_Q, LT_K, LT_GATE};
    for (int i = 0; i < 4; i++) {
        layer_name(name, sizeof name, nm, 0, probe_ix[i]);
        probe[i] = sl_wdir_find(wd, name);
        if (!probe[i]) break;
    }
    const sl_wentry *qn = probe[0], *qp = qn ? probe[1] : NULL, *kp = qp ? probe[2] : NULL;
    const sl_wentry *gp = kp ? probe[3] : NULL;
    if (!emb || !gp) {
        return sl_err_set(err, SL_ERR_NOT_FOUND,
                          "qwen3: %s missing; this does not look like a Qwen3 text encoder "
                          "(expected HF names model.embed_tokens.weight, model.layers.0.self_attn."
                          "q_norm.weight, ... or llama.cpp GGUF names token_embd.weight, "
                          "blk.0.attn_q_norm.weight, ...)",
                          emb ? name : nm->embed);
    }
    if (emb->ndim != 2 || qn->ndim != 1 || qp->ndim != 2 || kp->ndim != 2 || gp->ndim != 2 ||
        qn->ne[0] <= 0 || qn->ne[0] % 2 || qp->ne[0] % qn->ne[0] || kp->ne[0] % qn->ne[0] ||
        kp->ne[0] == 0 || (qp->ne[0] / qn->ne[0]) % (kp->ne[0] / qn->ne[0]))
        return sl_err_set(err, SL_ERR_SHAPE,
                          "qwen3: inconsistent shapes in layer 0 (q_norm %lld, q_proj rows %lld, "
                          "k_proj rows %lld): cannot derive heads and head_dim",
                          (long long)qn->ne[0], (long long)qp->ne[0], (long long)kp->ne[0]);

    sl_qwen3_cfg c = {0};
    c.vocab = emb->ne[0];
    c.hidden = emb->ne[1];
    c.head_dim = qn->ne[0];
    c.n_heads = (int)(qp->ne[0] / c.head_dim);
    c.n_kv_heads = (int)(kp->ne[0] / c.head_dim);
    c.ffn = gp->ne[0];
    /* GGUF conversions carry these; HF/safetensors files do not (the defaults are Qwen3's) */
    const char *mv = sl_wdir_meta(wd, "qwen3.attention.layer_norm_rms_epsilon");
    c.rms_eps = o.rms_eps > 0 ? o.rms_eps : mv ? strtof(mv, NULL) : 1e-6f;
    mv = sl_wdir_meta(wd, "qwen3.rope.freq_base");
    c.rope_theta = o.rope_theta > 0 ? o.rope_theta : mv ? strtof(mv, NULL) : 1e6f;
    if (!(c.rms_eps > 0) || !(c.rope_theta > 0))
        return sl_err_set(err, SL_ERR_FORMAT, "qwen3: bad rms eps %g or rope base %g in metadata",
                          (double)c.rms_eps, (double)c.rope_theta);
    for (c.n_layers = 0; c.n_layers < 4096; c.n_layers++) {
        layer_name(name, sizeof name, nm, c.n_layers, LT_ATTN_NORM);
        if (!sl_wdir_find(wd, name)) break;
    }
    int out_layer = o.out_layer >= 0 ? o.out_layer : c.n_layers - 2;
    if (out_layer < 0 || out_layer >= c.n_layers)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "qwen3: output layer %d does not exist (the file has %d decoder layers; "
                          "the default output is the second to last)",
                          out_layer, c.n_layers);

    sl_qwen3 *m = calloc(1, sizeof *m);
    if (m) m->layers = calloc((size_t)out_layer + 1, sizeof *m->layers);
    if (!m || !m->layers) {
        sl_qwen3_free(m);
        return sl_err_set(err, SL_ERR_OOM_HOST, "qwen3: out of host memory");
    }
    m->cfg = c;
    m->out_layer = out_layer;
    m->res = res;
    sl_status st = SL_OK;

    int est_n = o.est_tokens > 0 ? o.est_tokens : 256;
    double rate = o.est_flops > 0 ? o.est_flops : 1e14;
    m->unit_globals = res ? sl_res_add_unit(res, "globals") : 0;
    st = bind(wd, res, m->unit_globals, nm->embed, 2, (const int64_t[]){c.vocab, c.hidden},
              &m->embed, err);
    if (st != SL_OK) goto fail;
    if (res) sl_res_set_unit_cost(res, m->unit_globals, 0.0);

    for (int l = 0; l <= out_layer; l++) {
        sl_qwen3_layer *L = &m->layers[l];
        char unit[32];
        snprintf(unit, sizeof unit, "layers.%d", l);
        L->unit = res ? sl_res_add_unit(res, unit) : 0;
        for (size_t i = 0; i < SL_ARRAY_LEN(LAYER_TENSORS); i++) {
            int64_t ne[2];
            int nd = layer_shape(&c, LAYER_TENSORS[i].kind, ne);
            layer_name(name, sizeof name, nm, l, i);
            st = bind(wd, res, L->unit, name, nd, ne,
                      (sl_tensor *)((char *)L + LAYER_TENSORS[i].off), err);
            if (st != SL_OK) goto fail;
        }
        if (res) sl_res_set_unit_cost(res, L->unit, sl_qwen3_layer_flops(&c, est_n) / rate);
    }
    SL_DEBUG("qwen3: D %lld, %d layers (output after layer %d), heads %d/%d x %lld, ffn %lld, "
             "vocab %lld",
             (long long)c.hidden, c.n_layers, out_layer, c.n_heads, c.n_kv_heads,
             (long long)c.head_dim, (long long)c.ffn, (long long)c.vocab);
    *out = m;
    return SL_OK;
fail:
    sl_qwen3_free(m);
    return st;
}

/* ---- forward ---- */

double sl_qwen3_layer_flops(const sl_qwen3_cfg *c, int n) {
    double D = (double)c->hidden, q = (double)c->n_heads * (double)c->head_dim;
    double kv = (double)c->n_kv_heads * (double)c->head_dim, I = (double)c->ffn;
    double lin = 2.0 * n * (D * q + 2.0 * D * kv + q * D + 3.0 * D * I);
    double att = 2.0 * 2.0 * q * (double)n * (double)(n + 1) / 2.0; /* causal: half of QK and PV */
    return lin + att;
}

void sl_qwen3_rope_table(float *tab, int n, int64_t head_dim, float theta) {
    int64_t half = head_dim / 2;
    for (int64_t j = 0; j < half; j++) {
        /* HF: inv_freq = 1 / base^(arange(0, dim, 2) / dim), all in f32 */
        float inv = 1.0f / powf(theta, (float)(2 * j) / (float)head_dim);
        for (int p = 0; p < n; p++) {
            float ang = (float)p * inv;
            tab[((int64_t)p * half + j) * 2 + 0] = (float)cos((double)ang);
            tab[((int64_t)p * half + j) * 2 + 1] = (float)sin((double)ang);
        }
    }
}

static size_t abytes(int64_t elems, sl_dtype dt) {
    return SL_ALIGN_UP(sl_dtype_row_bytes(dt, elems), (size_t)SL_ARENA_ALIGN);
}

/* One decoder layer: y = layer(x). Temporaries above the arena mark, released on return. */
static void layer_forward(sl_ctx *ctx, const sl_qwen3 *m, const sl_qwen3_layer *L, sl_tensor *x,
                          sl_tensor *y, const sl_tensor *tab, int64_t n) {
    const sl_qwen3_cfg *c = &m->cfg;
    sl_dtype A = ctx->act;
    int64_t D = c->hidden, Dh = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads, I = c->ffn;
    size_t mark = sl_ctx_mark(ctx);

    sl_tensor h = sl_new2(ctx, A, n, D);
    sl_op_rms_norm(ctx, &h, x, &L->attn_norm, NULL, c->rms_eps);
    sl_tensor q = sl_new2(ctx, A, n, Hq * Dh);
    sl_tensor k = sl_new2(ctx, A, n, Hkv * Dh);
    sl_tensor v = sl_new2(ctx, A, n, Hkv * Dh);
    sl_op_matmul(ctx, &q, &h, &L->wq, NULL);
    sl_op_matmul(ctx, &k, &h, &L->wk, NULL);
    sl_op_matmul(ctx, &v, &h, &L->wv, NULL);
    /* per-head RMSNorm of q and k fused with the rotate-half rotation */
    sl_tensor q3 = sl_reshape3(&q, n, Hq, Dh), k3 = sl_reshape3(&k, n, Hkv, Dh);
    sl_tensor v3 = sl_reshape3(&v, n, Hkv, Dh);
    sl_tensor qr = sl_new3(ctx, A, n, Hq, Dh), kr = sl_new3(ctx, A, n, Hkv, Dh);
    sl_op_rope(ctx, &qr, &q3, &L->q_norm, c->rms_eps, tab, SL_ROPE_HALF);
    sl_op_rope(ctx, &kr, &k3, &L->k_norm, c->rms_eps, tab, SL_ROPE_HALF);
    sl_tensor o = sl_new3(ctx, A, n, Hq, Dh);
    sl_op_attention(ctx, &o, &qr, &kr, &v3, (float)(1.0 / sqrt((double)Dh)), true);
    sl_tensor o2 = sl_reshape2(&o, n, Hq * Dh);
    sl_tensor a = sl_new2(ctx, A, n, D);
    sl_op_matmul(ctx, &a, &o2, &L->wo, NULL);
    sl_tensor x2 = sl_new2(ctx, A, n, D);
    sl_op_add(ctx, &x2, x, &a);

    sl_tensor u = sl_new2(ctx, A, n, D);
    sl_op_rms_norm(ctx, &u, &x2, &L->ffn_norm, NULL, c->rms_eps);
    sl_tensor g = sl_new2(ctx, A, n, I), up = sl_new2(ctx, A, n, I);
    sl_op_matmul(ctx, &g, &u, &L->w_gate, NULL);
    sl_op_matmul(ctx, &up, &u, &L->w_up, NULL);
    sl_tensor act = sl_new2(ctx, A, n, I);
    sl_op_glu(ctx, SL_UNARY_SILU, &act, &g, &up);
    sl_tensor d = sl_new2(ctx, A, n, D);
    sl_op_matmul(ctx, &d, &act, &L->w_down, NULL);
    sl_op_add(ctx, y, &x2, &d);

    sl_ctx_reset(ctx, mark);
}

/* Arena bytes of layer_forward's temporaries (all live at its end). */
static size_t layer_arena(const sl_qwen3_cfg *c, int64_t n, sl_dtype A) {
    int64_t D = c->hidden, q = (int64_t)c->n_heads * c->head_dim;
    int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, I = c->ffn;
    return abytes(n * D, A) * 5 /* h, a, x2, u, d */ + abytes(n * q, A) * 3 /* q, qr, o */ +
           abytes(n * kv, A) * 3 /* k, v, kr */ + abytes(n * I, A) * 3 /* g, up, act */;
}

size_t sl_qwen3_arena_bytes(const sl_qwen3_cfg *c, int n, sl_dtype act) {
    return abytes((int64_t)n * c->hidden, SL_DTYPE_F32) /* out */ + abytes(n, SL_DTYPE_I32) +
           abytes((int64_t)n * c->head_dim, SL_DTYPE_F32) /* ids, tab */ +
           2 * abytes((int64_t)n * c->hidden, act) /* residual ping-pong */ +
           layer_arena(c, n, act);
}

sl_status sl_qwen3_forward(sl_qwen3 *m, sl_ctx *ctx, const int32_t *ids, int n, sl_tensor *out,
                           sl_err *err) {
    const sl_qwen3_cfg *c = &m->cfg;
    SL_ASSERTF(out->dtype == SL_DTYPE_F32 && out->ndim == 2 && out->ne[0] == n &&
                   out->ne[1] == c->hidden,
               "qwen3 forward: out must be f32 [%d, %lld]", n, (long long)c->hidden);
    if (n <= 0)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "qwen3: empty token sequence (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "qwen3: token id %d at position %d is outside this model's "
                              "vocabulary [0, %lld) (the tiny test model has 4096 rows)",
                              (int)ids[i], i, (long long)c->vocab);
    if (sl_ctx_status(ctx) != SL_OK) return sl_ctx_take_error(ctx, err);

    float *tab_host = malloc((size_t)n * (size_t)c->head_dim * sizeof(float));
    if (!tab_host) return sl_err_set(err, SL_ERR_OOM_HOST, "qwen3: out of host memory");
    sl_qwen3_rope_table(tab_host, n, c->head_dim, c->rope_theta);

    /* dry runs (measuring context) do not touch the residency engine */
    sl_res *res = ctx->base ? m->res : NULL;
    size_t mark = sl_ctx_mark(ctx);
    sl_dtype A = ctx->act;
    sl_tensor tid = sl_new1(ctx, SL_DTYPE_I32, n);
    sl_upload(ctx, &tid, ids);
    sl_tensor tab = sl_new3(ctx, SL_DTYPE_F32, n, c->head_dim / 2, 2);
    sl_upload(ctx, &tab, tab_host);
    free(tab_host);
    sl_tensor xa = sl_new2(ctx, A, n, c->hidden), xb = sl_new2(ctx, A, n, c->hidden);

    sl_res_begin_pass(res, ctx);
    sl_res_acquire(res, m->unit_globals, ctx);
    sl_op_get_rows(ctx, &xa, &m->embed, &tid);
    sl_res_release(res, m->unit_globals, ctx);
    for (int l = 0; l <= m->out_layer; l++) {
        const sl_qwen3_layer *L = &m->layers[l];
        sl_res_acquire(res, L->unit, ctx);
        layer_forward(ctx, m, L, &xa, &xb, &tab, n);
        sl_res_release(res, L->unit, ctx);
        sl_tensor t = xa;
        xa = xb;
        xb = t;
    }
    sl_op_copy(ctx, out, &xa);
    sl_res_end_pass(res, ctx);
    sl_ctx_reset(ctx, mark);
    return sl_ctx_take_error(ctx, err);
}

sl_status sl_qwen3_encode(sl_qwen3 *m, sl_ctx *ctx, const int32_t *ids, int n, float *out_host,
                          sl_err *err) {
    if (n <= 0)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "qwen3: empty token sequence (n = %d)", n);
    size_t mark = sl_ctx_mark(ctx);
    sl_tensor out = sl_new2(ctx, SL_DTYPE_F32, n, m->cfg.hidden);
    sl_status st = sl_qwen3_forward(m, ctx, ids, n, &out, err);
    if (st == SL_OK) {
        sl_download(ctx, out_host, &out);
        st = sl_ctx_take_error(ctx, err);
    }
    sl_ctx_reset(ctx, mark);
    return st;
}
