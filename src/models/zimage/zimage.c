/* Z-Image DiT: loading (name tables of both layouts, config from shapes, residency units) and
 * the forward pass (specs/zimage.md §1.3). Shape letters: see zimage.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "models/zimage/zimage.h"

/* ------------------------------------------------------------------------------------------ */
/* loading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct loader {
    const sl_wdir *wd;
    sl_res *res;
    sl_err *err;
} loader;

static const char *files_desc(const sl_wdir *wd, char *buf, size_t n) {
    int nf = sl_wdir_file_count(wd);
    if (nf <= 0) {
        snprintf(buf, n, "(no files)");
    } else if (nf == 1) {
        snprintf(buf, n, "%s", sl_wdir_file_path(wd, 0));
    } else {
        snprintf(buf, n, "%s and %d more file(s)", sl_wdir_file_path(wd, 0), nf - 1);
    }
    return buf;
}

/* Find `name`, or `alt` (the other layout's spelling, may be NULL). */
static const sl_wentry *find2(const sl_wdir *wd, const char *name, const char *alt) {
    const sl_wentry *e = sl_wdir_find(wd, name);
    if (!e && alt) e = sl_wdir_find(wd, alt);
    return e;
}

static sl_status not_found(loader *L, const char *name) {
    char f[600];
    return sl_err_set(L->err, SL_ERR_NOT_FOUND,
                      "Z-Image DiT: tensor '%s' is missing from %s (is this a complete Z-Image "
                      "diffusion model file?)",
                      name, files_desc(L->wd, f, sizeof f));
}

