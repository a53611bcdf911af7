/* Z-Image DiT tests: configs and names, the synthetic list, loading both layouts, RoPE and
 * positions, the forward pass on the CPU backend, dry runs, and reference fixtures. */
#include <stdlib.h>
#include <string.h>

#include "models/synth.h"
#include "models/zimage/zimage.h"
#include "test.h"

static const sl_synth_tensor *find_synth(const sl_synth_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return &l->t[i];
    return NULL;
}

static long long synth_params(const sl_synth_list *l) {
    long long n = 0;
    for (int i = 0; i < l->n; i++) {
        long long e = 1;
        for (int d = 0; d < l->t[i].ndim; d++) e *= l->t[i].ne[d];
        n += e;
    }
    return n;
}

SL_TEST(zimage_synth_full_param_count) {
    sl_err err = {0};
    const char *lays[] = {"official", "comfy"};
    for (int k = 0; k < 2; k++) {
        sl_synth_list l = {0};
        REQUIRE_OK(sl_zimage_synth_list("full", lays[k], &l, &err), &err);
        CHECKF(synth_params(&l) == 6154908736LL, "%s: %lld params", lays[k], synth_params(&l));
        /* 15 globals + 32 modulated blocks + 2 context refiners */
        int want = k == 0 ? 15 + 32 * 15 + 2 * 13 : 15 + 32 * 13 + 2 * 11;
        CHECKF(l.n == want, "%s: %d tensors, want %d", lays[k], l.n, want);
        CHECK(!strcmp(l.arch, "zimage"));
        free(l.t);
    }
    sl_zimage_config full = sl_zimage_config_full();
    CHECK(sl_zimage_param_count(&full) == 6154908736LL);
}

SL_TEST(zimage_synth_names_and_shapes) {
    sl_err err = {0};
    sl_synth_list l = {0};
    REQUIRE_OK(sl_zimage_synth_list("full", "official", &l, &err), &err);
    const sl_synth_tensor *t = find_synth(&l, "all_x_embedder.2-1.weight");
    REQUIRE(t && t->ndim == 2 && t->ne[0] == 3840 && t->ne[1] == 64);
    t = find_synth(&l, "layers.29.adaLN_modulation.0.weight");
    REQUIRE(t && t->ne[0] == 15360 && t->ne[1] == 256);
    CHECK(find_synth(&l, "context_refiner.1.adaLN_modulation.0.weight") == NULL);
    t = find_synth(&l, "noise_refiner.1.attention.norm_k.weight");
    REQUIRE(t && t->ndim == 1 && t->ne[0] == 128 && t->keep_float);
    t = find_synth(&l, "x_pad_token");
    REQUIRE(t && t->ndim == 2 && t->ne[0] == 1 && t->ne[1] == 3840);
    t = find_synth(&l, "layers.3.feed_forward.w2.weight");
    REQUIRE(t && t->ne[0] == 3840 && t->ne[1] == 10240 && !t->keep_float);
    CHECK_NEAR(t->std, 1.0 / sqrt(10240.0), 1e-7);
    t = find_synth(&l, "all_final_layer.2-1.adaLN_modulation.1.weight");
    REQUIRE(t && t->ne[0] == 3840 && t->ne[1] == 256);
    free(l.t);

    sl_synth_list c = {0};
    REQUIRE_OK(sl_zimage_synth_list("tiny", "comfy", &c, &err), &err);
    t = find_synth(&c, "layers.1.attention.qkv.weight");
    REQUIRE(t && t->ne[0] == 3 * 384 && t->ne[1] == 384);
    CHECK(find_synth(&c, "layers.1.attention.to_q.weight") == NULL);
    CHECK(find_synth(&c, "x_embedder.weight") != NULL);
    CHECK(find_synth(&c, "final_layer.linear.bias") != NULL);
    CHECK(find_synth(&c, "layers.0.attention.q_norm.weight") != NULL);
    CHECK(find_synth(&c, "layers.0.attention.out.weight") != NULL);
    t = find_synth(&c, "cap_embedder.1.weight");
    REQUIRE(t && t->ne[0] == 384 && t->ne[1] == 256);
    /* every quantisable row is whole q8_0 / q4_0 blocks */
    for (int i = 0; i < c.n; i++)
        if (!c.t[i].keep_float && c.t[i].ndim == 2) CHECKF(c.t[i].ne[1] % 32 == 0, "%s", c.t[i].name);
    free(c.t);

    sl_synth_list bad = {0};
    CHECK(sl_zimage_synth_list("huge", "official", &bad, &err) == SL_ERR_INVALID_ARG);
    sl_err e2 = {0};
    CHECK(sl_zimage_synth_list("tiny", "bfl", &bad, &e2) == SL_ERR_INVALID_ARG);
    CHECK(strstr(e2.msg, "comfy") != NULL);
}

SL_TEST(zimage_config_tiny_derivations) {
    sl_zimage_config c = sl_zimage_config_tiny();
    /* the reference constructor's derivations */
    CHECK(c.ffn_dim == (int)(c.dim / 3.0 * 8.0));
    CHECK(c.adaln_dim == (c.dim < 256 ? c.dim : 256));
    CHECK(c.head_dim * c.n_heads == c.dim);
    CHECK(c.axes_dims[0] + c.axes_dims[1] + c.axes_dims[2] == c.head_dim);
    CHECK(c.dim % 32 == 0 && c.ffn_dim % 32 == 0);
    CHECK(c.cap_dim == 256);
    sl_zimage_config f = sl_zimage_config_full();
    CHECK(f.ffn_dim == (int)(f.dim / 3.0 * 8.0));
}
