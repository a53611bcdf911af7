/* FLUX.1 AutoencoderKL: config, name tables for both layouts, loading, decode/encode, tiled decode,
 * arena formulas, synthetic lists. Semantics: flux_vae.h and specs/zimage.md §3. */
#include "models/flux_vae/flux_vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "models/synth.h"

sl_fluxvae_cfg sl_fluxvae_cfg_full(void) {
    return (sl_fluxvae_cfg){.in_ch = 3,
                            .z_ch = 16,
                            .n_levels = 4,
                            .ch = {128, 256, 512, 512},
                            .layers_per_block = 2,
                            .groups = 32,
                            .eps = 1e-6f,
                            .scale = 0.3611f,
                            .shift = 0.1159f};
}

sl_fluxvae_cfg sl_fluxvae_cfg_tiny(void) {
    sl_fluxvae_cfg c = sl_fluxvae_cfg_full();
    c.ch[0] = 32, c.ch[1] = 64, c.ch[2] = 128, c.ch[3] = 128;
    return c;
}

/* ---- the name table: one walk over every tensor of a half, in either layout ---- */

typedef enum { T_CONV, T_LIN, T_NORM, T_BIAS } tkind;

/* slot: 0 = globals, 1 = mid, 2 + i = level i */
typedef void (*visit_fn)(void *u, const char *name, int nd, const int64_t *ne, tkind kind,
                         sl_tensor *dst, int slot);

typedef struct walker {
    visit_fn fn;
    void *u;
    bool ldm;
} walker;

static void emit(walker *v, const char *base, const char *leaf, int nd, const int64_t *ne,
                 tkind kind, sl_tensor *dst, int slot) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", base, leaf);
    v->fn(v->u, name, nd, ne, kind, dst, slot);
}

static void w_conv(walker *v, const char *base, int64_t co, int64_t ci, int64_t k, sl_tensor *w,
                   sl_tensor *b, int slot) {
    emit(v, base, "weight", 4, (const int64_t[]){co, ci, k, k}, T_CONV, w, slot);
    emit(v, base, "bias", 1, (const int64_t[]){co}, T_BIAS, b, slot);
}

static void w_norm(walker *v, const char *base, int64_t c, sl_tensor *w, sl_tensor *b, int slot) {
    emit(v, base, "weight", 1, (const int64_t[]){c}, T_NORM, w, slot);
    emit(v, base, "bias", 1, (const int64_t[]){c}, T_BIAS, b, slot);
}

static void w_lin(walker *v, const char *base, int64_t c, sl_tensor *w, sl_tensor *b, int slot) {
    if (v->ldm)
        emit(v, base, "weight", 4, (const int64_t[]){c, c, 1, 1}, T_LIN, w, slot);
    else
        emit(v, base, "weight", 2, (const int64_t[]){c, c}, T_LIN, w, slot);
    emit(v, base, "bias", 1, (const int64_t[]){c}, T_BIAS, b, slot);
}

static void w_resnet(walker *v, const char *base, int64_t ci, int64_t co, sl_fluxvae_resnet *r,
                     int slot) {
    char b[160];
    r->cin = ci, r->cout = co;
    snprintf(b, sizeof b, "%s.norm1", base);
    w_norm(v, b, ci, &r->norm1_w, &r->norm1_b, slot);
    snprintf(b, sizeof b, "%s.conv1", base);
    w_conv(v, b, co, ci, 3, &r->conv1_w, &r->conv1_b, slot);
    snprintf(b, sizeof b, "%s.norm2", base);
    w_norm(v, b, co, &r->norm2_w, &r->norm2_b, slot);
    snprintf(b, sizeof b, "%s.conv2", base);
    w_conv(v, b, co, co, 3, &r->conv2_w, &r->conv2_b, slot);
    if (ci != co) {
        snprintf(b, sizeof b, "%s.%s", base, v->ldm ? "nin_shortcut" : "conv_shortcut");
        w_conv(v, b, co, ci, 1, &r->short_w, &r->short_b, slot);
    }
}

static void w_mid(walker *v, const char *p, int64_t c, sl_fluxvae_half *hf) {
    char b[160];
    snprintf(b, sizeof b, v->ldm ? "%s.mid.block_1" : "%s.mid_block.resnets.0", p);
    w_resnet(v, b, c, c, &hf->mid_res[0], 1);
    static const char *diff[] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    static const char *ldm[] = {"norm", "q", "k", "v", "proj_out"};
    const char **nm = v->ldm ? ldm : diff;
    const char *ab = v->ldm ? "mid.attn_1" : "mid_block.attentions.0";
    sl_fluxvae_attn *a = &hf->mid_attn;
    snprintf(b, sizeof b, "%s.%s.%s", p, ab, nm[0]);
    w_norm(v, b, c, &a->norm_w, &a->norm_b, 1);
    snprintf(b, sizeof b, "%s.%s.%s", p, ab, nm[1]);
    w_lin(v, b, c, &a->q_w, &a->q_b, 1);
    snprintf(b, sizeof b, "%s.%s.%s", p, ab, nm[2]);
    w_lin(v, b, c, &a->k_w, &a->k_b, 1);
    snprintf(b, sizeof b, "%s.%s.%s", p, ab, nm[3]);
    w_lin(v, b, c, &a->v_w, &a->v_b, 1);
    snprintf(b, sizeof b, "%s.%s.%s", p, ab, nm[4]);
    w_lin(v, b, c, &a->o_w, &a->o_b, 1);
    snprintf(b, sizeof b, v->ldm ? "%s.mid.block_2" : "%s.mid_block.resnets.1", p);
    w_resnet(v, b, c, c, &hf->mid_res[1], 1);
}

/* Decoder level k (diffusers up_blocks.k) input/output channels. */
static void dec_level_ch(const sl_fluxvae_cfg *c, int k, int64_t *ci, int64_t *co) {
    int n = c->n_levels;
    *co = c->ch[n - 1 - k];
    *ci = k == 0 ? c->ch[n - 1] : c->ch[n - k];
}

static void enc_level_ch(const sl_fluxvae_cfg *c, int i, int64_t *ci, int64_t *co) {
    *co = c->ch[i];
    *ci = i == 0 ? c->ch[0] : c->ch[i - 1];
}