static const char *shape_str(int ndim, const int64_t *ne, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

/* Check e against the expected shape. vec: a vector role (norm, bias, pad token) that only needs
 * the element count (1-D [n] or [1, n] both accepted) and a plain float dtype; otherwise a
 * matrix of exactly ne (after row slicing: ne0_total rows in the file). */
static sl_status check_entry(loader *L, const sl_wentry *e, bool vec, int ndim, const int64_t *ne,
                             int64_t rows_total) {
    char a[64], b[64];
    const sl_dtype_info *di = sl_dtype_get(e->dtype);
    if (vec) {
        int64_t want = ne[0] * (ndim > 1 ? ne[1] : 1), have = 1;
        for (int i = 0; i < e->ndim; i++)
            have *= e->ne[i];
        bool shape_ok = have == want && (e->ndim == 1 || (e->ndim == 2 && e->ne[0] == 1));
        if (!shape_ok)
            return sl_err_set(L->err, SL_ERR_SHAPE,
                              "Z-Image DiT: tensor '%s' in %s has shape %s, expected %s", e->name,
                              sl_wdir_file_path(L->wd, e->file), shape_str(e->ndim, e->ne, a, 64),
                              shape_str(ndim, ne, b, 64));
        if (!di->is_float || di->is_quant)
            return sl_err_set(L->err, SL_ERR_UNSUPPORTED,
                              "Z-Image DiT: tensor '%s' in %s is %s; norm weights, biases and pad "
                              "tokens must be f32, f16 or bf16",
                              e->name, sl_wdir_file_path(L->wd, e->file), sl_dtype_name(e->dtype));
        return SL_OK;
    }
    int64_t exp[2] = {rows_total, ne[1]};
    if (e->ndim != 2 || e->ne[0] != exp[0] || e->ne[1] != exp[1])
        return sl_err_set(L->err, SL_ERR_SHAPE,
                          "Z-Image DiT: tensor '%s' in %s has shape %s, expected %s", e->name,
                          sl_wdir_file_path(L->wd, e->file), shape_str(e->ndim, e->ne, a, 64),
                          shape_str(2, exp, b, 64));
    if (!di->is_float)
        return sl_err_set(L->err, SL_ERR_UNSUPPORTED,
                          "Z-Image DiT: tensor '%s' in %s has dtype %s, which cannot be used as a "
                          "weight (convert it to bf16, f16, fp8 or a GGUF block type)",
                          e->name, sl_wdir_file_path(L->wd, e->file), sl_dtype_name(e->dtype));
    return SL_OK;
}

/* Register e (rows [row0, row0+nrows) when nrows > 0) into dst. */
static void bind(loader *L, int unit, const sl_wentry *e, int64_t row0, int64_t nrows,
                 sl_tensor *dst) {
    if (L->res) {
        sl_res_add_tensor(L->res, unit, e, row0, nrows, dst);
    } else {
        sl_tensor t = sl_wentry_tensor(e);
        *dst = nrows > 0 ? sl_tensor_rows(&t, row0, nrows) : t;
    }
    dst->name = e->name;
}

static sl_status load_global(loader *L, sl_zimage *m, sl_zimage_grole role, sl_tensor *dst) {
    char name[160], alt[160];
    sl_zimage_layout other = m->layout == SL_ZIMAGE_OFFICIAL ? SL_ZIMAGE_COMFY : SL_ZIMAGE_OFFICIAL;
    sl_zimage_global_name(m->layout, &m->cfg, role, name, sizeof name);
    sl_zimage_global_name(other, &m->cfg, role, alt, sizeof alt);
    const sl_wentry *e = find2(L->wd, name, strcmp(name, alt) ? alt : NULL);
    if (!e) return not_found(L, name);
    int ndim;
    int64_t ne[2];
    sl_zimage_global_shape(&m->cfg, role, &ndim, ne);
    bool vec = ndim == 1 || role == SL_ZIMAGE_G_X_PAD || role == SL_ZIMAGE_G_CAP_PAD;
    sl_status st = check_entry(L, e, vec, ndim, ne, ne[0]);
    if (st) return st;
    bind(L, m->unit_globals, e, 0, 0, dst);
    return SL_OK;
}

static sl_status load_block(loader *L, sl_zimage *m, sl_zimage_block *b) {
    sl_tensor *dst[SL_ZIMAGE_B_COUNT] = {
        [SL_ZIMAGE_B_WQ] = &b->wq,
        [SL_ZIMAGE_B_WK] = &b->wk,
        [SL_ZIMAGE_B_WV] = &b->wv,
        [SL_ZIMAGE_B_WO] = &b->wo,
        [SL_ZIMAGE_B_QNORM] = &b->q_norm,
        [SL_ZIMAGE_B_KNORM] = &b->k_norm,
        [SL_ZIMAGE_B_ANORM1] = &b->attn_norm1,
        [SL_ZIMAGE_B_ANORM2] = &b->attn_norm2,
        [SL_ZIMAGE_B_FNORM1] = &b->ffn_norm1,
        [SL_ZIMAGE_B_FNORM2] = &b->ffn_norm2,
        [SL_ZIMAGE_B_W1] = &b->w1,
        [SL_ZIMAGE_B_W2] = &b->w2,
        [SL_ZIMAGE_B_W3] = &b->w3,
        [SL_ZIMAGE_B_ADA_W] = &b->ada_w,
        [SL_ZIMAGE_B_ADA_B] = &b->ada_b,
    };
    /* q/k/v: separate tensors, or rows of a fused qkv — decided per block by what is present */
    char off[160], cmf[160];
    sl_zimage_block_name(SL_ZIMAGE_COMFY, b->kind, b->index, SL_ZIMAGE_B_WQ, cmf, sizeof cmf);
    sl_zimage_block_name(SL_ZIMAGE_OFFICIAL, b->kind, b->index, SL_ZIMAGE_B_WQ, off, sizeof off);
    const sl_wentry *qkv = sl_wdir_find(L->wd, cmf);
    if (qkv && sl_wdir_find(L->wd, off)) qkv = NULL; /* both present: prefer the separate ones */
    for (int r = 0; r < SL_ZIMAGE_B_COUNT; r++) {
        if (!b->modulated && (r == SL_ZIMAGE_B_ADA_W || r == SL_ZIMAGE_B_ADA_B)) continue;
        int ndim;
        int64_t ne[2];
        sl_zimage_block_shape(&m->cfg, (sl_zimage_brole)r, &ndim, ne);
        bool is_qkv = r == SL_ZIMAGE_B_WQ || r == SL_ZIMAGE_B_WK || r == SL_ZIMAGE_B_WV;
        if (is_qkv && qkv) {
            sl_status st = check_entry(L, qkv, false, ndim, ne, 3 * ne[0]);
            if (st) return st;
            bind(L, b->unit, qkv, (int64_t)(r - SL_ZIMAGE_B_WQ) * ne[0], ne[0], dst[r]);
            continue;
        }
        sl_zimage_layout first = m->layout, second = first == SL_ZIMAGE_OFFICIAL
                                                         ? SL_ZIMAGE_COMFY
                                                         : SL_ZIMAGE_OFFICIAL;
        if (is_qkv) first = second = SL_ZIMAGE_OFFICIAL;
        sl_zimage_block_name(first, b->kind, b->index, (sl_zimage_brole)r, off, sizeof off);
        sl_zimage_block_name(second, b->kind, b->index, (sl_zimage_brole)r, cmf, sizeof cmf);
        const sl_wentry *e = find2(L->wd, off, strcmp(off, cmf) ? cmf : NULL);
        if (!e) return not_found(L, off);
        sl_status st = check_entry(L, e, ndim == 1, ndim, ne, ne[0]);
        if (st) return st;
        bind(L, b->unit, e, 0, 0, dst[r]);
    }
    return SL_OK;
}

/* Highest "<prefix>.<i>." index + 1 among the directory's names (any leading prefix allowed). */
static int count_blocks(const sl_wdir *wd, const char *prefix) {
    size_t pl = strlen(prefix);
    int n = 0;
    for (int i = 0; i < sl_wdir_count(wd); i++) {
        const char *name = sl_wdir_at(wd, i)->name;
        for (const char *p = strstr(name, prefix); p; p = strstr(p + 1, prefix)) {
            if ((p != name && p[-1] != '.') || p[pl] != '.') continue;
            const char *q = p + pl + 1;
            if (*q < '0' || *q > '9') continue;
            long v = strtol(q, (char **)&q, 10);
            if (*q == '.' && v >= 0 && v < 100000 && v + 1 > n) n = (int)v + 1;
        }
    }
    return n;
}

/* Derive the config from the shapes present (sizes other than the release load too: the tiny
 * test model, pruned variants). */
static sl_status derive_config(loader *L, sl_zimage *m) {
    sl_zimage_config c = sl_zimage_config_full();
    char name[160];
    const sl_wentry *e;
    sl_zimage_global_name(m->layout, &c, SL_ZIMAGE_G_X_W, name, sizeof name);
    e = sl_wdir_find(L->wd, name);
    SL_ASSERT(e); /* layout detection found it */
    if (e->ndim != 2 || e->ne[1] != (int64_t)c.patch * c.patch * c.in_ch)
        return check_entry(L, e, false, 2, (int64_t[]){e->ne[0], 64}, e->ndim ? e->ne[0] : 0);
    c.dim = (int)e->ne[0];
    if (!(e = sl_wdir_find(L->wd, "cap_embedder.1.weight")))
        return not_found(L, "cap_embedder.1.weight");
    if (e->ndim == 2) c.cap_dim = (int)e->ne[1];
    if (!(e = sl_wdir_find(L->wd, "t_embedder.mlp.0.weight")))
        return not_found(L, "t_embedder.mlp.0.weight");
    if (e->ndim == 2) c.t_mid = (int)e->ne[0];
    c.adaln_dim = c.dim < 256 ? c.dim : 256;
    c.ffn_dim = (int)((double)c.dim / 3.0 * 8.0);
    c.n_layers = count_blocks(L->wd, "layers");
    c.n_refiner = count_blocks(L->wd, "noise_refiner");
    int n_ctx = count_blocks(L->wd, "context_refiner");
    char f[600];
    if (c.n_layers < 1 || c.n_refiner < 1 || n_ctx != c.n_refiner)
        return sl_err_set(L->err, SL_ERR_NOT_FOUND,
                          "Z-Image DiT: %s has %d main layers, %d noise_refiner and %d "
                          "context_refiner blocks; expected at least one of each and as many "
                          "context as noise refiners",
                          files_desc(L->wd, f, sizeof f), c.n_layers, c.n_refiner, n_ctx);
    /* head dim from the qk-norm weight */
    char a[160], b[160];
    sl_zimage_block_name(SL_ZIMAGE_OFFICIAL, SL_ZIMAGE_LAYER, 0, SL_ZIMAGE_B_QNORM, a, sizeof a);
    sl_zimage_block_name(SL_ZIMAGE_COMFY, SL_ZIMAGE_LAYER, 0, SL_ZIMAGE_B_QNORM, b, sizeof b);
    if (!(e = find2(L->wd, a, b))) return not_found(L, a);
    int64_t dh = e->ndim >= 1 ? e->ne[e->ndim - 1] : 0;
    if (dh != 128 || c.dim % 128)
        return sl_err_set(
            L->err, SL_ERR_UNSUPPORTED,
            "Z-Image DiT: head dim %lld with hidden size %d; this model's RoPE axes "
            "(32, 48, 48) need head dim 128 and a hidden size that is a multiple of it",
            (long long)dh, c.dim);
    c.head_dim = 128;
    c.n_heads = c.dim / 128;
    m->cfg = c;
    return SL_OK;
}

sl_status sl_zimage_load(const sl_wdir *wd, sl_res *res, double tflops, sl_zimage **out,
                         sl_err *err) {
    *out = NULL;
    loader L = {wd, res, err};
    sl_zimage *m = calloc(1, sizeof *m);
    if (!m) return sl_err_set(err, SL_ERR_OOM_HOST, "Z-Image DiT: out of host memory");
    m->unit_globals = -1;
    sl_status st;
    sl_zimage_config full = sl_zimage_config_full();
    char on[160], cn[160], f[600];
    sl_zimage_global_name(SL_ZIMAGE_OFFICIAL, &full, SL_ZIMAGE_G_X_W, on, sizeof on);
    sl_zimage_global_name(SL_ZIMAGE_COMFY, &full, SL_ZIMAGE_G_X_W, cn, sizeof cn);
    if (sl_wdir_find(wd, on)) {
        m->layout = SL_ZIMAGE_OFFICIAL;
    } else if (sl_wdir_find(wd, cn)) {
        m->layout = SL_ZIMAGE_COMFY;
    } else {
        st = sl_err_set(err, SL_ERR_NOT_FOUND,
                        "Z-Image DiT: neither '%s' (official/diffusers layout) nor '%s' (ComfyUI "
                        "layout) is in %s; is this a Z-Image diffusion model?",
                        on, cn, files_desc(wd, f, sizeof f));
        goto fail;
    }
    if ((st = derive_config(&L, m))) goto fail;
    const sl_zimage_config *c = &m->cfg;

    m->n_blocks = 2 * c->n_refiner + c->n_layers;
    m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
    if (!m->blocks) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "Z-Image DiT: out of host memory");
        goto fail;
    }
    if (res) m->unit_globals = sl_res_add_unit(res, "globals");
    for (int i = 0; i < m->n_blocks; i++) {
        sl_zimage_block *b = &m->blocks[i];
        if (i < c->n_refiner) {
            b->kind = SL_ZIMAGE_NOISE_REFINER;
            b->index = i;
        } else if (i < 2 * c->n_refiner) {
            b->kind = SL_ZIMAGE_CONTEXT_REFINER;
            b->index = i - c->n_refiner;
        } else {
            b->kind = SL_ZIMAGE_LAYER;
            b->index = i - 2 * c->n_refiner;
        }
        b->modulated = b->kind != SL_ZIMAGE_CONTEXT_REFINER;
        b->unit = -1;
        if (res) {
            char un[64];
            snprintf(un, sizeof un, "%s.%d", sl_zimage_block_prefix(b->kind), b->index);
            b->unit = sl_res_add_unit(res, un);
        }
    }
    sl_tensor *g[SL_ZIMAGE_G_COUNT] = {
        [SL_ZIMAGE_G_X_W] = &m->x_emb_w,        [SL_ZIMAGE_G_X_B] = &m->x_emb_b,
        [SL_ZIMAGE_G_CAP_NORM] = &m->cap_norm,  [SL_ZIMAGE_G_CAP_W] = &m->cap_w,
        [SL_ZIMAGE_G_CAP_B] = &m->cap_b,        [SL_ZIMAGE_G_T_W0] = &m->t_w0,
        [SL_ZIMAGE_G_T_B0] = &m->t_b0,          [SL_ZIMAGE_G_T_W2] = &m->t_w2,
        [SL_ZIMAGE_G_T_B2] = &m->t_b2,          [SL_ZIMAGE_G_X_PAD] = &m->x_pad,
        [SL_ZIMAGE_G_CAP_PAD] = &m->cap_pad,    [SL_ZIMAGE_G_FADA_W] = &m->final_ada_w,
        [SL_ZIMAGE_G_FADA_B] = &m->final_ada_b, [SL_ZIMAGE_G_FIN_W] = &m->final_w,
        [SL_ZIMAGE_G_FIN_B] = &m->final_b,
    };
    for (int r = 0; r < SL_ZIMAGE_G_COUNT; r++)
        if ((st = load_global(&L, m, (sl_zimage_grole)r, g[r]))) goto fail;
    for (int i = 0; i < m->n_blocks; i++)
        if ((st = load_block(&L, m, &m->blocks[i]))) goto fail;
    if (res) sl_zimage_set_costs(m, res, 128, 128, 128, 1, tflops);
    SL_DEBUG("Z-Image DiT: %s layout, D=%d, %d layers, %d+%d refiners, %lld parameters",
             m->layout == SL_ZIMAGE_OFFICIAL ? "official" : "ComfyUI", c->dim, c->n_layers,
             c->n_refiner, c->n_refiner, sl_zimage_param_count(c));
    *out = m;
    return SL_OK;
