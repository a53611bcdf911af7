/* Z-Image configs, tensor names of both layouts, and the synthetic tensor list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/synth.h"
#include "models/zimage/zimage.h"

sl_zimage_config sl_zimage_config_full(void) {
    return (sl_zimage_config){
        .dim = 3840,
        .n_heads = 30,
        .head_dim = 128,
        .n_layers = 30,
        .n_refiner = 2,
        .ffn_dim = 10240,
        .adaln_dim = 256,
        .t_freq_dim = 256,
        .t_mid = 1024,
        .cap_dim = 2560,
        .in_ch = 16,
        .patch = 2,
        .seq_multi = 32,
        .norm_eps = 1e-5f,
        .final_eps = 1e-6f,
        .rope_theta = 256.0f,
        .t_scale = 1000.0f,
        .axes_dims = {32, 48, 48},
        .axes_lens = {1536, 512, 512},
    };
}

sl_zimage_config sl_zimage_config_tiny(void) {
    sl_zimage_config c = sl_zimage_config_full();
    c.dim = 384;
    c.n_heads = 3;
    c.n_layers = 2;
    c.ffn_dim = 1024; /* int(384 / 3 * 8) */
    c.cap_dim = 256;  /* tiny Qwen3 hidden size */
    return c;
}

long long sl_zimage_param_count(const sl_zimage_config *c) {
    long long D = c->dim, F = c->ffn_dim, A = c->adaln_dim, Dh = c->head_dim;
    long long pin = (long long)c->patch * c->patch * c->in_ch;
    long long ctx_block = 4 * D * D + 3 * D * F + 4 * D + 2 * Dh;
    long long mod_block = ctx_block + 4 * D * A + 4 * D;
    long long globals = pin * D + D                                  /* x embedder */
                        + c->cap_dim + (long long)c->cap_dim * D + D /* caption embedder */
                        + (long long)c->t_freq_dim * c->t_mid + c->t_mid + (long long)c->t_mid * A +
                        A                            /* t embedder */
                        + 2 * D                      /* pad tokens */
                        + A * D + D + D * pin + pin; /* final layer */
    return (long long)(c->n_layers + c->n_refiner) * mod_block + c->n_refiner * ctx_block + globals;
}

const char *sl_zimage_block_prefix(sl_zimage_block_kind k) {
    switch (k) {
    case SL_ZIMAGE_NOISE_REFINER:
        return "noise_refiner";
    case SL_ZIMAGE_CONTEXT_REFINER:
        return "context_refiner";
    case SL_ZIMAGE_LAYER:
        return "layers";
    }
    return "?";
}

/* ---- names ---- */

/* Per-block roles and their suffixes after "<prefix>.<i>.". The ComfyUI layout has no separate
 * q/k/v: they are rows of attention.qkv.weight. */
