/* tests/ops_harness.h — op cases that run on any backend and compare with a double reference.
 *
 * One case = one op call with fixed sizes, dtypes, arguments and a seed. The harness
 *   1. generates its inputs on the host (core/rng; activations rounded to their dtype, weights
 *      encoded with sl_quant_row, or random bytes with sane scales for dequant-only block types),
 *   2. allocates one arena with be->alloc, carves the tensors with sl_new, uploads the inputs,
 *      surrounds the output with guard bytes (canaries) and pre-fills the output with 0xff (NaN),
 *   3. runs the op through sl_op_* on an sl_ctx, downloads the output and the guards,
 *   4. computes the op in double precision from the same (already rounded/decoded) inputs and
 *      compares: max |out − ref| against tol_abs·max(1, max|ref|), ‖out − ref‖₂/‖ref‖₂ against
 *      tol_rel, every output element finite, guards untouched.
 * Tolerances depend on the output dtype and the op (sl_oh_tolerance); a backend that computes in
 * lower precision passes tol_scale > 1.
 *
 * The same table runs on the CPU backend (tests/test_ops*.c) and on CUDA (gpu_* parity tests):
 *     int n; const sl_oh_case *cs = sl_oh_cases(&n);
 *     for (int i = 0; i < n; i++) sl_oh_check(be, &cs[i], 1.0);
 * Custom cases are plain structs; fill the fields documented per op below.
 *
 * Per-op parameters (d = sizes, i = integer arguments, f = float arguments; act = dtype of the
 * activation inputs and of the output; wdt = the "other" dtype where the op has one):
 *   MATMUL       d = {M, K, N}; i[0] = with bias; wdt = weight dtype (any float/block type)
 *   BINARY       d = {rows, cols}; i[0] = sl_binary_op; i[1] = b shape: 0 like a, 1 row, 2 scalar
 *   SCALE        d = {rows, cols}; f = {s, bias}
 *   UNARY        d = {rows, cols}; i[0] = sl_unary_op
 *   GLU          d = {rows, cols}; i[0] = sl_unary_op (activation of g)
 *   RMS_NORM     d = {rows, D}; i[0] = with w; i[1] = with mod; f[0] = eps
 *   LAYER_NORM   d = {rows, D}; i[0..3] = with w, b, scale, shift; f[0] = eps
 *   GROUP_NORM   d = {C, H, W}; i[0] = groups; i[1] = with affine w, b; i[2] = silu; f[0] = eps
 *   ROPE         d = {T, H, Dh}; i[0] = sl_rope_mode; i[1] = with norm_w; i[2] = position axes
 *                (1: one axis over all pairs, 3: Z-Image's 3 axes split 1/4, 3/8, 3/8 of the
 *                pairs); i[3] = every how many tokens one gets all-zero positions (0: none);
 *                f[0] = eps, f[1] = theta
 *   ATTENTION    d = {B, Sq, Sk, Hq, Hk, Dh}; i[0] = causal (needs Sq == Sk); i[1] = 4-D
 *                tensors (else 3-D, needs B = 1); f[0] = scale (0: 1/sqrt(Dh))
 *   SOFTMAX      d = {rows, cols}; f[0] = input spread (0: 1)
 *   GATED_ADD    d = {rows, D}; i[0] = with w; i[1] = with gate; f[0] = eps
 *   CONV2D       d = {Cin, H, W, Cout, kh, kw}; i[0] = stride; i[1..4] = pad top, bottom,
 *                left, right; i[5] = with bias; wdt = weight dtype (float, not block)
 *   UPSAMPLE     d = {C, H, W}; i[0] = factor
 *   PATCHIFY     d = {C, H, W}; i[0] = p; i[1] = sl_patch_order (image → tokens)
 *   UNPATCHIFY   d = {C, H, W} of the image; i[0] = p; i[1] = sl_patch_order (tokens → image)
 *   PERMUTE      d = x shape; i[0..3] = perm; i[4] = ndim
 *   CONCAT       d = a shape; i[0] = ndim; i[1] = dim; i[2] = extent of b along dim
 *   SLICE        d = x shape; i[0] = ndim; i[1] = dim; i[2] = start; i[3] = length
 *   COPY         d = {rows, cols}; wdt = source dtype (any float/block type), output act
 *   GET_ROWS     d = {V, D, n}; wdt = table dtype (any float/block type)
 *   REPEAT_ROWS  d = {rows, D}; wdt = dtype of the row x (float, not block)
 *   TIMESTEP     d = {n, dim}; i[0] = cos_first; f = {t_scale, max_period}; output is f32
 *   FILL         d = {rows, cols}; f[0] = value
 */