fail:
    sl_err_prefix(err, "loading the diffusion model: ");
    sl_zimage_free(m);
    return st;
}

void sl_zimage_free(sl_zimage *m) {
    if (!m) return;
    free(m->blocks);
    free(m->host_tab);
    free(m->host_pos);
    free(m);
}

/* ------------------------------------------------------------------------------------------ */
/* shapes, FLOPs and costs                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int64_t pad_to(int64_t n, int64_t m) {
    return (n + m - 1) / m * m;
}

typedef struct shape {
    int64_t Hl, Wl, Ht, Wt, Ni, Nip;
    int64_t Lc[2], Lcp[2], N[2];
    int nb;
} shape;

static shape make_shape(const sl_zimage_config *c, int64_t Hl, int64_t Wl, const int *lc, int nb) {
    shape s = {0};
    s.Hl = Hl;
    s.Wl = Wl;
    s.Ht = Hl / c->patch;
    s.Wt = Wl / c->patch;
    s.Ni = s.Ht * s.Wt;
    s.Nip = pad_to(s.Ni, c->seq_multi);
    s.nb = nb;
    for (int b = 0; b < nb; b++) {
        s.Lc[b] = lc[b];
        s.Lcp[b] = pad_to(lc[b], c->seq_multi);
        s.N[b] = s.Nip + s.Lcp[b];
    }
    return s;
}

static double block_flops(const sl_zimage_config *c, double n) {
    double D = c->dim, F = c->ffn_dim;
    return 2.0 * n * (4.0 * D * D + 3.0 * D * F) + 4.0 * n * n * D;
}

double sl_zimage_flops(const sl_zimage *m, int b, int Hl, int Wl, int Lc) {
    const sl_zimage_config *c = &m->cfg;
    shape s = make_shape(c, Hl, Wl, &Lc, 1);
    double D = c->dim, pin = (double)c->patch * c->patch * c->in_ch;
    if (b < 0)
        return 2.0 * (double)s.Ni * pin * D * 2.0 + 2.0 * (double)s.Lc[0] * c->cap_dim * D +
               2.0 * ((double)c->t_freq_dim * c->t_mid + (double)c->t_mid * c->adaln_dim +
                      c->adaln_dim * D);
    SL_ASSERT(b < m->n_blocks);
    const sl_zimage_block *blk = &m->blocks[b];
    double n = blk->kind == SL_ZIMAGE_NOISE_REFINER     ? (double)s.Nip
               : blk->kind == SL_ZIMAGE_CONTEXT_REFINER ? (double)s.Lcp[0]
                                                        : (double)s.N[0];
    return block_flops(c, n) + (blk->modulated ? 2.0 * 4.0 * D * c->adaln_dim : 0.0);
}

void sl_zimage_set_costs(const sl_zimage *m, sl_res *res, int Hl, int Wl, int Lc, int n_branches,
                         double tflops) {
    if (!res) return;
    double rate = (tflops > 0 ? tflops : 100.0) * 1e12;
    if (m->unit_globals >= 0)
        sl_res_set_unit_cost(res, m->unit_globals,
                             n_branches * sl_zimage_flops(m, -1, Hl, Wl, Lc) / rate);
    for (int b = 0; b < m->n_blocks; b++)
        if (m->blocks[b].unit >= 0)
            sl_res_set_unit_cost(res, m->blocks[b].unit,
                                 n_branches * sl_zimage_flops(m, b, Hl, Wl, Lc) / rate);
}

/* ------------------------------------------------------------------------------------------ */
/* positions and RoPE                                                                          */
/* ------------------------------------------------------------------------------------------ */