/* Walk every tensor of the decoder (dec) or encoder, filling hf's structure as it goes. */
static void walk_half(const sl_fluxvae_cfg *c, bool ldm, bool dec, sl_fluxvae_half *hf, visit_fn fn,
                      void *u) {
    walker v = {fn, u, ldm};
    int n = c->n_levels;
    int64_t top = c->ch[n - 1];
    const char *p = dec ? "decoder" : "encoder";
    char b[160];
    snprintf(b, sizeof b, "%s.conv_in", p);
    if (dec)
        w_conv(&v, b, top, c->z_ch, 3, &hf->conv_in_w, &hf->conv_in_b, 0);
    else
        w_conv(&v, b, c->ch[0], c->in_ch, 3, &hf->conv_in_w, &hf->conv_in_b, 0);
    if (dec) w_mid(&v, p, top, hf);
    for (int k = 0; k < n; k++) {
        sl_fluxvae_level *L = &hf->lv[k];
        int64_t ci, co;
        if (dec)
            dec_level_ch(c, k, &ci, &co);
        else
            enc_level_ch(c, k, &ci, &co);
        L->n_res = dec ? c->layers_per_block + 1 : c->layers_per_block;
        L->has_sample = k < n - 1;
        for (int r = 0; r < L->n_res; r++) {
            if (dec && ldm)
                snprintf(b, sizeof b, "%s.up.%d.block.%d", p, n - 1 - k, r);
            else if (dec)
                snprintf(b, sizeof b, "%s.up_blocks.%d.resnets.%d", p, k, r);
            else if (ldm)
                snprintf(b, sizeof b, "%s.down.%d.block.%d", p, k, r);
            else
                snprintf(b, sizeof b, "%s.down_blocks.%d.resnets.%d", p, k, r);
            w_resnet(&v, b, r == 0 ? ci : co, co, &L->res[r], 2 + k);
        }
        if (L->has_sample) {
            if (dec && ldm)
                snprintf(b, sizeof b, "%s.up.%d.upsample.conv", p, n - 1 - k);
            else if (dec)
                snprintf(b, sizeof b, "%s.up_blocks.%d.upsamplers.0.conv", p, k);
            else if (ldm)
                snprintf(b, sizeof b, "%s.down.%d.downsample.conv", p, k);
            else
                snprintf(b, sizeof b, "%s.down_blocks.%d.downsamplers.0.conv", p, k);
            w_conv(&v, b, co, co, 3, &L->sample_w, &L->sample_b, 2 + k);
        }
    }
    if (!dec) w_mid(&v, p, top, hf);
    snprintf(b, sizeof b, "%s.%s", p, ldm ? "norm_out" : "conv_norm_out");
    w_norm(&v, b, dec ? c->ch[0] : top, &hf->norm_out_w, &hf->norm_out_b, 0);
    snprintf(b, sizeof b, "%s.conv_out", p);
    if (dec)
        w_conv(&v, b, c->in_ch, c->ch[0], 3, &hf->conv_out_w, &hf->conv_out_b, 0);
    else
        w_conv(&v, b, 2 * (int64_t)c->z_ch, top, 3, &hf->conv_out_w, &hf->conv_out_b, 0);
}

/* ---- synthetic lists ---- */

static void synth_visit(void *u, const char *name, int nd, const int64_t *ne, tkind kind,
                        sl_tensor *dst, int slot) {
    (void)dst, (void)slot;
    sl_synth_list *l = u;
    /* Convs and linears N(0, 1/fan_in): unit-scale outputs after every GroupNorm; norm weights
     * near 1 and small biases, so that a dropped affine or bias changes the output. Everything
     * stays float (VAEs are not quantised; conv weights must be plain floats). */
    switch (kind) {
    case T_CONV:
    case T_LIN: {
        int64_t fan = 1;
        for (int i = 1; i < nd; i++)
            fan *= ne[i];
        sl_synth_list_add(l, name, nd, ne, SL_INIT_NORMAL, 0.0f, (float)(1.0 / sqrt((double)fan)),
                          true);
        break;
    }
    case T_NORM:
        sl_synth_list_add(l, name, nd, ne, SL_INIT_NORMAL, 1.0f, 0.1f, true);
        break;
    case T_BIAS:
        sl_synth_list_add(l, name, nd, ne, SL_INIT_NORMAL, 0.0f, 0.05f, true);
        break;
    }
}

sl_status sl_fluxvae_synth_list(const char *size, const char *layout, sl_synth_list *out,
                                sl_err *err) {
    sl_fluxvae_cfg c;
    if (size && !strcmp(size, "tiny"))
        c = sl_fluxvae_cfg_tiny();
    else if (size && !strcmp(size, "full"))
        c = sl_fluxvae_cfg_full();
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flux vae: unknown size '%s' (use tiny or full)",
                          size ? size : "(null)");
    bool ldm;
    if (!layout || !strcmp(layout, "official") || !strcmp(layout, "diffusers"))
        ldm = false;
    else if (!strcmp(layout, "comfy") || !strcmp(layout, "ldm") || !strcmp(layout, "bfl"))
        ldm = true;
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "flux vae: unknown layout '%s' (use official (diffusers names) or comfy "
                          "(ae.safetensors / LDM names))",
                          layout);
    snprintf(out->arch, sizeof out->arch, "flux_vae");
    sl_fluxvae_half *tmp = calloc(1, sizeof *tmp);
    if (!tmp) return sl_err_set(err, SL_ERR_OOM_HOST, "flux vae: out of host memory");
    walk_half(&c, ldm, false, tmp, synth_visit, out);
    memset(tmp, 0, sizeof *tmp);
    walk_half(&c, ldm, true, tmp, synth_visit, out);
    free(tmp);
    return SL_OK;
}

/* ---- loading ---- */

static int plain_float(sl_dtype d) {
    return sl_dtype_get(d)->is_float && !sl_dtype_get(d)->is_quant;
}