static const char *const block_official[SL_ZIMAGE_B_COUNT] = {
    [SL_ZIMAGE_B_WQ] = "attention.to_q.weight",
    [SL_ZIMAGE_B_WK] = "attention.to_k.weight",
    [SL_ZIMAGE_B_WV] = "attention.to_v.weight",
    [SL_ZIMAGE_B_WO] = "attention.to_out.0.weight",
    [SL_ZIMAGE_B_QNORM] = "attention.norm_q.weight",
    [SL_ZIMAGE_B_KNORM] = "attention.norm_k.weight",
    [SL_ZIMAGE_B_ANORM1] = "attention_norm1.weight",
    [SL_ZIMAGE_B_ANORM2] = "attention_norm2.weight",
    [SL_ZIMAGE_B_FNORM1] = "ffn_norm1.weight",
    [SL_ZIMAGE_B_FNORM2] = "ffn_norm2.weight",
    [SL_ZIMAGE_B_W1] = "feed_forward.w1.weight",
    [SL_ZIMAGE_B_W2] = "feed_forward.w2.weight",
    [SL_ZIMAGE_B_W3] = "feed_forward.w3.weight",
    [SL_ZIMAGE_B_ADA_W] = "adaLN_modulation.0.weight",
    [SL_ZIMAGE_B_ADA_B] = "adaLN_modulation.0.bias",
};
static const char *const block_comfy[SL_ZIMAGE_B_COUNT] = {
    [SL_ZIMAGE_B_WQ] = "attention.qkv.weight",
    [SL_ZIMAGE_B_WK] = "attention.qkv.weight",
    [SL_ZIMAGE_B_WV] = "attention.qkv.weight",
    [SL_ZIMAGE_B_WO] = "attention.out.weight",
    [SL_ZIMAGE_B_QNORM] = "attention.q_norm.weight",
    [SL_ZIMAGE_B_KNORM] = "attention.k_norm.weight",
    [SL_ZIMAGE_B_ANORM1] = "attention_norm1.weight",
    [SL_ZIMAGE_B_ANORM2] = "attention_norm2.weight",
    [SL_ZIMAGE_B_FNORM1] = "ffn_norm1.weight",
    [SL_ZIMAGE_B_FNORM2] = "ffn_norm2.weight",
    [SL_ZIMAGE_B_W1] = "feed_forward.w1.weight",
    [SL_ZIMAGE_B_W2] = "feed_forward.w2.weight",
    [SL_ZIMAGE_B_W3] = "feed_forward.w3.weight",
    [SL_ZIMAGE_B_ADA_W] = "adaLN_modulation.0.weight",
    [SL_ZIMAGE_B_ADA_B] = "adaLN_modulation.0.bias",
};

void sl_zimage_block_name(sl_zimage_layout lay, sl_zimage_block_kind kind, int i,
                          sl_zimage_brole role, char *buf, size_t n) {
    SL_ASSERT(role >= 0 && role < SL_ZIMAGE_B_COUNT);
    const char *suf = lay == SL_ZIMAGE_COMFY ? block_comfy[role] : block_official[role];
    snprintf(buf, n, "%s.%d.%s", sl_zimage_block_prefix(kind), i, suf);
}

void sl_zimage_global_name(sl_zimage_layout lay, const sl_zimage_config *c, sl_zimage_grole role,
                           char *buf, size_t n) {
    bool of = lay == SL_ZIMAGE_OFFICIAL;
    char xe[32], fl[32];
    snprintf(xe, sizeof xe, of ? "all_x_embedder.%d-1" : "x_embedder", c->patch);
    snprintf(fl, sizeof fl, of ? "all_final_layer.%d-1" : "final_layer", c->patch);
    switch (role) {
    case SL_ZIMAGE_G_X_W:
        snprintf(buf, n, "%s.weight", xe);
        return;
    case SL_ZIMAGE_G_X_B:
        snprintf(buf, n, "%s.bias", xe);
        return;
    case SL_ZIMAGE_G_CAP_NORM:
        snprintf(buf, n, "cap_embedder.0.weight");
        return;
    case SL_ZIMAGE_G_CAP_W:
        snprintf(buf, n, "cap_embedder.1.weight");
        return;
    case SL_ZIMAGE_G_CAP_B:
        snprintf(buf, n, "cap_embedder.1.bias");
        return;
    case SL_ZIMAGE_G_T_W0:
        snprintf(buf, n, "t_embedder.mlp.0.weight");
        return;
    case SL_ZIMAGE_G_T_B0:
        snprintf(buf, n, "t_embedder.mlp.0.bias");
        return;
    case SL_ZIMAGE_G_T_W2:
        snprintf(buf, n, "t_embedder.mlp.2.weight");
        return;
    case SL_ZIMAGE_G_T_B2:
        snprintf(buf, n, "t_embedder.mlp.2.bias");
        return;
    case SL_ZIMAGE_G_X_PAD:
        snprintf(buf, n, "x_pad_token");
        return;
    case SL_ZIMAGE_G_CAP_PAD:
        snprintf(buf, n, "cap_pad_token");
        return;
    case SL_ZIMAGE_G_FADA_W:
        snprintf(buf, n, "%s.adaLN_modulation.1.weight", fl);
        return;
    case SL_ZIMAGE_G_FADA_B:
        snprintf(buf, n, "%s.adaLN_modulation.1.bias", fl);
        return;
    case SL_ZIMAGE_G_FIN_W:
        snprintf(buf, n, "%s.linear.weight", fl);
        return;
    case SL_ZIMAGE_G_FIN_B:
        snprintf(buf, n, "%s.linear.bias", fl);
        return;
    case SL_ZIMAGE_G_COUNT:
        break;
    }
    SL_ASSERT(0 && "bad global role");
}