void sl_zimage_positions(const sl_zimage_config *c, int Ht, int Wt, int Lc, int *pos) {
    int64_t Ni = (int64_t)Ht * Wt, Nip = pad_to(Ni, c->seq_multi), Lcp = pad_to(Lc, c->seq_multi);
    int64_t r = 0;
    for (int h = 0; h < Ht; h++)
        for (int w = 0; w < Wt; w++, r++) {
            pos[3 * r + 0] = (int)Lcp + 1;
            pos[3 * r + 1] = h;
            pos[3 * r + 2] = w;
        }
    for (; r < Nip; r++)
        pos[3 * r] = pos[3 * r + 1] = pos[3 * r + 2] = 0;
    for (int64_t j = 0; j < Lcp; j++, r++) {
        pos[3 * r + 0] = (int)j + 1;
        pos[3 * r + 1] = 0;
        pos[3 * r + 2] = 0;
    }
}

void sl_zimage_rope_table(const sl_zimage_config *c, const int *pos, int n, float *tab) {
    int half = c->head_dim / 2;
    double omega[256];
    int axis_of[256];
    SL_ASSERT(half <= 256);
    int p = 0;
    for (int a = 0; a < 3; a++)
        for (int j = 0; j < c->axes_dims[a] / 2; j++, p++) {
            omega[p] = 1.0 / pow((double)c->rope_theta, (double)(2 * j) / (double)c->axes_dims[a]);
            axis_of[p] = a;
        }
    SL_ASSERT(p == half);
    for (int r = 0; r < n; r++)
        for (int q = 0; q < half; q++) {
            float ang = (float)((double)pos[3 * r + axis_of[q]] * omega[q]);
            tab[((size_t)r * half + q) * 2 + 0] = (float)cos((double)ang);
            tab[((size_t)r * half + q) * 2 + 1] = (float)sin((double)ang);
        }
}