static const char *shape_str(int nd, const int64_t *ne, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

typedef struct bind_ctx {
    const sl_wdir *wd;
    sl_res *res;
    int units[2 + SL_FLUXVAE_MAX_LEVELS]; /* slot → residency unit */
    bool ldm;
    sl_status st;
    sl_err *err;
} bind_ctx;

static void bind_visit(void *u, const char *name, int nd, const int64_t *ne, tkind kind,
                       sl_tensor *dst, int slot) {
    bind_ctx *b = u;
    if (b->st != SL_OK) return;
    const sl_wentry *e = sl_wdir_find(b->wd, name);
    if (!e) {
        b->st = sl_err_set(b->err, SL_ERR_NOT_FOUND,
                           "flux vae: tensor '%s' is missing (file detected as the %s layout; is "
                           "this a complete FLUX.1 AutoencoderKL?)",
                           name, b->ldm ? "LDM/BFL ae.safetensors" : "diffusers");
        return;
    }
    int ok = e->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = e->ne[i] == ne[i];
    if (!ok) {
        char x[96], y[96];
        b->st = sl_err_set(b->err, SL_ERR_SHAPE,
                           "flux vae: tensor '%s' in %s has shape %s, expected %s", e->name,
                           sl_wdir_file_path(b->wd, e->file), shape_str(e->ndim, e->ne, x, 96),
                           shape_str(nd, ne, y, 96));
        return;
    }
    if (kind == T_LIN ? !sl_dtype_get(e->dtype)->is_float : !plain_float(e->dtype)) {
        b->st = sl_err_set(b->err, SL_ERR_UNSUPPORTED,
                           "flux vae: tensor '%s' in %s has dtype %s; VAE convolutions, norms and "
                           "biases must be f32, f16 or bf16 (re-export the VAE unquantised)",
                           e->name, sl_wdir_file_path(b->wd, e->file), sl_dtype_name(e->dtype));
        return;
    }
    if (b->res)
        sl_res_add_tensor(b->res, b->units[slot], e, 0, 0, dst);
    else
        *dst = sl_wentry_tensor(e);
    dst->name = e->name;
}

static const sl_wentry *findf(const sl_wdir *wd, const char *fmt, int a, int b) {
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    return sl_wdir_find(wd, name);
}

/* Layout and config from the file: from the decoder when it is there, else the encoder. */
static sl_status detect(const sl_wdir *wd, sl_fluxvae_cfg *c, sl_fluxvae_layout *lay, sl_err *err) {
    bool ldm;
    if (sl_wdir_find(wd, "decoder.mid_block.resnets.0.conv1.weight") ||
        sl_wdir_find(wd, "encoder.mid_block.resnets.0.conv1.weight"))
        ldm = false;
    else if (sl_wdir_find(wd, "decoder.mid.block_1.conv1.weight") ||
             sl_wdir_find(wd, "encoder.mid.block_1.conv1.weight"))
        ldm = true;
    else
        return sl_err_set(err, SL_ERR_NOT_FOUND,
                          "flux vae: no VAE tensors found (looked for decoder.mid_block.resnets.0."
                          "conv1.weight (diffusers) and decoder.mid.block_1.conv1.weight "
                          "(ae.safetensors)); is this a VAE file?");
    *lay = ldm ? SL_FLUXVAE_LDM : SL_FLUXVAE_DIFFUSERS;
    *c = sl_fluxvae_cfg_full();
    bool dec = sl_wdir_find(wd, "decoder.conv_in.weight") != NULL;
    const sl_wentry *cin =
        sl_wdir_find(wd, dec ? "decoder.conv_in.weight" : "encoder.conv_in.weight");
    const sl_wentry *cout =
        sl_wdir_find(wd, dec ? "decoder.conv_out.weight" : "encoder.conv_out.weight");
    if (!cin || !cout || cin->ndim != 4 || cout->ndim != 4)
        return sl_err_set(err, SL_ERR_NOT_FOUND, "flux vae: %s.conv_in/conv_out missing or not 4-D",
                          dec ? "decoder" : "encoder");
    const char *res0 = dec ? (ldm ? "decoder.up.%d.block.%d.conv1.weight"
                                  : "decoder.up_blocks.%d.resnets.%d.conv1.weight")
                           : (ldm ? "encoder.down.%d.block.%d.conv1.weight"
                                  : "encoder.down_blocks.%d.resnets.%d.conv1.weight");
    int n = 0;
    while (n <= SL_FLUXVAE_MAX_LEVELS && findf(wd, res0, n, 0))
        n++;
    if (n < 1 || n > SL_FLUXVAE_MAX_LEVELS)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "flux vae: %d resolution levels (supported 1..%d)", n,
                          SL_FLUXVAE_MAX_LEVELS);
    c->n_levels = n;
    for (int k = 0; k < n; k++) {
        /* LDM decoder levels are numbered from the full-resolution end, like the encoder */
        int file_idx = (dec && !ldm) ? n - 1 - k : k;
        const sl_wentry *e = findf(wd, res0, file_idx, 0);
        if (!e || e->ndim != 4)
            return sl_err_set(err, SL_ERR_SHAPE, "flux vae: level %d's first conv is not 4-D", k);
        c->ch[k] = e->ne[0];
    }
    int nres = 0;
    while (nres <= SL_FLUXVAE_MAX_RES && findf(wd, res0, 0, nres))
        nres++;
    c->layers_per_block = dec ? nres - 1 : nres;
    if (c->layers_per_block < 1 || nres > SL_FLUXVAE_MAX_RES)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "flux vae: %d resnets per level (supported up to %d)", nres,
                          SL_FLUXVAE_MAX_RES);
    if (dec) {
        c->z_ch = (int)cin->ne[1];
        c->in_ch = (int)cout->ne[0];
    } else {
        c->z_ch = (int)(cout->ne[0] / 2);
        c->in_ch = (int)cin->ne[1];
    }
    for (int k = 0; k < n; k++)
        if (c->ch[k] <= 0 || c->ch[k] % c->groups)
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "flux vae: level %d has %lld channels, not a multiple of %d groups",
                              k, (long long)c->ch[k], c->groups);
    return SL_OK;
}

/* FLOPs of one pass per unit slot for an H × W image. */
static void unit_flops(const sl_fluxvae_cfg *c, bool dec, int64_t H, int64_t W, double *f) {
    int n = c->n_levels;
    int64_t top = c->ch[n - 1], f8 = (int64_t)1 << (n - 1);
    double hw_lat = (double)(H / f8) * (double)(W / f8);
    for (int i = 0; i < 2 + n; i++)
        f[i] = 0;
#define CONV(co, ci, k, px) (2.0 * (double)(co) * (double)(ci) * (k) * (k) * (double)(px))
    double mid =
        4 * CONV(top, top, 3, hw_lat) + 8.0 * hw_lat * top * top + 4.0 * hw_lat * hw_lat * top;
    f[1] = mid;
    if (dec) {
        f[0] = CONV(top, c->z_ch, 3, hw_lat) + CONV(c->in_ch, c->ch[0], 3, (double)H * W);
        double px = hw_lat;
        for (int k = 0; k < n; k++) {
            int64_t ci, co;
            dec_level_ch(c, k, &ci, &co);
            f[2 + k] = CONV(co, ci, 3, px) + CONV(co, co, 3, px) * (2 * c->layers_per_block + 1);
            if (k < n - 1) f[2 + k] += CONV(co, co, 3, px * 4), px *= 4;
        }
    } else {
        f[0] = CONV(c->ch[0], c->in_ch, 3, (double)H * W) + CONV(2 * c->z_ch, top, 3, hw_lat);
        double px = (double)H * W;
        for (int k = 0; k < n; k++) {
            int64_t ci, co;
            enc_level_ch(c, k, &ci, &co);
            f[2 + k] = CONV(co, ci, 3, px) + CONV(co, co, 3, px) * (2 * c->layers_per_block - 1);
            if (k < n - 1) f[2 + k] += CONV(co, co, 3, px / 4), px /= 4;
        }
    }
#undef CONV
}

