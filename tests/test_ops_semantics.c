/* Hand-computed anchors for op semantics (backend.h and specs/zimage.md), independent of the
 * harness's reference code: a misreading shared by the backend and the harness would pass parity
 * tests but fails here. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/ops.h"
#include "test.h"

typedef struct env {
    sl_backend *be;
    sl_ctx c;
} env;

/* Plain CPU backend; tensors point at host arrays (host_visible). */
static bool env_init(env *e) {
    sl_cpu_options o = {.threads = 2};
    sl_err err = {0};
    if (sl_backend_cpu_create(&o, &e->be, &err) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s", err.msg);
        return false;
    }
    sl_ctx_init(&e->c, e->be, NULL, 0);
    return true;
}

static sl_tensor host(float *p, int nd, const int64_t *ne) {
    sl_tensor t = sl_tensor_make(SL_DTYPE_F32, nd, ne);
    t.data = p;
    return t;
}
#define H1(p, a) host((p), 1, (const int64_t[]){a})
#define H2(p, a, b) host((p), 2, (const int64_t[]){a, b})
#define H3(p, a, b, c) host((p), 3, (const int64_t[]){a, b, c})
#define H4(p, a, b, c, d) host((p), 4, (const int64_t[]){a, b, c, d})

static void check_vec(const float *got, const float *want, int n, float tol, const char *what) {
    for (int i = 0; i < n; i++)
        CHECKF(fabsf(got[i] - want[i]) <= tol, "%s[%d] = %.7g, want %.7g", what, i, got[i], want[i]);
}