/* ------------------------------------------------------------------------------------------ */
/* forward                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Modulation of one block from c: rows scale_msa (1+s), gate_msa (tanh), scale_mlp, gate_mlp.
 * mod f32 [4, D] persists; a raw [4, D] temporary is popped again. */
static void modulation(sl_ctx *ctx, const sl_zimage_block *b, const sl_tensor *c, sl_tensor *mod) {
    int64_t D = mod->ne[1];
    size_t mk = sl_ctx_mark(ctx);
    sl_tensor raw = sl_new2(ctx, SL_DTYPE_F32, 1, 4 * D);
    sl_op_matmul(ctx, &raw, c, &b->ada_w, &b->ada_b);
    sl_tensor r4 = sl_reshape2(&raw, 4, D);
    for (int j = 0; j < 4; j++) {
        sl_tensor in = sl_tensor_rows(&r4, j, 1), o = sl_tensor_rows(mod, j, 1);
        if (j % 2 == 0)
            sl_op_scale(ctx, &o, &in, 1.0f, 1.0f);
        else
            sl_op_unary(ctx, SL_UNARY_TANH, &o, &in);
    }
    sl_ctx_reset(ctx, mk);
}

/* One transformer block over x f32 [n, D] in place, with RoPE table tab [n, Dh/2, 2] and
 * modulation rows mod [4, D] (NULL: unmodulated context refiner, scale = gate = 1). */