static sl_status load_half(const sl_wdir *wd, sl_fluxvae *m, bool dec, sl_res *res,
                           const sl_fluxvae_load_opts *o, sl_err *err) {
    sl_fluxvae_half *hf = dec ? &m->dec : &m->enc;
    const sl_fluxvae_cfg *c = &m->cfg;
    bind_ctx b = {.wd = wd, .res = res, .ldm = m->layout == SL_FLUXVAE_LDM, .err = err};
    if (res) {
        char nm[32];
        const char *p = dec ? "dec" : "enc";
        snprintf(nm, sizeof nm, "%s.globals", p);
        b.units[0] = sl_res_add_unit(res, nm);
        if (dec) {
            snprintf(nm, sizeof nm, "%s.mid", p);
            b.units[1] = sl_res_add_unit(res, nm);
        }
        for (int k = 0; k < c->n_levels; k++) {
            snprintf(nm, sizeof nm, dec ? "%s.up.%d" : "%s.down.%d", p, k);
            b.units[2 + k] = sl_res_add_unit(res, nm);
        }
        if (!dec) {
            snprintf(nm, sizeof nm, "%s.mid", p);
            b.units[1] = sl_res_add_unit(res, nm);
        }
        double fl[2 + SL_FLUXVAE_MAX_LEVELS];
        int64_t H = o->est_h > 0 ? o->est_h : 1024, W = o->est_w > 0 ? o->est_w : 1024;
        unit_flops(c, dec, H, W, fl);
        double rate = o->est_flops > 0 ? o->est_flops : 1e14;
        for (int i = 0; i < 2 + c->n_levels; i++)
            sl_res_set_unit_cost(res, b.units[i], fl[i] / rate);
    }
    walk_half(c, b.ldm, dec, hf, bind_visit, &b);
    if (b.st != SL_OK) return b.st;
    hf->unit_globals = b.units[0];
    hf->unit_mid = b.units[1];
    for (int k = 0; k < c->n_levels; k++)
        hf->lv[k].unit = b.units[2 + k];
    hf->res = res;
    hf->present = true;
    return SL_OK;
}

void sl_fluxvae_free(sl_fluxvae *m) {
    free(m);
}

sl_status sl_fluxvae_load(const sl_wdir *wd, sl_res *dec_res, sl_res *enc_res, bool want_dec,
                          bool want_enc, const sl_fluxvae_load_opts *opts, sl_fluxvae **out,
                          sl_err *err) {
    *out = NULL;
    sl_fluxvae_load_opts o = opts ? *opts : (sl_fluxvae_load_opts){0};
    sl_fluxvae *m = calloc(1, sizeof *m);
    if (!m) return sl_err_set(err, SL_ERR_OOM_HOST, "flux vae: out of host memory");
    sl_status st = detect(wd, &m->cfg, &m->layout, err);
    if (o.scale > 0) m->cfg.scale = o.scale, m->cfg.shift = o.shift;
    if (st == SL_OK && (dec_res || want_dec)) st = load_half(wd, m, true, dec_res, &o, err);
    if (st == SL_OK && (enc_res || want_enc)) st = load_half(wd, m, false, enc_res, &o, err);
    if (st != SL_OK) {
        free(m);
        return st;
    }
    SL_DEBUG("flux vae: %s layout, ch [%lld, %lld, ...] x %d levels, z %d, decoder %s, encoder %s",
             m->layout == SL_FLUXVAE_LDM ? "LDM" : "diffusers", (long long)m->cfg.ch[0],
             (long long)m->cfg.ch[1], m->cfg.n_levels, m->cfg.z_ch, m->dec.present ? "yes" : "no",
             m->enc.present ? "yes" : "no");
    *out = m;
    return SL_OK;
}

/* ---- forward: a pool of three equal buffers, ping-ponged ---- */

#define NPOOL 3

typedef struct pool {
    sl_tensor buf[NPOOL];
    bool used[NPOOL];
    int64_t cap; /* elements per buffer */
    sl_dtype dt;
} pool;

typedef struct act {
    sl_tensor t;
    int slot; /* pool buffer, -1 when not pooled */
} act;

static size_t abytes(int64_t elems, sl_dtype dt) {
    return SL_ALIGN_UP(sl_dtype_row_bytes(dt, elems), (size_t)SL_ARENA_ALIGN);
}

static void pool_init(sl_ctx *ctx, pool *p, int64_t cap) {
    p->cap = cap;
    p->dt = ctx->act;
    for (int i = 0; i < NPOOL; i++) {
        p->buf[i] = sl_new1(ctx, p->dt, cap);
        p->used[i] = false;
    }
}

static act pget(pool *p, int64_t c, int64_t h, int64_t w) {
    SL_ASSERTF(c * h * w <= p->cap,
               "flux vae: activation [%lld, %lld, %lld] exceeds the pool "
               "buffer (%lld elements): the size formula is wrong",
               (long long)c, (long long)h, (long long)w, (long long)p->cap);
    for (int i = 0; i < NPOOL; i++) {
        if (p->used[i]) continue;
        p->used[i] = true;
        act a = {sl_tensor3(p->dt, c, h, w), i};
        a.t.data = p->buf[i].data;
        return a;
    }
    SL_ASSERTF(0, "flux vae: all %d pool buffers in use", NPOOL);
    return (act){{0}, -1};
}

static void pput(pool *p, const act *a) {
    if (a->slot < 0) return;
    SL_ASSERT(p->used[a->slot]);
    p->used[a->slot] = false;
}