SL_TEST(ops_sem_rope_pairs) {
    env e;
    REQUIRE(env_init(&e));
    /* one token, one head, Dh = 4: pair 0 rotated by 90°, pair 1 not rotated */
    float x[4] = {1, 2, 3, 4}, tab[4] = {0, 1, 1, 0}, y[4];
    sl_tensor tx = H3(x, 1, 1, 4), tt = H3(tab, 1, 2, 2), ty = H3(y, 1, 1, 4);
    sl_op_rope(&e.c, &ty, &tx, NULL, 0, &tt, SL_ROPE_INTERLEAVED);
    check_vec(y, (const float[]){-2, 1, 3, 4}, 4, 0, "interleaved"); /* pairs (0,1), (2,3) */
    sl_op_rope(&e.c, &ty, &tx, NULL, 0, &tt, SL_ROPE_HALF);
    check_vec(y, (const float[]){-3, 2, 1, 4}, 4, 0, "half"); /* pairs (0,2), (1,3) */
    /* per-head RMSNorm first: x/rms(x)·w with rms = sqrt(7.5) */
    float w[4] = {1, 1, 2, 2};
    sl_tensor tw = H1(w, 4);
    sl_op_rope(&e.c, &ty, &tx, &tw, 0, &tt, SL_ROPE_INTERLEAVED);
    float r = 1.0f / sqrtf(7.5f);
    check_vec(y, (const float[]){-2 * r, 1 * r, 6 * r, 8 * r}, 4, 1e-6f, "norm+interleaved");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_patch_orders) {
    env e;
    REQUIRE(env_init(&e));
    float img[8], tok[8], back[8];
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 2; w++) img[c * 4 + h * 2 + w] = (float)(c * 10 + h * 2 + w);
    sl_tensor ti = H3(img, 2, 2, 2), tt = H2(tok, 1, 8), tb = H3(back, 2, 2, 2);
    /* Z-Image: feature (ph·p + pw)·C + c */
    sl_op_patchify(&e.c, &tt, &ti, 2, SL_PATCH_PW_C);
    check_vec(tok, (const float[]){0, 10, 1, 11, 2, 12, 3, 13}, 8, 0, "pw_c");
    sl_op_unpatchify(&e.c, &tb, &tt, 2, SL_PATCH_PW_C);
    check_vec(back, img, 8, 0, "pw_c inverse");
    /* Flux: feature (c·p + ph)·p + pw */
    sl_op_patchify(&e.c, &tt, &ti, 2, SL_PATCH_C_PW);
    check_vec(tok, (const float[]){0, 1, 2, 3, 10, 11, 12, 13}, 8, 0, "c_pw");
    sl_op_unpatchify(&e.c, &tb, &tt, 2, SL_PATCH_C_PW);
    check_vec(back, img, 8, 0, "c_pw inverse");
    /* tokens row-major over (h, w): a 1×2×4 image with p = 2 gives tokens (0,0), (0,1) */
    float im2[8] = {0, 1, 2, 3, 4, 5, 6, 7}, t2[8];
    sl_tensor ti2 = H3(im2, 1, 2, 4), tt2 = H2(t2, 2, 4);
    sl_op_patchify(&e.c, &tt2, &ti2, 2, SL_PATCH_PW_C);
    check_vec(t2, (const float[]){0, 1, 4, 5, 2, 3, 6, 7}, 8, 0, "token order");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_timestep_embed) {
    env e;
    REQUIRE(env_init(&e));
    float y[8];
    sl_tensor ty = H2(y, 2, 4);
    /* half = 2: frequencies exp(-ln(1e4)·k/2) = 1, 0.01 */
    sl_op_timestep_embed(&e.c, &ty, (const float[]){0.0f, 0.5f}, 2, 2.0f, 10000.0f, true);
    check_vec(y, (const float[]){1, 1, 0, 0, cosf(1), cosf(0.01f), sinf(1), sinf(0.01f)}, 8, 1e-6f,
              "cos first");
    sl_op_timestep_embed(&e.c, &ty, (const float[]){0.0f, 0.5f}, 2, 2.0f, 10000.0f, false);
    check_vec(y, (const float[]){0, 0, 1, 1, sinf(1), sinf(0.01f), cosf(1), cosf(0.01f)}, 8, 1e-6f,
              "sin first");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_norms) {
    env e;
    REQUIRE(env_init(&e));
    float x[2] = {3, 4}, w[2] = {2, 1}, mod[2] = {1, 3}, y[2];
    sl_tensor tx = H2(x, 1, 2), tw = H1(w, 2), tm = H1(mod, 2), ty = H2(y, 1, 2);
    float r = 1.0f / sqrtf(12.5f);
    sl_op_rms_norm(&e.c, &ty, &tx, &tw, &tm, 0.0f);
    check_vec(y, (const float[]){6 * r, 12 * r}, 2, 1e-6f, "rms_norm w·mod");
    /* layer_norm of (3, 4): mean 3.5, var 0.25 → (−1, 1); then ·w + b, ·scale + shift */
    float b[2] = {0.5f, -0.5f}, sh[2] = {10, 20};
    sl_tensor tb = H1(b, 2), ts = H1(sh, 2);
    sl_op_layer_norm(&e.c, &ty, &tx, &tw, &tb, &tm, &ts, 0.0f);
    check_vec(y, (const float[]){(-2 + 0.5f) * 1 + 10, (1 - 0.5f) * 3 + 20}, 2, 1e-5f, "layer_norm");
    sl_op_layer_norm(&e.c, &ty, &tx, NULL, NULL, NULL, NULL, 0.0f);
    check_vec(y, (const float[]){-1, 1}, 2, 1e-5f, "layer_norm plain");
    /* gated_add: x += gate ⊙ rms_norm(y; w) */
    float acc[2] = {1, 1}, br[2] = {3, 4}, g[2] = {2, 0.5f};
    sl_tensor ta = H2(acc, 1, 2), tbr = H2(br, 1, 2), tg = H1(g, 2);
    sl_op_gated_add(&e.c, &ta, &tbr, NULL, &tg, 1e-6f);
    check_vec(acc, (const float[]){7, 3}, 2, 0, "gated_add no norm");
    acc[0] = acc[1] = 1;
    sl_op_gated_add(&e.c, &ta, &tbr, &tw, &tg, 0.0f);
    check_vec(acc, (const float[]){1 + 2 * 6 * r, 1 + 0.5f * 4 * r}, 2, 1e-6f, "gated_add norm");
    /* group_norm: 2 groups of 2 channels (1×1 each): (1,3) → (−1,1); (5,5) → (0,0); then SiLU */
    float gx[4] = {1, 3, 5, 5}, gy[4];
    sl_tensor tgx = H3(gx, 4, 1, 1), tgy = H3(gy, 4, 1, 1);
    sl_op_group_norm(&e.c, &tgy, &tgx, 2, NULL, NULL, 1e-6f, true);
    float s1 = 1.0f / (1.0f + expf(1.0f));
    check_vec(gy, (const float[]){-s1, 1 - s1, 0, 0}, 4, 2e-6f, "group_norm silu");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_conv_padding) {
    env e;
    REQUIRE(env_init(&e));
    float x[4] = {1, 2, 3, 4}, w[1] = {1}, y[6];
    sl_tensor tx = H3(x, 1, 2, 2), tw = H4(w, 1, 1, 1, 1);
    sl_tensor t32 = H3(y, 1, 3, 2), t23 = H3(y, 1, 2, 3);
    sl_op_conv2d(&e.c, &t32, &tx, &tw, NULL, 1, (const int[]){1, 0, 0, 0}); /* top */
    check_vec(y, (const float[]){0, 0, 1, 2, 3, 4}, 6, 0, "pad top");
    sl_op_conv2d(&e.c, &t32, &tx, &tw, NULL, 1, (const int[]){0, 1, 0, 0}); /* bottom */
    check_vec(y, (const float[]){1, 2, 3, 4, 0, 0}, 6, 0, "pad bottom");
    sl_op_conv2d(&e.c, &t23, &tx, &tw, NULL, 1, (const int[]){0, 0, 1, 0}); /* left */
    check_vec(y, (const float[]){0, 1, 2, 0, 3, 4}, 6, 0, "pad left");
    sl_op_conv2d(&e.c, &t23, &tx, &tw, NULL, 1, (const int[]){0, 0, 0, 1}); /* right */
    check_vec(y, (const float[]){1, 2, 0, 3, 4, 0}, 6, 0, "pad right");
    /* 2×2 kernel weights (1, 10, 100, 1000) select the window corners; stride 2 with pad right
     * and bottom (the Flux VAE downsample) */
    float w2[4] = {1, 10, 100, 1000}, y2[1], b[1] = {0.5f};
    sl_tensor tw2 = H4(w2, 1, 1, 2, 2), ty2 = H3(y2, 1, 1, 1), tb = H1(b, 1);
    sl_op_conv2d(&e.c, &ty2, &tx, &tw2, &tb, 2, (const int[]){0, 1, 0, 1});
    check_vec(y2, (const float[]){1 + 20 + 300 + 4000 + 0.5f}, 1, 0, "kernel orientation");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_attention_mask_and_gqa) {
    env e;
    REQUIRE(env_init(&e));
    /* zero scores: the output is the mean of the visible values */
    float q[2] = {0, 0}, k[2] = {0, 0}, v[2] = {1, 3}, o[2];
    sl_tensor tq = H3(q, 2, 1, 1), tk = H3(k, 2, 1, 1), tv = H3(v, 2, 1, 1), to = H3(o, 2, 1, 1);
    sl_op_attention(&e.c, &to, &tq, &tk, &tv, 1.0f, false);
    check_vec(o, (const float[]){2, 2}, 2, 1e-6f, "bidirectional");
    sl_op_attention(&e.c, &to, &tq, &tk, &tv, 1.0f, true);
    check_vec(o, (const float[]){1, 2}, 2, 1e-6f, "causal");
    /* GQA: 4 query heads, 2 kv heads; query heads 0,1 read kv head 0 and 2,3 read kv head 1 */
    float q4[4] = {0}, k2[2] = {0}, v2[2] = {5, 7}, o4[4];
    sl_tensor tq4 = H3(q4, 1, 4, 1), tk2 = H3(k2, 1, 2, 1), tv2 = H3(v2, 1, 2, 1), to4 = H3(o4, 1, 4, 1);
    sl_op_attention(&e.c, &to4, &tq4, &tk2, &tv2, 1.0f, false);
    check_vec(o4, (const float[]){5, 5, 7, 7}, 4, 1e-6f, "gqa head mapping");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    sl_backend_destroy(e.be);
}