static void block_forward(sl_ctx *ctx, const sl_zimage_config *c, const sl_zimage_block *b,
                          sl_tensor *x, const sl_tensor *tab, const sl_tensor *mod) {
    int64_t n = x->ne[0], D = c->dim, H = c->n_heads, Dh = c->head_dim, F = c->ffn_dim;
    float eps = c->norm_eps;
    sl_dtype act = ctx->act;
    sl_tensor rows[4], *scale_msa = NULL, *gate_msa = NULL, *scale_mlp = NULL, *gate_mlp = NULL;
    if (mod) {
        for (int j = 0; j < 4; j++)
            rows[j] = sl_tensor_rows(mod, j, 1);
        scale_msa = &rows[0];
        gate_msa = &rows[1];
        scale_mlp = &rows[2];
        gate_mlp = &rows[3];
    }
    size_t mk = sl_ctx_mark(ctx);

    /* attention: x += gate_msa ⊙ RMSNorm(Attn(RMSNorm(x)·scale_msa); attention_norm2) */
    sl_tensor h = sl_new2(ctx, act, n, D);
    sl_op_rms_norm(ctx, &h, x, &b->attn_norm1, scale_msa, eps);
    sl_tensor q = sl_new2(ctx, act, n, D), k = sl_new2(ctx, act, n, D), v = sl_new2(ctx, act, n, D);
    sl_op_matmul(ctx, &q, &h, &b->wq, NULL);
    sl_op_matmul(ctx, &k, &h, &b->wk, NULL);
    sl_op_matmul(ctx, &v, &h, &b->wv, NULL);
    sl_tensor q3 = sl_reshape3(&q, n, H, Dh), k3 = sl_reshape3(&k, n, H, Dh),
              v3 = sl_reshape3(&v, n, H, Dh);
    sl_tensor qr = sl_new3(ctx, act, n, H, Dh), kr = sl_new3(ctx, act, n, H, Dh);
    sl_op_rope(ctx, &qr, &q3, &b->q_norm, eps, tab, SL_ROPE_INTERLEAVED);
    sl_op_rope(ctx, &kr, &k3, &b->k_norm, eps, tab, SL_ROPE_INTERLEAVED);
    sl_tensor o = sl_new3(ctx, act, n, H, Dh);
    sl_op_attention(ctx, &o, &qr, &kr, &v3, 1.0f / sqrtf((float)Dh), false);
    sl_tensor a = sl_new2(ctx, act, n, D), o2 = sl_reshape2(&o, n, D);
    sl_op_matmul(ctx, &a, &o2, &b->wo, NULL);
    sl_op_gated_add(ctx, x, &a, &b->attn_norm2, gate_msa, eps);
    sl_ctx_reset(ctx, mk);

    /* feed-forward: x += gate_mlp ⊙ RMSNorm(w2(SiLU(w1·h) ⊙ w3·h); ffn_norm2) */
    h = sl_new2(ctx, act, n, D);
    sl_op_rms_norm(ctx, &h, x, &b->ffn_norm1, scale_mlp, eps);
    sl_tensor g = sl_new2(ctx, act, n, F), u = sl_new2(ctx, act, n, F), s = sl_new2(ctx, act, n, F);
    sl_op_matmul(ctx, &g, &h, &b->w1, NULL);
    sl_op_matmul(ctx, &u, &h, &b->w3, NULL);
    sl_op_glu(ctx, SL_UNARY_SILU, &s, &g, &u);
    sl_tensor f = sl_new2(ctx, act, n, D);
    sl_op_matmul(ctx, &f, &s, &b->w2, NULL);
    sl_op_gated_add(ctx, x, &f, &b->ffn_norm2, gate_mlp, eps);
    sl_ctx_reset(ctx, mk);
}

/* Host RoPE table of one branch uploaded into tab f32 [N, Dh/2, 2]. */
static void upload_table(sl_zimage *m, sl_ctx *ctx, const shape *s, int b, sl_tensor *tab) {
    const sl_zimage_config *c = &m->cfg;
    size_t n = (size_t)s->N[b], nf = n * (size_t)c->head_dim;
    if (ctx->status != SL_OK) return;
    if (m->host_tab_cap < nf) {
        float *t = realloc(m->host_tab, nf * sizeof *t);
        int *p = realloc(m->host_pos, 3 * n * sizeof *p);
        if (t) m->host_tab = t;
        if (p) m->host_pos = p;
        if (!t || !p) {
            sl_ctx_fail(ctx, SL_ERR_OOM_HOST,
                        "Z-Image DiT: no host memory for a RoPE table of %zu bytes",
                        nf * sizeof *t);
            return;
        }
        m->host_tab_cap = nf;
    }
    sl_zimage_positions(c, (int)s->Ht, (int)s->Wt, (int)s->Lc[b], m->host_pos);
    sl_zimage_rope_table(c, m->host_pos, (int)n, m->host_tab);
    sl_upload(ctx, tab, m->host_tab);
}