static const int PAD1[4] = {1, 1, 1, 1}, PAD0[4] = {0, 0, 0, 0};

typedef struct fwd {
    sl_ctx *ctx;
    pool p;
    const sl_fluxvae_cfg *c;
} fwd;

/* *x ← resnet(*x); the input is released. At most three pool buffers are live. */
static void resnet_fwd(fwd *f, const sl_fluxvae_resnet *r, act *x) {
    sl_ctx *ctx = f->ctx;
    int64_t H = x->t.ne[1], W = x->t.ne[2];
    act a = pget(&f->p, r->cin, H, W);
    sl_op_group_norm(ctx, &a.t, &x->t, f->c->groups, &r->norm1_w, &r->norm1_b, f->c->eps, true);
    act b = pget(&f->p, r->cout, H, W);
    sl_op_conv2d(ctx, &b.t, &a.t, &r->conv1_w, &r->conv1_b, 1, PAD1);
    pput(&f->p, &a);
    a = pget(&f->p, r->cout, H, W);
    sl_op_group_norm(ctx, &a.t, &b.t, f->c->groups, &r->norm2_w, &r->norm2_b, f->c->eps, true);
    pput(&f->p, &b);
    b = pget(&f->p, r->cout, H, W);
    sl_op_conv2d(ctx, &b.t, &a.t, &r->conv2_w, &r->conv2_b, 1, PAD1);
    pput(&f->p, &a);
    act s = *x;
    if (r->cin != r->cout) {
        s = pget(&f->p, r->cout, H, W);
        sl_op_conv2d(ctx, &s.t, &x->t, &r->short_w, &r->short_b, 1, PAD0);
        pput(&f->p, x);
    }
    act o = pget(&f->p, r->cout, H, W);
    sl_op_add(ctx, &o.t, &s.t, &b.t);
    pput(&f->p, &s);
    pput(&f->p, &b);
    *x = o;
}

/* *x ← x + to_out(attention(GN(x))), single head of dim C over the H·W positions. q, k, v and
 * the attention output are carved from the arena above the pool and released here. */
static void attn_fwd(fwd *f, const sl_fluxvae_attn *at, act *x) {
    sl_ctx *ctx = f->ctx;
    sl_dtype A = f->p.dt;
    int64_t C = x->t.ne[0], H = x->t.ne[1], W = x->t.ne[2], S = H * W;
    static const int T2[4] = {1, 0, 2, 3};
    act a = pget(&f->p, C, H, W);
    sl_op_group_norm(ctx, &a.t, &x->t, f->c->groups, &at->norm_w, &at->norm_b, f->c->eps, false);
    act t = pget(&f->p, S, C, 1);
    t.t = sl_tensor2(A, S, C), t.t.data = f->p.buf[t.slot].data;
    sl_tensor a2 = sl_reshape2(&a.t, C, S);
    sl_op_permute(ctx, &t.t, &a2, T2);
    pput(&f->p, &a);

    size_t mark = sl_ctx_mark(ctx);
    sl_tensor qw = sl_reshape2(&at->q_w, C, C), kw = sl_reshape2(&at->k_w, C, C);
    sl_tensor vw = sl_reshape2(&at->v_w, C, C), ow = sl_reshape2(&at->o_w, C, C);
    sl_tensor q = sl_new2(ctx, A, S, C), k = sl_new2(ctx, A, S, C), v = sl_new2(ctx, A, S, C);
    sl_op_matmul(ctx, &q, &t.t, &qw, &at->q_b);
    sl_op_matmul(ctx, &k, &t.t, &kw, &at->k_b);
    sl_op_matmul(ctx, &v, &t.t, &vw, &at->v_b);
    pput(&f->p, &t);
    sl_tensor o = sl_new3(ctx, A, S, 1, C);
    sl_tensor q3 = sl_reshape3(&q, S, 1, C), k3 = sl_reshape3(&k, S, 1, C);
    sl_tensor v3 = sl_reshape3(&v, S, 1, C);
    sl_op_attention(ctx, &o, &q3, &k3, &v3, (float)(1.0 / sqrt((double)C)), false);
    act pr = pget(&f->p, S, C, 1);
    pr.t = sl_tensor2(A, S, C), pr.t.data = f->p.buf[pr.slot].data;
    sl_tensor o2 = sl_reshape2(&o, S, C);
    sl_op_matmul(ctx, &pr.t, &o2, &ow, &at->o_b);
    sl_ctx_reset(ctx, mark);

    act pt = pget(&f->p, C, H, W);
    sl_tensor pt2 = sl_reshape2(&pt.t, C, S);
    sl_op_permute(ctx, &pt2, &pr.t, T2);
    pput(&f->p, &pr);
    act out = pget(&f->p, C, H, W);
    sl_op_add(ctx, &out.t, &x->t, &pt.t);
    pput(&f->p, &pt);
    pput(&f->p, x);
    *x = out;
}

static void mid_fwd(fwd *f, const sl_fluxvae_half *hf, act *x) {
    resnet_fwd(f, &hf->mid_res[0], x);
    attn_fwd(f, &hf->mid_attn, x);
    resnet_fwd(f, &hf->mid_res[1], x);
}

/* Largest activation (elements) of a decode of an h × w latent. */
static int64_t dec_pool_elems(const sl_fluxvae_cfg *c, int64_t h, int64_t w) {
    int64_t m = c->ch[c->n_levels - 1] * h * w;
    for (int k = 0; k < c->n_levels; k++) {
        int64_t ci, co;
        dec_level_ch(c, k, &ci, &co);
        m = SL_MAX(m, SL_MAX(ci, co) * h * w);
        if (k < c->n_levels - 1) h *= 2, w *= 2, m = SL_MAX(m, co * h * w);
    }
    return m;
}

static int64_t enc_pool_elems(const sl_fluxvae_cfg *c, int64_t H, int64_t W) {
    int64_t m = 0;
    for (int k = 0; k < c->n_levels; k++) {
        int64_t ci, co;
        enc_level_ch(c, k, &ci, &co);
        m = SL_MAX(m, SL_MAX(ci, co) * H * W);
        if (k < c->n_levels - 1) H /= 2, W /= 2;
    }
    return SL_MAX(m, 2 * (int64_t)c->z_ch * H * W);
}