void sl_zimage_global_shape(const sl_zimage_config *c, sl_zimage_grole role, int *ndim,
                            int64_t ne[2]) {
    int64_t D = c->dim, A = c->adaln_dim, pin = (int64_t)c->patch * c->patch * c->in_ch;
    int64_t s[SL_ZIMAGE_G_COUNT][2] = {
        [SL_ZIMAGE_G_X_W] = {D, pin},
        [SL_ZIMAGE_G_X_B] = {D, 0},
        [SL_ZIMAGE_G_CAP_NORM] = {c->cap_dim, 0},
        [SL_ZIMAGE_G_CAP_W] = {D, c->cap_dim},
        [SL_ZIMAGE_G_CAP_B] = {D, 0},
        [SL_ZIMAGE_G_T_W0] = {c->t_mid, c->t_freq_dim},
        [SL_ZIMAGE_G_T_B0] = {c->t_mid, 0},
        [SL_ZIMAGE_G_T_W2] = {A, c->t_mid},
        [SL_ZIMAGE_G_T_B2] = {A, 0},
        [SL_ZIMAGE_G_X_PAD] = {1, D},
        [SL_ZIMAGE_G_CAP_PAD] = {1, D},
        [SL_ZIMAGE_G_FADA_W] = {D, A},
        [SL_ZIMAGE_G_FADA_B] = {D, 0},
        [SL_ZIMAGE_G_FIN_W] = {pin, D},
        [SL_ZIMAGE_G_FIN_B] = {pin, 0},
    };
    ne[0] = s[role][0];
    ne[1] = s[role][1];
    *ndim = ne[1] ? 2 : 1;
    if (!ne[1]) ne[1] = 1;
}

void sl_zimage_block_shape(const sl_zimage_config *c, sl_zimage_brole role, int *ndim,
                           int64_t ne[2]) {
    int64_t D = c->dim, F = c->ffn_dim, A = c->adaln_dim, Dh = c->head_dim;
    int64_t s[SL_ZIMAGE_B_COUNT][2] = {
        [SL_ZIMAGE_B_WQ] = {D, D},        [SL_ZIMAGE_B_WK] = {D, D},
        [SL_ZIMAGE_B_WV] = {D, D},        [SL_ZIMAGE_B_WO] = {D, D},
        [SL_ZIMAGE_B_QNORM] = {Dh, 0},    [SL_ZIMAGE_B_KNORM] = {Dh, 0},
        [SL_ZIMAGE_B_ANORM1] = {D, 0},    [SL_ZIMAGE_B_ANORM2] = {D, 0},
        [SL_ZIMAGE_B_FNORM1] = {D, 0},    [SL_ZIMAGE_B_FNORM2] = {D, 0},
        [SL_ZIMAGE_B_W1] = {F, D},        [SL_ZIMAGE_B_W2] = {D, F},
        [SL_ZIMAGE_B_W3] = {F, D},        [SL_ZIMAGE_B_ADA_W] = {4 * D, A},
        [SL_ZIMAGE_B_ADA_B] = {4 * D, 0},
    };
    ne[0] = s[role][0];
    ne[1] = s[role][1];
    *ndim = ne[1] ? 2 : 1;
    if (!ne[1]) ne[1] = 1;
}

/* ---- synthetic list ---- */

static void add(sl_synth_list *l, const char *name, int ndim, const int64_t *ne, sl_synth_init init,
                float mean, float std, bool keep_float) {
    sl_synth_list_add(l, name, ndim, ne, init, mean, std, keep_float);
}

/* Init of one tensor by its role: linear weights N(0, 1/fan_in), norm weights around 1, biases
 * small, pad tokens N(0, 0.25). */