SL_TEST(ops_sem_broadcast_and_rows) {
    env e;
    REQUIRE(env_init(&e));
    float a[6] = {1, 2, 3, 4, 5, 6}, row[3] = {10, 20, 30}, one[1] = {-1}, y[6];
    sl_tensor ta = H2(a, 2, 3), tr = H1(row, 3), t1 = H1(one, 1), ty = H2(y, 2, 3);
    sl_op_add(&e.c, &ty, &ta, &tr);
    check_vec(y, (const float[]){11, 22, 33, 14, 25, 36}, 6, 0, "row broadcast");
    sl_op_mul(&e.c, &ty, &ta, &t1);
    check_vec(y, (const float[]){-1, -2, -3, -4, -5, -6}, 6, 0, "scalar broadcast");
    sl_op_sub(&e.c, &ty, &ta, &ta);
    check_vec(y, (const float[]){0, 0, 0, 0, 0, 0}, 6, 0, "sub");
    /* permute [2,3] → [3,2] */
    sl_tensor tt = H2(y, 3, 2);
    sl_op_permute(&e.c, &tt, &ta, (const int[]){1, 0, 0, 0});
    check_vec(y, (const float[]){1, 4, 2, 5, 3, 6}, 6, 0, "transpose");
    /* get_rows with i32 ids */
    int32_t ids[2] = {1, 0};
    sl_tensor ti = sl_tensor1(SL_DTYPE_I32, 2);
    ti.data = ids;
    sl_op_get_rows(&e.c, &ty, &ta, &ti);
    check_vec(y, (const float[]){4, 5, 6, 1, 2, 3}, 6, 0, "get_rows");
    REQUIRE(sl_ctx_status(&e.c) == SL_OK);
    /* an out-of-range id is an error with a message, not a read past the table */
    ids[1] = 2;
    sl_op_get_rows(&e.c, &ty, &ta, &ti);
    CHECK(sl_ctx_status(&e.c) == SL_ERR_INVALID_ARG);
    CHECKF(strstr(e.c.err.msg, "outside the table") != NULL, "%s", e.c.err.msg);
    sl_backend_destroy(e.be);
}