sl_status sl_zimage_forward(sl_zimage *m, sl_res *res, sl_ctx *ctx, const sl_tensor *latent,
                            float t, const sl_tensor *const *caps, int n_caps,
                            sl_tensor *const *vel, sl_err *err) {
    const sl_zimage_config *c = &m->cfg;
    const int64_t D = c->dim, Dh = c->head_dim, P = c->patch, C = c->in_ch;
    if (n_caps < 1 || n_caps > 2)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "Z-Image DiT: %d caption sets (1 or 2 allowed)",
                          n_caps);
    SL_ASSERTF(latent->ndim == 3 && latent->ne[0] == C && latent->dtype == SL_DTYPE_F32,
               "zimage forward: latent must be f32 [%lld, Hl, Wl]", (long long)C);
    if (latent->ne[1] % P || latent->ne[2] % P)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "Z-Image DiT: latent %lldx%lld is not a multiple of the patch size %lld "
                          "(image sides must be multiples of 16)",
                          (long long)latent->ne[1], (long long)latent->ne[2], (long long)P);
    int lc[2];
    for (int b = 0; b < n_caps; b++) {
        SL_ASSERTF(caps[b]->ndim == 2 && caps[b]->ne[1] == c->cap_dim,
                   "zimage forward: caption %d must be [L, %d]", b, c->cap_dim);
        SL_ASSERT(vel[b]->dtype == SL_DTYPE_F32 && sl_tensor_same_shape(vel[b], latent));
        if (caps[b]->ne[0] < 1)
            return sl_err_set(err, SL_ERR_INVALID_ARG, "Z-Image DiT: empty caption (0 tokens)");
        lc[b] = (int)caps[b]->ne[0];
    }
    if (ctx->status != SL_OK) return sl_ctx_take_error(ctx, err);
    shape s = make_shape(c, latent->ne[1], latent->ne[2], lc, n_caps);
    const sl_dtype act = ctx->act;
    const size_t mark0 = sl_ctx_mark(ctx);

    sl_res_begin_pass(res, ctx);
    sl_res_acquire(res, m->unit_globals, ctx);

    /* persistent: c (adaLN input), final-layer scale, per-block modulation */
    sl_tensor cvec = sl_new2(ctx, SL_DTYPE_F32, 1, c->adaln_dim);
    sl_tensor fscale = sl_new2(ctx, SL_DTYPE_F32, 1, D);
    sl_tensor mod = sl_new2(ctx, SL_DTYPE_F32, 4, D);
    {
        /* c = mlp.2(SiLU(mlp.0(sinusoid(t·1000)))) in f32, cos half first; no SiLU on c for the
         * blocks, SiLU before the final layer's adaLN: scale = 1 + Linear(SiLU(c)) */
        size_t mk = sl_ctx_mark(ctx);
        sl_tensor tf = sl_new2(ctx, SL_DTYPE_F32, 1, c->t_freq_dim);
        sl_op_timestep_embed(ctx, &tf, &t, 1, c->t_scale, 10000.0f, true);
        sl_tensor h1 = sl_new2(ctx, SL_DTYPE_F32, 1, c->t_mid),
                  h1s = sl_new2(ctx, SL_DTYPE_F32, 1, c->t_mid);
        sl_op_matmul(ctx, &h1, &tf, &m->t_w0, &m->t_b0);
        sl_op_unary(ctx, SL_UNARY_SILU, &h1s, &h1);
        sl_op_matmul(ctx, &cvec, &h1s, &m->t_w2, &m->t_b2);
        sl_tensor cs = sl_new2(ctx, SL_DTYPE_F32, 1, c->adaln_dim),
                  fs = sl_new2(ctx, SL_DTYPE_F32, 1, D);
        sl_op_unary(ctx, SL_UNARY_SILU, &cs, &cvec);
        sl_op_matmul(ctx, &fs, &cs, &m->final_ada_w, &m->final_ada_b);
        sl_op_scale(ctx, &fscale, &fs, 1.0f, 1.0f);
        sl_ctx_reset(ctx, mk);
    }

    /* residual streams f32 [N_b, D] (image rows first) and RoPE tables [N_b, Dh/2, 2] */
    sl_tensor x[2], tab[2];
    for (int b = 0; b < n_caps; b++) {
        x[b] = sl_new2(ctx, SL_DTYPE_F32, s.N[b], D);
        tab[b] = sl_new3(ctx, SL_DTYPE_F32, s.N[b], Dh / 2, 2);
        upload_table(m, ctx, &s, b, &tab[b]);
    }
    /* The noise refiner sees only image tokens; with equal caption padding both branches'
     * image rows are identical after it, so it runs once and is copied. */
    const bool share_img = n_caps == 2 && s.Lcp[0] == s.Lcp[1];

    /* image tokens: patchify (ph, pw, c) → x_embedder; pad rows = x_pad_token */
    {
        size_t mk = sl_ctx_mark(ctx);
        sl_tensor patches = sl_new2(ctx, act, s.Ni, P * P * C);
        sl_op_patchify(ctx, &patches, latent, (int)P, SL_PATCH_PW_C);
        sl_tensor xi = sl_tensor_rows(&x[0], 0, s.Ni);
        sl_op_matmul(ctx, &xi, &patches, &m->x_emb_w, &m->x_emb_b);
        if (s.Nip > s.Ni) {
            sl_tensor xp = sl_tensor_rows(&x[0], s.Ni, s.Nip - s.Ni);
            sl_op_repeat_rows(ctx, &xp, &m->x_pad);
        }
        sl_ctx_reset(ctx, mk);
        if (n_caps == 2 && !share_img) {
            sl_tensor src = sl_tensor_rows(&x[0], 0, s.Nip), dst = sl_tensor_rows(&x[1], 0, s.Nip);
            sl_op_copy(ctx, &dst, &src);
        }
    }
    /* caption tokens: RMSNorm → cap_embedder.1; pad rows = cap_pad_token */
    for (int b = 0; b < n_caps; b++) {
        size_t mk = sl_ctx_mark(ctx);
        sl_tensor cn = sl_new2(ctx, act, s.Lc[b], c->cap_dim);
        sl_op_rms_norm(ctx, &cn, caps[b], &m->cap_norm, NULL, c->norm_eps);
        sl_tensor xc = sl_tensor_rows(&x[b], s.Nip, s.Lc[b]);
        sl_op_matmul(ctx, &xc, &cn, &m->cap_w, &m->cap_b);
        if (s.Lcp[b] > s.Lc[b]) {
            sl_tensor xp = sl_tensor_rows(&x[b], s.Nip + s.Lc[b], s.Lcp[b] - s.Lc[b]);
            sl_op_repeat_rows(ctx, &xp, &m->cap_pad);
        }
        sl_ctx_reset(ctx, mk);
    }

    /* blocks in execution order; both branches inside one acquire/release */
    for (int i = 0; i < m->n_blocks; i++) {
        const sl_zimage_block *blk = &m->blocks[i];
        sl_res_acquire(res, blk->unit, ctx);
        if (blk->modulated) modulation(ctx, blk, &cvec, &mod);
        for (int b = 0; b < n_caps; b++) {
            sl_tensor xr, tr;
            if (blk->kind == SL_ZIMAGE_NOISE_REFINER) {
                if (b > 0 && share_img) continue;
                xr = sl_tensor_rows(&x[b], 0, s.Nip);
                tr = sl_tensor_rows(&tab[b], 0, s.Nip);
            } else if (blk->kind == SL_ZIMAGE_CONTEXT_REFINER) {
                xr = sl_tensor_rows(&x[b], s.Nip, s.Lcp[b]);
                tr = sl_tensor_rows(&tab[b], s.Nip, s.Lcp[b]);
            } else {
                xr = x[b];
                tr = tab[b];
            }
            block_forward(ctx, c, blk, &xr, &tr, blk->modulated ? &mod : NULL);
        }
        sl_res_release(res, blk->unit, ctx);
        if (share_img && i == c->n_refiner - 1) {
            sl_tensor src = sl_tensor_rows(&x[0], 0, s.Nip), dst = sl_tensor_rows(&x[1], 0, s.Nip);
            sl_op_copy(ctx, &dst, &src);
        }
    }

    /* final layer on the real image tokens (the others are dropped by unpatchify):
     * y = Linear(LayerNorm(x)·(1 + scale)); v = −unpatchify(y) */
    for (int b = 0; b < n_caps; b++) {
        size_t mk = sl_ctx_mark(ctx);
        sl_tensor xi = sl_tensor_rows(&x[b], 0, s.Ni);
        sl_tensor ln = sl_new2(ctx, act, s.Ni, D);
        sl_op_layer_norm(ctx, &ln, &xi, NULL, NULL, &fscale, NULL, c->final_eps);
        sl_tensor y = sl_new2(ctx, act, s.Ni, P * P * C);
        sl_op_matmul(ctx, &y, &ln, &m->final_w, &m->final_b);
        sl_tensor img = sl_new3(ctx, act, C, s.Hl, s.Wl);
        sl_op_unpatchify(ctx, &img, &y, (int)P, SL_PATCH_PW_C);
        sl_op_scale(ctx, vel[b], &img, -1.0f, 0.0f);
        sl_ctx_reset(ctx, mk);
    }
    sl_res_release(res, m->unit_globals, ctx);
    sl_res_end_pass(res, ctx);
    sl_ctx_reset(ctx, mark0);
    if (ctx->status != SL_OK) sl_err_prefix(&ctx->err, "Z-Image DiT forward: ");
    return sl_ctx_take_error(ctx, err);
}