/* Arena bytes of the device-level decode (without its latent / image tensors). */
static size_t dec_arena(const sl_fluxvae_cfg *c, int64_t h, int64_t w, sl_dtype A) {
    int64_t Z = c->z_ch, top = c->ch[c->n_levels - 1], f8 = (int64_t)1 << (c->n_levels - 1);
    size_t b = NPOOL * abytes(dec_pool_elems(c, h, w), A) + abytes(Z * h * w, SL_DTYPE_F32);
    if (A != SL_DTYPE_F32) b += abytes(Z * h * w, A);
    size_t attn = 4 * abytes(h * w * top, A);
    size_t tail = A != SL_DTYPE_F32 ? abytes(c->in_ch * h * f8 * w * f8, A) : 0;
    return b + SL_MAX(attn, tail);
}

static size_t enc_arena(const sl_fluxvae_cfg *c, int64_t H, int64_t W, sl_dtype A) {
    int64_t Z = c->z_ch, top = c->ch[c->n_levels - 1], f8 = (int64_t)1 << (c->n_levels - 1);
    int64_t h = H / f8, w = W / f8;
    size_t b = NPOOL * abytes(enc_pool_elems(c, H, W), A);
    if (A != SL_DTYPE_F32) b += abytes(c->in_ch * H * W, A);
    size_t attn = 4 * abytes(h * w * top, A);
    size_t tail = abytes(Z * h * w, A) + (A != SL_DTYPE_F32 ? abytes(Z * h * w, SL_DTYPE_F32) : 0);
    return b + SL_MAX(attn, tail);
}

size_t sl_fluxvae_decode_arena_bytes(const sl_fluxvae_cfg *c, int64_t h, int64_t w, sl_dtype act) {
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    return abytes(c->z_ch * h * w, SL_DTYPE_F32) +
           abytes(c->in_ch * h * f8 * w * f8, SL_DTYPE_F32) + dec_arena(c, h, w, act);
}

size_t sl_fluxvae_encode_arena_bytes(const sl_fluxvae_cfg *c, int64_t H, int64_t W, sl_dtype act) {
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    return abytes(c->in_ch * H * W, SL_DTYPE_F32) +
           abytes(c->z_ch * (H / f8) * (W / f8), SL_DTYPE_F32) + enc_arena(c, H, W, act);
}

sl_status sl_fluxvae_decode(sl_fluxvae *m, sl_ctx *ctx, const sl_tensor *latent, sl_tensor *image,
                            sl_err *err) {
    const sl_fluxvae_cfg *c = &m->cfg;
    sl_fluxvae_half *hf = &m->dec;
    if (!hf->present)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flux vae: the decoder was not loaded");
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    SL_ASSERTF(latent->dtype == SL_DTYPE_F32 && latent->ndim == 3 && latent->ne[0] == c->z_ch,
               "flux vae decode: latent must be f32 [%d, h, w]", c->z_ch);
    int64_t h = latent->ne[1], w = latent->ne[2];
    SL_ASSERTF(image->dtype == SL_DTYPE_F32 && image->ndim == 3 && image->ne[0] == c->in_ch &&
                   image->ne[1] == h * f8 && image->ne[2] == w * f8,
               "flux vae decode: image must be f32 [%d, %lld, %lld]", c->in_ch, (long long)(h * f8),
               (long long)(w * f8));
    if (sl_ctx_status(ctx) != SL_OK) return sl_ctx_take_error(ctx, err);

    sl_res *res = ctx->base ? hf->res : NULL; /* dry runs: shapes only */
    sl_dtype A = ctx->act;
    size_t mark = sl_ctx_mark(ctx);
    fwd f = {.ctx = ctx, .c = c};
    pool_init(ctx, &f.p, dec_pool_elems(c, h, w));

    /* z = latent / scale + shift, in f32, then to the activation dtype */
    sl_tensor zf = sl_new3(ctx, SL_DTYPE_F32, c->z_ch, h, w);
    sl_op_scale(ctx, &zf, latent, 1.0f / c->scale, c->shift);
    act z = {zf, -1};
    if (A != SL_DTYPE_F32) {
        z.t = sl_new3(ctx, A, c->z_ch, h, w);
        sl_op_copy(ctx, &z.t, &zf);
    }

    sl_res_begin_pass(res, ctx);
    sl_res_acquire(res, hf->unit_globals, ctx);
    act x = pget(&f.p, c->ch[c->n_levels - 1], h, w);
    sl_op_conv2d(ctx, &x.t, &z.t, &hf->conv_in_w, &hf->conv_in_b, 1, PAD1);

    sl_res_acquire(res, hf->unit_mid, ctx);
    mid_fwd(&f, hf, &x);
    sl_res_release(res, hf->unit_mid, ctx);

    for (int k = 0; k < c->n_levels; k++) {
        const sl_fluxvae_level *L = &hf->lv[k];
        sl_res_acquire(res, L->unit, ctx);
        for (int r = 0; r < L->n_res; r++)
            resnet_fwd(&f, &L->res[r], &x);
        if (L->has_sample) {
            int64_t C = x.t.ne[0], H = x.t.ne[1] * 2, W = x.t.ne[2] * 2;
            act u = pget(&f.p, C, H, W);
            sl_op_upsample_nearest(ctx, &u.t, &x.t, 2);
            pput(&f.p, &x);
            x = pget(&f.p, C, H, W);
            sl_op_conv2d(ctx, &x.t, &u.t, &L->sample_w, &L->sample_b, 1, PAD1);
            pput(&f.p, &u);
        }
        sl_res_release(res, L->unit, ctx);
    }

    act a = pget(&f.p, x.t.ne[0], x.t.ne[1], x.t.ne[2]);
    sl_op_group_norm(ctx, &a.t, &x.t, c->groups, &hf->norm_out_w, &hf->norm_out_b, c->eps, true);
    pput(&f.p, &x);
    if (A == SL_DTYPE_F32) {
        sl_op_conv2d(ctx, image, &a.t, &hf->conv_out_w, &hf->conv_out_b, 1, PAD1);
    } else {
        sl_tensor co = sl_new_like(ctx, image, A);
        sl_op_conv2d(ctx, &co, &a.t, &hf->conv_out_w, &hf->conv_out_b, 1, PAD1);
        sl_op_copy(ctx, image, &co);
    }
    pput(&f.p, &a);
    sl_res_release(res, hf->unit_globals, ctx);
    sl_res_end_pass(res, ctx);
    sl_ctx_reset(ctx, mark);
    return sl_ctx_take_error(ctx, err);
}