static void add_linear(sl_synth_list *l, const char *name, int ndim, const int64_t *ne, bool keep) {
    add(l, name, ndim, ne, SL_INIT_NORMAL, 0.0f, 1.0f / sqrtf((float)ne[1]), keep);
}
static void add_norm(sl_synth_list *l, const char *name, int ndim, const int64_t *ne) {
    add(l, name, ndim, ne, SL_INIT_NORMAL, 1.0f, 0.05f, true);
}
static void add_bias(sl_synth_list *l, const char *name, int ndim, const int64_t *ne) {
    add(l, name, ndim, ne, SL_INIT_NORMAL, 0.0f, 0.02f, true);
}

sl_status sl_zimage_synth_list(const char *size, const char *layout, sl_synth_list *out,
                               sl_err *err) {
    sl_zimage_config c;
    if (!size || !strcmp(size, "tiny"))
        c = sl_zimage_config_tiny();
    else if (!strcmp(size, "full"))
        c = sl_zimage_config_full();
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "zimage synth: unknown size '%s' (use tiny or full)", size);
    sl_zimage_layout lay;
    if (!layout || !strcmp(layout, "official") || !strcmp(layout, "diffusers"))
        lay = SL_ZIMAGE_OFFICIAL;
    else if (!strcmp(layout, "comfy"))
        lay = SL_ZIMAGE_COMFY;
    else
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "zimage synth: unknown layout '%s' (use official or comfy)", layout);

    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "zimage");
    char name[160];
    int ndim;
    int64_t ne[2];
    for (int r = 0; r < SL_ZIMAGE_G_COUNT; r++) {
        sl_zimage_global_name(lay, &c, (sl_zimage_grole)r, name, sizeof name);
        sl_zimage_global_shape(&c, (sl_zimage_grole)r, &ndim, ne);
        switch ((sl_zimage_grole)r) {
        case SL_ZIMAGE_G_CAP_NORM:
            add_norm(out, name, ndim, ne);
            break;
        case SL_ZIMAGE_G_X_PAD:
        case SL_ZIMAGE_G_CAP_PAD:
            add(out, name, ndim, ne, SL_INIT_NORMAL, 0.0f, 0.5f, true);
            break;
        case SL_ZIMAGE_G_X_B:
        case SL_ZIMAGE_G_CAP_B:
        case SL_ZIMAGE_G_T_B0:
        case SL_ZIMAGE_G_T_B2:
        case SL_ZIMAGE_G_FADA_B:
        case SL_ZIMAGE_G_FIN_B:
            add_bias(out, name, ndim, ne);
            break;
        default:
            add_linear(out, name, ndim, ne, true);
            break; /* precision-sensitive globals */
        }
    }
    for (int kind = 0; kind < 3; kind++) {
        int nb = kind == SL_ZIMAGE_LAYER ? c.n_layers : c.n_refiner;
        for (int i = 0; i < nb; i++) {
            for (int r = 0; r < SL_ZIMAGE_B_COUNT; r++) {
                bool mod = kind != SL_ZIMAGE_CONTEXT_REFINER;
                if (!mod && (r == SL_ZIMAGE_B_ADA_W || r == SL_ZIMAGE_B_ADA_B)) continue;
                if (lay == SL_ZIMAGE_COMFY && (r == SL_ZIMAGE_B_WK || r == SL_ZIMAGE_B_WV))
                    continue;
                sl_zimage_block_name(lay, (sl_zimage_block_kind)kind, i, (sl_zimage_brole)r, name,
                                     sizeof name);
                sl_zimage_block_shape(&c, (sl_zimage_brole)r, &ndim, ne);
                if (lay == SL_ZIMAGE_COMFY && r == SL_ZIMAGE_B_WQ) ne[0] *= 3; /* fused qkv */
                if (ndim == 1 && r != SL_ZIMAGE_B_ADA_B)
                    add_norm(out, name, ndim, ne);
                else if (r == SL_ZIMAGE_B_ADA_B)
                    add_bias(out, name, ndim, ne);
                else
                    add_linear(out, name, ndim, ne, false);
            }
        }
    }
    return SL_OK;
}