#ifndef SL_TESTS_OPS_HARNESS_H
#define SL_TESTS_OPS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

typedef enum sl_oh_op {
    SL_OH_MATMUL,
    SL_OH_BINARY,
    SL_OH_SCALE,
    SL_OH_UNARY,
    SL_OH_GLU,
    SL_OH_RMS_NORM,
    SL_OH_LAYER_NORM,
    SL_OH_GROUP_NORM,
    SL_OH_ROPE,
    SL_OH_ATTENTION,
    SL_OH_SOFTMAX,
    SL_OH_GATED_ADD,
    SL_OH_CONV2D,
    SL_OH_UPSAMPLE,
    SL_OH_PATCHIFY,
    SL_OH_UNPATCHIFY,
    SL_OH_PERMUTE,
    SL_OH_CONCAT,
    SL_OH_SLICE,
    SL_OH_COPY,
    SL_OH_GET_ROWS,
    SL_OH_REPEAT_ROWS,
    SL_OH_TIMESTEP,
    SL_OH_FILL,
    SL_OH_COUNT
} sl_oh_op;

typedef struct sl_oh_case {
    sl_oh_op op;
    sl_dtype act;    /* activation inputs and output */
    sl_dtype wdt;    /* weight / table / source dtype (ops that have one; else ignored) */
    int64_t d[6];    /* sizes, see the table above */
    int i[6];        /* integer arguments */
    float f[2];      /* float arguments */
    uint64_t seed;   /* 0: derived from the case's position in the table */
    const char *tag; /* optional note shown in the name ("zimage qkv"), borrowed */
} sl_oh_case;

typedef struct sl_oh_result {
    char name[192];           /* sl_oh_case_name */
    int64_t n;                /* output elements */
    int64_t n_nonfinite;      /* output elements that are NaN/Inf where the reference is finite */
    double max_abs;           /* max |out − ref| */
    double ref_max;           /* max |ref| */
    double rel_l2;            /* ‖out − ref‖₂ / ‖ref‖₂ (just ‖out − ref‖₂ when ref is all zero) */
    double tol_abs, tol_rel;  /* the bounds applied (already scaled) */
    bool canary_ok;           /* the guard bytes around the output are intact */
    bool pass;
    double ms;                /* wall time of the op call plus a download, for information */
} sl_oh_result;

/* The built-in table (every op; odd sizes, non-multiples of 16, a few real Z-Image shapes).
 * Static storage; *n receives the count. */
const sl_oh_case *sl_oh_cases(int *n);

const char *sl_oh_op_name(sl_oh_op op);
/* "matmul x=bf16 w=q4_k d=[3,3840,64] bias" into buf; returns buf. */
const char *sl_oh_case_name(const sl_oh_case *c, char *buf, size_t n);

/* Default tolerances for a case (before tol_scale). */
void sl_oh_tolerance(const sl_oh_case *c, double *tol_abs, double *tol_rel);

/* False when this build cannot produce the case's inputs (a block type without the quant
 * module); such cases are skipped, never passed. */
bool sl_oh_case_supported(const sl_oh_case *c);

/* Run one case on be and compare. Returns SL_OK when the op ran (r->pass says whether it
 * matched); the backend's status (err filled) when allocation or the op failed, e.g.
 * SL_ERR_UNSUPPORTED for a dtype combination the backend does not implement. */
sl_status sl_oh_run(sl_backend *be, const sl_oh_case *c, double tol_scale, sl_oh_result *r,
                    sl_err *err);

/* Run the case's op on a measuring backend (be from sl_backend_measure_create) through a context
 * with fake addresses: nothing may be dereferenced. SL_OK when every call succeeded. */
sl_status sl_oh_run_dry(sl_backend *be, const sl_oh_case *c, sl_err *err);

/* For tests: run a case and record a test failure (tests/test.h) with the numbers when it does
 * not match or the op fails; with SLUICE_OH_VERBOSE set, print every case's errors and time. Returns 1 when it ran and matched, 0 when it failed, -1 when it was
 * skipped (unsupported by the build or by the backend: SL_ERR_UNSUPPORTED). */
int sl_oh_check(sl_backend *be, const sl_oh_case *c, double tol_scale);

/* Every table case whose op is `op` (SL_OH_COUNT: all) and whose name contains `filter` (NULL:
 * all), checked with sl_oh_check. Counts go to the pointers that are not NULL. */
void sl_oh_check_table(sl_backend *be, sl_oh_op op, const char *filter, double tol_scale,
                       int *n_pass, int *n_fail, int *n_skip);

#endif