sl_status sl_fluxvae_encode(sl_fluxvae *m, sl_ctx *ctx, const sl_tensor *image, sl_tensor *latent,
                            sl_err *err) {
    const sl_fluxvae_cfg *c = &m->cfg;
    sl_fluxvae_half *hf = &m->enc;
    if (!hf->present)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flux vae: the encoder was not loaded");
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    SL_ASSERTF(image->dtype == SL_DTYPE_F32 && image->ndim == 3 && image->ne[0] == c->in_ch,
               "flux vae encode: image must be f32 [%d, H, W]", c->in_ch);
    int64_t H = image->ne[1], W = image->ne[2];
    if (H % f8 || W % f8 || H <= 0 || W <= 0)
        return sl_err_set(
            err, SL_ERR_INVALID_ARG,
            "flux vae: image size %lldx%lld is not a multiple of %lld (resize or crop "
            "the input image)",
            (long long)W, (long long)H, (long long)f8);
    int64_t h = H / f8, w = W / f8;
    SL_ASSERTF(latent->dtype == SL_DTYPE_F32 && latent->ndim == 3 && latent->ne[0] == c->z_ch &&
                   latent->ne[1] == h && latent->ne[2] == w,
               "flux vae encode: latent must be f32 [%d, %lld, %lld]", c->z_ch, (long long)h,
               (long long)w);
    if (sl_ctx_status(ctx) != SL_OK) return sl_ctx_take_error(ctx, err);

    sl_res *res = ctx->base ? hf->res : NULL;
    sl_dtype A = ctx->act;
    size_t mark = sl_ctx_mark(ctx);
    fwd f = {.ctx = ctx, .c = c};
    pool_init(ctx, &f.p, enc_pool_elems(c, H, W));
    act in = {*image, -1};
    if (A != SL_DTYPE_F32) {
        in.t = sl_new_like(ctx, image, A);
        sl_op_copy(ctx, &in.t, image);
    }

    sl_res_begin_pass(res, ctx);
    sl_res_acquire(res, hf->unit_globals, ctx);
    act x = pget(&f.p, c->ch[0], H, W);
    sl_op_conv2d(ctx, &x.t, &in.t, &hf->conv_in_w, &hf->conv_in_b, 1, PAD1);
    for (int k = 0; k < c->n_levels; k++) {
        const sl_fluxvae_level *L = &hf->lv[k];
        sl_res_acquire(res, L->unit, ctx);
        for (int r = 0; r < L->n_res; r++)
            resnet_fwd(&f, &L->res[r], &x);
        if (L->has_sample) {
            /* diffusers Downsample2D(padding=0): pad right and bottom by one, 3×3 stride 2 */
            static const int PADRB[4] = {0, 1, 0, 1};
            act d = pget(&f.p, x.t.ne[0], x.t.ne[1] / 2, x.t.ne[2] / 2);
            sl_op_conv2d(ctx, &d.t, &x.t, &L->sample_w, &L->sample_b, 2, PADRB);
            pput(&f.p, &x);
            x = d;
        }
        sl_res_release(res, L->unit, ctx);
    }
    sl_res_acquire(res, hf->unit_mid, ctx);
    mid_fwd(&f, hf, &x);
    sl_res_release(res, hf->unit_mid, ctx);

    act a = pget(&f.p, x.t.ne[0], h, w);
    sl_op_group_norm(ctx, &a.t, &x.t, c->groups, &hf->norm_out_w, &hf->norm_out_b, c->eps, true);
    pput(&f.p, &x);
    act mo = pget(&f.p, 2 * (int64_t)c->z_ch, h, w);
    sl_op_conv2d(ctx, &mo.t, &a.t, &hf->conv_out_w, &hf->conv_out_b, 1, PAD1);
    pput(&f.p, &a);
    /* mean = first Z moments (no sampling), then (mean − shift)·scale */
    sl_tensor mean = sl_new3(ctx, A, c->z_ch, h, w);
    sl_op_slice(ctx, &mean, &mo.t, 0, 0);
    pput(&f.p, &mo);
    if (A != SL_DTYPE_F32) {
        sl_tensor mf = sl_new3(ctx, SL_DTYPE_F32, c->z_ch, h, w);
        sl_op_copy(ctx, &mf, &mean);
        mean = mf;
    }
    sl_op_scale(ctx, latent, &mean, c->scale, -c->shift * c->scale);
    sl_res_release(res, hf->unit_globals, ctx);
    sl_res_end_pass(res, ctx);
    sl_ctx_reset(ctx, mark);
    return sl_ctx_take_error(ctx, err);
}

/* ---- host-level passes and tiling ---- */

static size_t ctx_free(const sl_ctx *ctx) {
    return ctx->base ? ctx->cap - ctx->off : SIZE_MAX;
}

sl_status sl_fluxvae_choose_tiling(const sl_fluxvae_cfg *c, sl_dtype act, size_t budget, int h,
                                   int w, sl_fluxvae_tiling *out, sl_err *err) {
    int big = SL_MAX(h, w);
    if (sl_fluxvae_decode_arena_bytes(c, h, w, act) <= budget) {
        *out = (sl_fluxvae_tiling){big, 0};
        return SL_OK;
    }
    for (int t = big - 1; t >= 8; t--) {
        if (sl_fluxvae_decode_arena_bytes(c, SL_MIN(t, h), SL_MIN(t, w), act) <= budget) {
            *out = (sl_fluxvae_tiling){t, SL_MAX(2, t / 4)};
            return SL_OK;
        }
    }
    int t = SL_MIN(8, big);
    return sl_err_set(err, SL_ERR_OOM_DEVICE,
                      "flux vae: even an %dx%d latent tile needs %zu activation bytes, only %zu "
                      "available (free device memory or lower the resolution)",
                      t, t, sl_fluxvae_decode_arena_bytes(c, SL_MIN(t, h), SL_MIN(t, w), act),
                      budget);
}

/* Tile starts along an axis of length n: tiles of t with overlap o, the last one flush with the
 * end. Returns the count (starts holds at least n entries). */
static int tile_starts(int n, int t, int o, int *starts) {
    if (n <= t) {
        starts[0] = 0;
        return 1;
    }
    int s = t - o, k = 1 + (n - t + s - 1) / s;
    for (int i = 0; i < k; i++)
        starts[i] = SL_MIN(i * s, n - t);
    return k;
}

/* Blend weight of pixel i of a tile of n pixels whose edges overlap neighbours by lo / hi pixels
 * (0 at the image border): a linear ramp over each overlap. */