/* ------------------------------------------------------------------------------------------ */
/* arena size by formula: mirrors the allocation order of sl_zimage_forward exactly            */
/* ------------------------------------------------------------------------------------------ */

static size_t al(sl_dtype dt, int64_t rows, int64_t cols) {
    sl_tensor t = sl_tensor2(dt, rows, cols);
    return SL_ALIGN_UP(sl_tensor_nbytes(&t), (size_t)SL_ARENA_ALIGN);
}

size_t sl_zimage_arena_bytes(const sl_zimage_config *c, sl_dtype act, int Hl, int Wl, const int *lc,
                             int n_caps) {
    SL_ASSERT(n_caps >= 1 && n_caps <= 2);
    shape s = make_shape(c, Hl, Wl, lc, n_caps);
    const int64_t D = c->dim, F = c->ffn_dim, pin = (int64_t)c->patch * c->patch * c->in_ch;
    const sl_dtype f32 = SL_DTYPE_F32;
    size_t base = al(f32, 1, c->adaln_dim) + al(f32, 1, D) + al(f32, 4, D);
    /* time embedding temporaries (before the residual streams exist) */
    size_t peak = base + al(f32, 1, c->t_freq_dim) + 2 * al(f32, 1, c->t_mid) +
                  al(f32, 1, c->adaln_dim) + al(f32, 1, D);
    for (int b = 0; b < n_caps; b++)
        base += al(f32, s.N[b], D) + al(f32, s.N[b], c->head_dim);
    size_t tmp = al(act, s.Ni, pin);      /* patches */
    tmp = SL_MAX(tmp, al(f32, 1, 4 * D)); /* modulation */
    size_t nmax = 0;
    for (int b = 0; b < n_caps; b++) {
        tmp = SL_MAX(tmp, al(act, s.Lc[b], c->cap_dim));
        nmax = SL_MAX(nmax, (size_t)s.N[b]);
    }
    /* blocks: attention 8 × [n, D]; feed-forward 2 × [n, D] + 3 × [n, F]; the largest n wins */
    int64_t n = (int64_t)nmax;
    tmp = SL_MAX(tmp, 8 * al(act, n, D));
    tmp = SL_MAX(tmp, 2 * al(act, n, D) + 3 * al(act, n, F));
    /* final layer */
    tmp = SL_MAX(tmp, al(act, s.Ni, D) + al(act, s.Ni, pin) + al(act, c->in_ch, s.Hl * s.Wl));
    return SL_MAX(peak, base + tmp);
}
