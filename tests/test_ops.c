/* CPU backend ops against the double-precision reference of tests/ops_harness.c: every op of the
 * harness table, one test per op, on the plain CPU backend and on CPU-as-device; plus the
 * measuring backend running every case without touching memory. */
#include <string.h>

#include "backend/backend.h"
#include "ops_harness.h"
#include "test.h"

static sl_backend *cpu(bool as_device) {
    sl_cpu_options o = {.threads = 0, .as_device = as_device};
    sl_backend *be = NULL;
    sl_err err = {0};
    if (sl_backend_cpu_create(&o, &be, &err) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "cpu backend: %s", err.msg);
        return NULL;
    }
    return be;
}

/* Run every table case of `op` on the plain CPU backend; fail on any mismatch or skip. */
static void check_op(sl_oh_op op) {
    sl_backend *be = cpu(false);
    if (!be) return;
    int np = 0, nf = 0, ns = 0;
    sl_oh_check_table(be, op, NULL, 1.0, &np, &nf, &ns);
    sl_backend_destroy(be);
    CHECKF(np > 0, "no %s case ran", sl_oh_op_name(op));
    CHECKF(ns == 0, "%d %s case(s) unsupported on the cpu backend", ns, sl_oh_op_name(op));
}

SL_TEST(ops_matmul) { check_op(SL_OH_MATMUL); }
SL_TEST(ops_binary) { check_op(SL_OH_BINARY); }
SL_TEST(ops_scale) { check_op(SL_OH_SCALE); }
SL_TEST(ops_unary) { check_op(SL_OH_UNARY); }
SL_TEST(ops_glu) { check_op(SL_OH_GLU); }
SL_TEST(ops_rms_norm) { check_op(SL_OH_RMS_NORM); }
SL_TEST(ops_layer_norm) { check_op(SL_OH_LAYER_NORM); }
SL_TEST(ops_group_norm) { check_op(SL_OH_GROUP_NORM); }
SL_TEST(ops_rope) { check_op(SL_OH_ROPE); }
SL_TEST(ops_attention) { check_op(SL_OH_ATTENTION); }
SL_TEST(ops_softmax) { check_op(SL_OH_SOFTMAX); }
SL_TEST(ops_gated_add) { check_op(SL_OH_GATED_ADD); }
SL_TEST(ops_conv2d) { check_op(SL_OH_CONV2D); }
SL_TEST(ops_upsample) { check_op(SL_OH_UPSAMPLE); }
SL_TEST(ops_patchify) { check_op(SL_OH_PATCHIFY); }
SL_TEST(ops_unpatchify) { check_op(SL_OH_UNPATCHIFY); }
SL_TEST(ops_permute) { check_op(SL_OH_PERMUTE); }
SL_TEST(ops_concat) { check_op(SL_OH_CONCAT); }
SL_TEST(ops_slice) { check_op(SL_OH_SLICE); }
SL_TEST(ops_copy) { check_op(SL_OH_COPY); }
SL_TEST(ops_get_rows) { check_op(SL_OH_GET_ROWS); }
SL_TEST(ops_repeat_rows) { check_op(SL_OH_REPEAT_ROWS); }
SL_TEST(ops_timestep_embed) { check_op(SL_OH_TIMESTEP); }
SL_TEST(ops_fill) { check_op(SL_OH_FILL); }

/* The whole table on CPU-as-device: every op reads and writes only device allocations (the
 * backend fails an op handed anything else) and leaves the guards around its output intact. */
SL_TEST(ops_all_as_device) {
    sl_backend *be = cpu(true);
    REQUIRE(be);
    int np = 0, nf = 0, ns = 0;
    sl_oh_check_table(be, SL_OH_COUNT, NULL, 1.0, &np, &nf, &ns);
    sl_backend_destroy(be);
    CHECK(np > 100 && ns == 0);
}

/* Every case through the measuring backend: fake addresses, so any dereference would crash. */
SL_TEST(ops_measure_runs_every_op) {
    sl_backend *me = NULL;
    sl_err err = {0};
    REQUIRE_OK(sl_backend_measure_create(NULL, &me, &err), &err);
    int n;
    const sl_oh_case *cs = sl_oh_cases(&n);
    bool seen[SL_OH_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        sl_err e = {0};
        sl_status st = sl_oh_run_dry(me, &cs[i], &e);
        CHECKF(st == SL_OK, "%s", e.msg);
        seen[cs[i].op] = true;
    }
    for (int op = 0; op < SL_OH_COUNT; op++) CHECKF(seen[op], "no case for %s", sl_oh_op_name(op));
    size_t cur = 0, peak = 0;
    sl_backend_measure_stats(me, &cur, &peak);
    CHECK(cur == 0);
    sl_backend_destroy(me);
}

/* The harness must catch what it claims to: a wrong result, an unwritten output element and a
 * write past the output. A backend wrapper corrupts one op at a time. */
typedef enum { BREAK_VALUE, BREAK_SKIP_LAST, BREAK_OVERRUN } break_kind;
static break_kind g_break;
static sl_status (*g_real_scale)(sl_backend *, sl_tensor *, const sl_tensor *, float, float);

static sl_status broken_scale(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s, float b) {
    size_t nb = sl_tensor_nbytes(y);
    unsigned char save[4] = {0};
    if (g_break == BREAK_SKIP_LAST) memcpy(save, (char *)y->data + nb - 4, 4);
    sl_status st = g_real_scale(be, y, x, s, b);
    if (g_break == BREAK_VALUE) ((float *)y->data)[1] += 1e-3f;
    if (g_break == BREAK_SKIP_LAST) memcpy((char *)y->data + nb - 4, save, 4);
    if (g_break == BREAK_OVERRUN) ((char *)y->data)[nb] ^= 1;
    return st;
}

SL_TEST(ops_harness_catches_errors) {
    sl_backend *be = cpu(false);
    REQUIRE(be);
    sl_backend_vt vt = *be->vt;
    g_real_scale = vt.scale;
    vt.scale = broken_scale;
    const sl_backend_vt *orig = be->vt;
    be->vt = &vt;
    sl_oh_case c = {SL_OH_SCALE, SL_DTYPE_F32, SL_DTYPE_F32, {5, 19}, {0}, {1.5f, 0.25f}, 0, NULL};
    sl_oh_result r;
    sl_err err = {0};
    for (int k = 0; k < 3; k++) {
        g_break = (break_kind)k;
        REQUIRE_OK(sl_oh_run(be, &c, 1.0, &r, &err), &err);
        CHECKF(!r.pass, "break %d not detected", k);
        if (k == BREAK_VALUE) CHECK(r.max_abs > 5e-4 && r.canary_ok);
        if (k == BREAK_SKIP_LAST) CHECK(r.n_nonfinite == 1);
        if (k == BREAK_OVERRUN) CHECK(!r.canary_ok);
    }
    be->vt = orig;
    REQUIRE_OK(sl_oh_run(be, &c, 1.0, &r, &err), &err);
    CHECK(r.pass);
    sl_backend_destroy(be);
}