static float ramp(int i, int n, int lo, int hi) {
    float wgt = 1.0f;
    if (lo > 0) wgt = fminf(wgt, ((float)i + 0.5f) / (float)lo);
    if (hi > 0) wgt = fminf(wgt, ((float)(n - i) - 0.5f) / (float)hi);
    return wgt;
}

static sl_status decode_whole(sl_fluxvae *m, sl_ctx *ctx, const float *latent, int64_t h, int64_t w,
                              float *image, sl_err *err) {
    const sl_fluxvae_cfg *c = &m->cfg;
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    size_t mark = sl_ctx_mark(ctx);
    sl_tensor lt = sl_new3(ctx, SL_DTYPE_F32, c->z_ch, h, w);
    sl_tensor im = sl_new3(ctx, SL_DTYPE_F32, c->in_ch, h * f8, w * f8);
    sl_upload(ctx, &lt, latent);
    sl_status st = sl_fluxvae_decode(m, ctx, &lt, &im, err);
    if (st == SL_OK) {
        sl_download(ctx, image, &im);
        st = sl_ctx_take_error(ctx, err);
    }
    sl_ctx_reset(ctx, mark);
    return st;
}

sl_status sl_fluxvae_decode_host(sl_fluxvae *m, sl_ctx *ctx, const float *latent, int h, int w,
                                 float *image, const sl_fluxvae_tiling *tiling, sl_err *err) {
    const sl_fluxvae_cfg *c = &m->cfg;
    if (h <= 0 || w <= 0)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flux vae: empty latent %dx%d", w, h);
    if (sl_ctx_status(ctx) != SL_OK) return sl_ctx_take_error(ctx, err);
    sl_fluxvae_tiling tl = tiling ? *tiling : (sl_fluxvae_tiling){0, 0};
    if (tl.tile <= 0) {
        sl_status st = sl_fluxvae_choose_tiling(c, ctx->act, ctx_free(ctx), h, w, &tl, err);
        if (st != SL_OK) return st;
    }
    if (tl.tile >= h && tl.tile >= w) return decode_whole(m, ctx, latent, h, w, image, err);
    if (tl.overlap < 0 || tl.overlap >= tl.tile)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "flux vae: tile overlap %d must be in [0, tile %d)", tl.overlap, tl.tile);

    int64_t f8 = (int64_t)1 << (c->n_levels - 1), Z = c->z_ch, C = c->in_ch;
    int64_t H = h * f8, W = w * f8;
    int th = SL_MIN(tl.tile, h), tw = SL_MIN(tl.tile, w);
    int *ys = malloc(sizeof(int) * (size_t)(h + w));
    float *tlat = malloc(sizeof(float) * (size_t)(Z * th * tw));
    float *timg = malloc(sizeof(float) * (size_t)(C * th * tw * f8 * f8));
    float *wsum = calloc((size_t)(H * W), sizeof(float));
    sl_status st = SL_OK;
    if (!ys || !tlat || !timg || !wsum) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "flux vae: out of host memory for tiled decoding");
        goto done;
    }
    int *xs = ys + h;
    int ny = tile_starts(h, th, tl.overlap, ys), nx = tile_starts(w, tw, tl.overlap, xs);
    memset(image, 0, sizeof(float) * (size_t)(C * H * W));
    SL_DEBUG("flux vae: tiled decode %dx%d latent as %dx%d tiles of %dx%d (overlap %d)", w, h, nx,
             ny, tw, th, tl.overlap);
    for (int ty = 0; ty < ny && st == SL_OK; ty++) {
        for (int tx = 0; tx < nx && st == SL_OK; tx++) {
            int y0 = ys[ty], x0 = xs[tx];
            for (int64_t z = 0; z < Z; z++)
                for (int y = 0; y < th; y++)
                    memcpy(tlat + (z * th + y) * tw, latent + (z * h + y0 + y) * w + x0,
                           sizeof(float) * (size_t)tw);
            st = decode_whole(m, ctx, tlat, th, tw, timg, err);
            if (st != SL_OK) break;
            int lo_y = ty > 0 ? (int)((ys[ty - 1] + th - y0) * f8) : 0;
            int hi_y = ty < ny - 1 ? (int)((y0 + th - ys[ty + 1]) * f8) : 0;
            int lo_x = tx > 0 ? (int)((xs[tx - 1] + tw - x0) * f8) : 0;
            int hi_x = tx < nx - 1 ? (int)((x0 + tw - xs[tx + 1]) * f8) : 0;
            int PH = (int)(th * f8), PW = (int)(tw * f8);
            for (int y = 0; y < PH; y++) {
                float wy = ramp(y, PH, lo_y, hi_y);
                int64_t gy = y0 * f8 + y;
                for (int x = 0; x < PW; x++) {
                    float wt = wy * ramp(x, PW, lo_x, hi_x);
                    int64_t gx = x0 * f8 + x;
                    wsum[gy * W + gx] += wt;
                    for (int64_t ch = 0; ch < C; ch++)
                        image[(ch * H + gy) * W + gx] += wt * timg[((int64_t)ch * PH + y) * PW + x];
                }
            }
        }
    }
    if (st == SL_OK)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t i = 0; i < H * W; i++)
                image[ch * H * W + i] /= wsum[i];
done:
    free(ys);
    free(tlat);
    free(timg);
    free(wsum);
    return st;
}

sl_status sl_fluxvae_encode_host(sl_fluxvae *m, sl_ctx *ctx, const float *image, int H, int W,
                                 float *latent, sl_err *err) {
    const sl_fluxvae_cfg *c = &m->cfg;
    int64_t f8 = (int64_t)1 << (c->n_levels - 1);
    if (H <= 0 || W <= 0 || H % f8 || W % f8)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "flux vae: image size %dx%d is not a positive multiple of %lld", W, H,
                          (long long)f8);
    size_t mark = sl_ctx_mark(ctx);
    sl_tensor im = sl_new3(ctx, SL_DTYPE_F32, c->in_ch, H, W);
    sl_tensor lt = sl_new3(ctx, SL_DTYPE_F32, c->z_ch, H / f8, W / f8);
    sl_upload(ctx, &im, image);
    sl_status st = sl_fluxvae_encode(m, ctx, &im, &lt, err);
    if (st == SL_OK) {
        sl_download(ctx, latent, &lt);
        st = sl_ctx_take_error(ctx, err);
    }
    sl_ctx_reset(ctx, mark);
    return st;
}
