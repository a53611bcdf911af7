/* Residency engine tests on the adversarial fake backend (test_res.h): a toy model of N blocks
 * whose weights live in a file written here, run under every placement; outputs must be
 * bit-identical to the host-visible run that uses the mapped file in place. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "io/wdir.h"
#include "residency/residency.h"
#include "test.h"
#include "test_res.h"

/* ---- the toy model's file: raw tensors at deliberately odd offsets ---- */

enum { MAXU = 24 };

typedef struct toy_file {
    char path[600];
    uint8_t *map;
    size_t size;
    int n_blocks, D;
    sl_wentry win, wout;  /* globals: (D, D) f32, used first and last */
    sl_wentry wb[MAXU];   /* block i: (2D, D), rows [0, D) and [D, 2D) used as two weights */
    sl_wentry bias[MAXU]; /* block i: (D) f32 */
} toy_file;

static const sl_dtype k_dts[3] = {SL_DTYPE_BF16, SL_DTYPE_F32, SL_DTYPE_F16};

static void put_tensor(FILE *fp, sl_wentry *e, const char *name, sl_dtype dt, int ndim,
                       const int64_t *ne, uint64_t seed, float std, uint64_t *off) {
    sl_tensor t = sl_tensor_make(dt, ndim, ne);
    int64_t n = sl_tensor_numel(&t);
    float *v = malloc((size_t)n * sizeof *v);
    size_t nb = sl_tensor_nbytes(&t);
    uint8_t *b = malloc(nb);
    SL_ASSERT(v && b);
    sl_rng_normal(seed, 7, 0, v, n);
    for (int64_t i = 0; i < n; i++) {
        float x = v[i] * std;
        if (dt == SL_DTYPE_F32) memcpy(b + 4 * i, &x, 4);
        if (dt == SL_DTYPE_BF16) {
            uint16_t h = sl_f32_to_bf16(x);
            memcpy(b + 2 * i, &h, 2);
        }
        if (dt == SL_DTYPE_F16) {
            uint16_t h = sl_f32_to_f16(x);
            memcpy(b + 2 * i, &h, 2);
        }
    }
    /* 3 bytes of junk before each tensor: offsets are not aligned */
    fwrite("xyz", 1, 3, fp);
    *off += 3;
    *e = (sl_wentry){
        .name = name, .file = 0, .offset = *off, .nbytes = nb, .dtype = dt, .ndim = ndim};
    for (int i = 0; i < ndim; i++)
        e->ne[i] = ne[i];
    fwrite(b, 1, nb, fp);
    *off += nb;
    free(v);
    free(b);
}

static void toy_file_write(toy_file *tf, int n_blocks, int D) {
    memset(tf, 0, sizeof *tf);
    SL_ASSERT(n_blocks <= MAXU);
    tf->n_blocks = n_blocks;
    tf->D = D;
    snprintf(tf->path, sizeof tf->path, "%s/toy.bin", sl_test_tmpdir());
    FILE *fp = fopen(tf->path, "wb");
    SL_ASSERT(fp);
    uint64_t off = 0;
    float s = 1.0f / sqrtf((float)D);
    put_tensor(fp, &tf->win, "in.weight", SL_DTYPE_F32, 2, (int64_t[]){D, D}, 1, s, &off);
    for (int i = 0; i < n_blocks; i++) {
        put_tensor(fp, &tf->wb[i], "blocks.w", k_dts[i % 3], 2, (int64_t[]){2 * D, D}, 100 + i, s,
                   &off);
        put_tensor(fp, &tf->bias[i], "blocks.b", SL_DTYPE_F32, 1, (int64_t[]){D}, 200 + i, 0.1f,
                   &off);
    }
    put_tensor(fp, &tf->wout, "out.weight", SL_DTYPE_F32, 2, (int64_t[]){D, D}, 3, s, &off);
    fclose(fp);
    int fd = open(tf->path, O_RDONLY);
    SL_ASSERT(fd >= 0);
    tf->size = (size_t)off;
    tf->map = mmap(NULL, tf->size, PROT_READ, MAP_PRIVATE, fd, 0);
    SL_ASSERT(tf->map != MAP_FAILED);
    close(fd);
    sl_wentry *all[] = {&tf->win, &tf->wout};
    for (int i = 0; i < 2; i++)
        all[i]->data = tf->map + all[i]->offset;
    for (int i = 0; i < n_blocks; i++) {
        tf->wb[i].data = tf->map + tf->wb[i].offset;
        tf->bias[i].data = tf->map + tf->bias[i].offset;
    }
}

static void toy_file_close(toy_file *tf) {
    if (tf->map) munmap(tf->map, tf->size);
    tf->map = NULL;
}

/* ---- the toy model ---- */

typedef struct toy {
    const toy_file *tf;
    sl_res *res;
    int g; /* globals unit */
    int u[MAXU];
    sl_tensor win, wout;                   /* (D, D) */
    sl_tensor w1[MAXU], w2[MAXU], b[MAXU]; /* (D, D), (D, D), (D) */
} toy;

/* Declare globals after the blocks (they are still acquired first): the declaration order is
 * then a wrong prediction of the pass order. */
static bool g_toy_globals_last;

/* Declare the units; globals first as models do. `use_paths`: give the file path (pread). */
static sl_status toy_open(toy *t, const toy_file *tf, sl_backend *be, bool use_paths, sl_err *err) {
    memset(t, 0, sizeof *t);
    t->tf = tf;
    sl_status st = sl_res_create(be, "toy model", &t->res, err);
    if (st != SL_OK) return st;
    if (!g_toy_globals_last) t->g = sl_res_add_unit(t->res, "globals");
    for (int i = 0; i < tf->n_blocks; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d", i);
        t->u[i] = sl_res_add_unit(t->res, name);
        sl_res_add_tensor(t->res, t->u[i], &tf->wb[i], 0, tf->D, &t->w1[i]);
        sl_res_add_tensor(t->res, t->u[i], &tf->bias[i], 0, 0, &t->b[i]);
        sl_res_add_tensor(t->res, t->u[i], &tf->wb[i], tf->D, tf->D, &t->w2[i]);
    }
    if (g_toy_globals_last) t->g = sl_res_add_unit(t->res, "globals");
    sl_res_add_tensor(t->res, t->g, &tf->win, 0, 0, &t->win);
    sl_res_add_tensor(t->res, t->g, &tf->wout, 0, 0, &t->wout);
    if (use_paths && (st = sl_res_set_file(t->res, 0, tf->path, err)) != SL_OK) return st;
    return SL_OK;
}

/* One pass: x = in·winᵀ; per block x += (x·w1ᵀ + b)·w2ᵀ; out = x·woutᵀ. Globals are held for
 * the whole pass (a streamed globals unit keeps its slot while blocks stream past it). */
static void toy_pass(toy *t, sl_ctx *c, const float *in, float *out, int T, bool reverse) {
    int D = t->tf->D;
    size_t mark = sl_ctx_mark(c);
    sl_tensor x0 = sl_new2(c, SL_DTYPE_F32, T, D), x = sl_new2(c, SL_DTYPE_F32, T, D);
    sl_tensor h = sl_new2(c, SL_DTYPE_F32, T, D), h2 = sl_new2(c, SL_DTYPE_F32, T, D);
    if (sl_ctx_status(c) != SL_OK) return;
    sl_upload(c, &x0, in);
    sl_res_begin_pass(t->res, c);
    sl_res_acquire(t->res, t->g, c);
    sl_op_matmul(c, &x, &x0, &t->win, NULL);
    for (int ii = 0; ii < t->tf->n_blocks; ii++) {
        int i = reverse ? t->tf->n_blocks - 1 - ii : ii;
        sl_res_acquire(t->res, t->u[i], c);
        sl_op_matmul(c, &h, &x, &t->w1[i], &t->b[i]);
        sl_op_matmul(c, &h2, &h, &t->w2[i], NULL);
        sl_op_add(c, &x, &x, &h2);
        sl_res_release(t->res, t->u[i], c);
    }
    sl_op_matmul(c, &x0, &x, &t->wout, NULL);
    sl_res_release(t->res, t->g, c);
    sl_res_end_pass(t->res, c);
    sl_download(c, out, &x0);
    sl_ctx_reset(c, mark);
}

/* A context with an arena of device memory for T×D activations. */
typedef struct toy_ctx {
    sl_ctx c;
    void *arena;
    sl_backend *be;
    bool dev;
} toy_ctx;

static size_t toy_arena_bytes(int T, int D) {
    return 4 * SL_ALIGN_UP((size_t)T * D * 4, 256) + 256;
}

static void toy_ctx_init(toy_ctx *tc, sl_backend *be, int T, int D) {
    size_t n = toy_arena_bytes(T, D);
    tc->be = be;
    tc->dev = be->info.is_device;
    sl_err e = {0};
    if (tc->dev)
        SL_ASSERT(be->vt->alloc(be, n, &tc->arena, &e) == SL_OK);
    else
        SL_ASSERT(posix_memalign(&tc->arena, 256, n) == 0);
    sl_ctx_init(&tc->c, be, tc->arena, n);
}

static void toy_ctx_free(toy_ctx *tc) {
    if (tc->dev)
        tc->be->vt->free(tc->be, tc->arena);
    else
        free(tc->arena);
}

static void toy_input(float *in, int T, int D) {
    sl_rng_normal(42, 1, 0, in, (int64_t)T * D);
}

/* Reference: the host-visible backend, mapped bytes in place. */
static void toy_reference_on(const toy_file *tf, int T, float *out, int passes, bool reverse,
                             bool cpu) {
    rf_opts o = {.plain = true};
    sl_backend *be = NULL;
    if (cpu) {
        sl_cpu_options co = {.threads = 2};
        sl_err ce = {0};
        SL_ASSERT(sl_backend_cpu_create(&co, &be, &ce) == SL_OK);
    } else {
        be = rf_create(&o);
    }
    toy t;
    sl_err e = {0};
    SL_ASSERT(toy_open(&t, tf, be, false, &e) == SL_OK);
    SL_ASSERT(sl_res_load_host(t.res, &e) == SL_OK);
    toy_ctx tc;
    toy_ctx_init(&tc, be, T, tf->D);
    float *in = malloc((size_t)T * tf->D * sizeof *in);
    toy_input(in, T, tf->D);
    for (int p = 0; p < passes; p++)
        toy_pass(&t, &tc.c, in, out, T, reverse);
    SL_ASSERT(sl_ctx_status(&tc.c) == SL_OK);
    free(in);
    toy_ctx_free(&tc);
    sl_res_free(t.res);
    sl_backend_destroy(be);
}

static void toy_reference(const toy_file *tf, int T, float *out, int passes, bool reverse) {
    toy_reference_on(tf, T, out, passes, reverse, false);
}

/* ---- tests ---- */

SL_TEST(res_units_and_slices) {
    sl_log_set_level(SL_LOG_WARN);
    toy_file tf;
    toy_file_write(&tf, 4, 24);
    rf_opts o = {.plain = true};
    sl_backend *be = rf_create(&o);
    toy t;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t, &tf, be, false, &e), &e);
    CHECK(sl_res_unit_count(t.res) == 5);
    CHECK(!strcmp(sl_res_unit_name(t.res, t.u[2]), "blocks.2"));
    /* shapes now, data at acquire */
    CHECK(t.w1[0].ne[0] == 24 && t.w1[0].ne[1] == 24 && t.w1[0].data == NULL);
    CHECK(t.w1[0].dtype == SL_DTYPE_BF16 && t.w1[1].dtype == SL_DTYPE_F32);
    /* globals: two f32 (24, 24) tensors of 2304 bytes (a multiple of 256) */
    CHECK(sl_res_unit_bytes(t.res, t.g) == 2 * 2304);
    /* block 0 (bf16): w1 1152 → 1280, bias 96 → 256, w2 1152 → 1280 */
    CHECK(sl_res_unit_bytes(t.res, t.u[0]) == 1280 + 256 + 1280);
    size_t sum = 0;
    for (int i = 0; i < sl_res_unit_count(t.res); i++) {
        CHECK(sl_res_unit_bytes(t.res, i) % 256 == 0);
        sum += sl_res_unit_bytes(t.res, i);
    }
    CHECK(sl_res_total_bytes(t.res) == sum);
    /* host-visible: the mapped file in place, rows sliced by offset; no host copy */
    REQUIRE_OK(sl_res_load_host(t.res, &e), &e);
    CHECK(sl_res_host_bytes(t.res) == 0 && rf_host_used(be) == 0);
    sl_ctx c;
    sl_ctx_init(&c, be, NULL, 0);
    sl_res_acquire(t.res, t.u[1], &c);
    CHECK(t.w1[1].data == tf.wb[1].data);
    CHECK((const uint8_t *)t.w2[1].data == (const uint8_t *)tf.wb[1].data + 24 * 24 * 4);
    CHECK(t.b[1].data == tf.bias[1].data);
    sl_res_release(t.res, t.u[1], &c);
    sl_res_free(t.res);
    sl_backend_destroy(be);
    toy_file_close(&tf);
}

SL_TEST(res_null_is_noop) {
    /* dry runs pass res == NULL */
    sl_res_begin_pass(NULL, NULL);
    sl_res_acquire(NULL, 0, NULL);
    sl_res_release(NULL, 0, NULL);
    sl_res_end_pass(NULL, NULL);
    sl_res_park(NULL);
    sl_res_free(NULL);
}

/* Run `passes` passes on a device-mode fake with the given plan; compare each with ref. */
typedef struct run_cfg {
    rf_policy policy;
    uint64_t seed;
    size_t budget; /* weights budget (SIZE_MAX: all may be resident) */
    int prefetch;
    bool stream_all;
    bool use_paths;
    int passes;
    bool park_between; /* park + load_device between passes */
    bool cpu;          /* the real CPU backend in as_device mode instead of the fake */
    bool reverse;      /* blocks run in reverse declaration order */
    size_t host_limit; /* disk tier: pinned host bytes (0: no limit) */
} run_cfg;

/* Device bytes in use (fake: exact; cpu: from mem_info against its budget). */
static size_t dev_used(sl_backend *be, bool cpu) {
    if (!cpu) return rf_device_used(be);
    size_t fr = 0, tot = 0;
    be->vt->mem_info(be, &fr, &tot);
    return tot - fr;
}

static int run_device(const toy_file *tf, int T, const float *ref, const run_cfg *rc, sl_err *e,
                      sl_res_stats *st_out) {
    size_t arena = toy_arena_bytes(T, tf->D);
    rf_opts o = {.policy = rc->policy,
                 .seed = rc->seed,
                 .budget = rc->budget == SIZE_MAX ? 0 : rc->budget + SL_ALIGN_UP(arena, 256)};
    sl_backend *be = NULL;
    if (rc->cpu) {
        sl_cpu_options co = {.threads = 2,
                             .as_device = true,
                             .device_budget = o.budget ? o.budget : (size_t)1 << 32};
        sl_err ce = {0};
        SL_ASSERT(sl_backend_cpu_create(&co, &be, &ce) == SL_OK);
    } else {
        be = rf_create(&o);
    }
    toy t;
    int bad = 0;
    float *in = malloc((size_t)T * tf->D * sizeof *in),
          *out = malloc((size_t)T * tf->D * sizeof *out);
    toy_input(in, T, tf->D);
    toy_ctx tc;
    toy_ctx_init(&tc, be, T, tf->D);
    sl_status st = toy_open(&t, tf, be, rc->use_paths, e);
    if (st == SL_OK && rc->host_limit) sl_res_set_host_limit(t.res, rc->host_limit);
    if (st == SL_OK) st = sl_res_load_host(t.res, e);
    if (st == SL_OK && rc->host_limit && !rc->cpu &&
        (rf_host_used(be) > rc->host_limit || sl_res_host_bytes(t.res) > rc->host_limit))
        bad++;
    sl_res_plan_opts po = {.budget = rc->budget,
                           .prefetch = rc->prefetch ? rc->prefetch : 1,
                           .link_gbps = 1,
                           .force_stream_all = rc->stream_all};
    if (st == SL_OK) st = sl_res_plan(t.res, &po, e);
    if (st == SL_OK) st = sl_res_load_device(t.res, e);
    for (int p = 0; st == SL_OK && p < rc->passes; p++) {
        toy_pass(&t, &tc.c, in, out, T, rc->reverse);
        st = sl_ctx_take_error(&tc.c, e);
        if (st == SL_OK && memcmp(out, ref, (size_t)T * tf->D * sizeof *out)) bad++;
        if (rc->budget != SIZE_MAX &&
            (rc->cpu ? dev_used(be, true) : rf_device_peak(be)) > o.budget)
            bad++;
        if (rc->budget != SIZE_MAX && sl_res_plan_bytes(t.res) > rc->budget) bad++;
        if (st == SL_OK && rc->park_between) {
            sl_res_park(t.res);
            if (dev_used(be, rc->cpu) != SL_ALIGN_UP(arena, 256)) bad++;
            st = sl_res_load_device(t.res, e);
        }
    }
    if (st_out && t.res) sl_res_last_stats(t.res, st_out);
    sl_res_free(t.res);
    toy_ctx_free(&tc);
    if (dev_used(be, rc->cpu) != 0) bad++;
    sl_backend_destroy(be); /* the fake asserts nothing leaked */
    free(in);
    free(out);
    return st != SL_OK ? -1 : bad;
}

SL_TEST(res_all_resident_matches_in_place) {
    enum { N = 6, D = 32, T = 5, P = 3 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, false);
    for (int pol = 0; pol < 3; pol++) {
        for (int paths = 0; paths < 2; paths++) {
            run_cfg rc = {.policy = (rf_policy)pol,
                          .seed = 9,
                          .budget = SIZE_MAX,
                          .passes = P,
                          .use_paths = paths,
                          .park_between = pol == 2};
            sl_err e = {0};
            int bad = run_device(&tf, T, ref, &rc, &e, NULL);
            CHECKF(bad == 0, "policy %d paths %d: %d bad passes (%s)", pol, paths, bad, e.msg);
        }
    }
    toy_file_close(&tf);
}

SL_TEST(res_resident_survives_host_poison) {
    /* all resident: after load_device the host arena can be garbage; passes read device copies */
    enum { N = 4, D = 16, T = 3 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D], out[T * D], in[T * D];
    toy_reference(&tf, T, ref, 1, false);
    toy_input(in, T, D);
    rf_opts o = {.policy = RF_COMPUTE_FIRST};
    sl_backend *be = rf_create(&o);
    toy t;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t, &tf, be, true, &e), &e);
    REQUIRE_OK(sl_res_load_host(t.res, &e), &e);
    CHECK(sl_res_host_bytes(t.res) == sl_res_total_bytes(t.res));
    CHECK(rf_host_used(be) == sl_res_total_bytes(t.res));
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1};
    REQUIRE_OK(sl_res_plan(t.res, &po, &e), &e);
    for (int i = 0; i < sl_res_unit_count(t.res); i++)
        CHECK(sl_res_unit_place(t.res, i) == SL_UNIT_RESIDENT);
    CHECK(sl_res_plan_bytes(t.res) == sl_res_total_bytes(t.res));
    REQUIRE_OK(sl_res_load_device(t.res, &e), &e);
    CHECK(sl_res_is_loaded(t.res));
    CHECK(rf_copy_bytes(be) == sl_res_total_bytes(t.res));
    rf_poison_host(be);
    toy_ctx tc;
    toy_ctx_init(&tc, be, T, D);
    for (int p = 0; p < 2; p++) {
        toy_pass(&t, &tc.c, in, out, T, false);
        REQUIRE_OK(sl_ctx_take_error(&tc.c, &e), &e);
        CHECK(memcmp(out, ref, sizeof out) == 0);
    }
    /* no weight crossed the link again */
    CHECK(rf_copy_bytes(be) == sl_res_total_bytes(t.res));
    sl_res_park(t.res);
    CHECK(!sl_res_is_loaded(t.res));
    CHECK(rf_device_used(be) == SL_ALIGN_UP(toy_arena_bytes(T, D), 256));
    toy_ctx_free(&tc);
    sl_res_free(t.res);
    sl_backend_destroy(be);
    toy_file_close(&tf);
}

/* ---- streaming ---- */

SL_TEST(res_stream_all_plans_bit_identical) {
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 7, D = 24, T = 3, P = 3 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, false);
    /* unit sizes: globals 2 × 2304; blocks f32 4608 + 256, bf16/f16 2 × 1280 + 256... */
    toy t0;
    rf_opts o0 = {.plain = true};
    sl_backend *be0 = rf_create(&o0);
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t0, &tf, be0, false, &e), &e);
    size_t total = sl_res_total_bytes(t0.res), mx = 0;
    for (int i = 0; i < sl_res_unit_count(t0.res); i++)
        mx = SL_MAX(mx, sl_res_unit_bytes(t0.res, i));
    sl_res_free(t0.res);
    sl_backend_destroy(be0);
    int runs = 0, refused = 0;
    for (int pf = 1; pf <= 3; pf++) {
        for (int step = 0; step <= 8; step++) {
            /* budgets from (prefetch + 1) slots of the largest unit to everything */
            size_t lo = (size_t)(pf + 1) * mx,
                   budget = lo + (total - SL_MIN(lo, total)) * (size_t)step / 8;
            for (int all = 0; all < 2; all++) {
                for (int pol = 0; pol < 3; pol++) {
                    run_cfg rc = {.policy = (rf_policy)pol,
                                  .seed = (uint64_t)(step * 7 + pol),
                                  .budget = budget,
                                  .prefetch = pf,
                                  .stream_all = all,
                                  .use_paths = step & 1,
                                  .passes = P,
                                  .park_between = step == 3};
                    sl_err e2 = {0};
                    int bad = run_device(&tf, T, ref, &rc, &e2, NULL);
                    if (bad < 0 && e2.status == SL_ERR_OOM_DEVICE) {
                        refused++;
                        continue;
                    }
                    runs++;
                    CHECKF(bad == 0, "prefetch %d budget %zu stream_all %d policy %d: %d bad (%s)",
                           pf, budget, all, pol, bad, e2.msg);
                }
            }
        }
    }
    CHECKF(runs > 100 && refused == 0, "%d runs, %d refused", runs, refused);
    toy_file_close(&tf);
}

/* Open the toy on a device-mode fake and plan it. */
typedef struct dev_toy {
    sl_backend *be;
    toy t;
    toy_ctx tc;
    float *in, *out;
    int T;
} dev_toy;

static sl_status dev_toy_open(dev_toy *d, const toy_file *tf, int T, const rf_opts *o,
                              const sl_res_plan_opts *po, sl_err *e) {
    memset(d, 0, sizeof *d);
    d->be = rf_create(o);
    d->T = T;
    d->in = malloc((size_t)T * tf->D * sizeof *d->in);
    d->out = malloc((size_t)T * tf->D * sizeof *d->out);
    toy_input(d->in, T, tf->D);
    toy_ctx_init(&d->tc, d->be, T, tf->D);
    sl_status st = toy_open(&d->t, tf, d->be, true, e);
    if (st == SL_OK) st = sl_res_load_host(d->t.res, e);
    if (st == SL_OK) st = sl_res_plan(d->t.res, po, e);
    if (st == SL_OK) st = sl_res_load_device(d->t.res, e);
    return st;
}

static sl_status dev_toy_pass(dev_toy *d, bool reverse, sl_err *e) {
    toy_pass(&d->t, &d->tc.c, d->in, d->out, d->T, reverse);
    return sl_ctx_take_error(&d->tc.c, e);
}

static void dev_toy_close(dev_toy *d) {
    sl_res_free(d->t.res);
    toy_ctx_free(&d->tc);
    sl_backend_destroy(d->be);
    free(d->in);
    free(d->out);
}

SL_TEST(res_stream_poison_proves_reupload) {
    /* streamed units come from device slots refilled every pass: poisoning the host copy after
     * a pass changes the next pass's output (and all-resident plans ignore it: see
     * res_resident_survives_host_poison) */
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 5, D = 16, T = 2 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, false);
    rf_opts o = {.policy = RF_COMPUTE_FIRST};
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1, .force_stream_all = true};
    dev_toy d;
    sl_err e = {0};
    REQUIRE_OK(dev_toy_open(&d, &tf, T, &o, &po, &e), &e);
    for (int i = 0; i < sl_res_unit_count(d.t.res); i++)
        CHECK(sl_res_unit_place(d.t.res, i) == SL_UNIT_STREAMED);
    REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
    CHECK(memcmp(d.out, ref, sizeof ref) == 0);
    rf_poison_host(d.be);
    REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
    CHECK(memcmp(d.out, ref, sizeof ref) != 0);
    dev_toy_close(&d);
    toy_file_close(&tf);
}

SL_TEST(res_stream_order_diverges_and_is_recorded) {
    /* blocks run in reverse declaration order: the predicted order is wrong on the first pass
     * (on-demand uploads), the recorded one drives prefetch afterwards; outputs always match */
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 6, D = 16, T = 2 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, true);
    for (int pol = 0; pol < 3; pol++) {
        for (int pf = 1; pf <= 2; pf++) {
            run_cfg rc = {.policy = (rf_policy)pol,
                          .seed = 3,
                          .budget = SIZE_MAX,
                          .prefetch = pf,
                          .stream_all = true,
                          .passes = 4,
                          .reverse = true};
            sl_err e = {0};
            int bad = run_device(&tf, T, ref, &rc, &e, NULL);
            CHECKF(bad == 0, "policy %d prefetch %d: %d bad (%s)", pol, pf, bad, e.msg);
        }
    }
    /* the order changing between passes (forward, then reverse, then forward) */
    rf_opts o = {.policy = RF_COPY_FIRST};
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 2, .force_stream_all = true};
    float fwd[T * D];
    toy_reference(&tf, T, fwd, 1, false);
    dev_toy d;
    sl_err e = {0};
    REQUIRE_OK(dev_toy_open(&d, &tf, T, &o, &po, &e), &e);
    for (int p = 0; p < 6; p++) {
        bool rev = p == 2 || p == 3;
        REQUIRE_OK(dev_toy_pass(&d, rev, &e), &e);
        CHECKF(memcmp(d.out, rev ? ref : fwd, sizeof ref) == 0, "pass %d", p);
    }
    dev_toy_close(&d);
    toy_file_close(&tf);
}

SL_TEST(res_stream_stats_and_profile_line) {
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 6, D = 32, T = 4 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    rf_opts o = {.policy = RF_RANDOM, .seed = 5, .link_bytes_per_ms = 1e6, .flops_per_ms = 1e7};
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 2, .force_stream_all = true};
    dev_toy d;
    sl_err e = {0};
    REQUIRE_OK(dev_toy_open(&d, &tf, T, &o, &po, &e), &e);
    size_t total = sl_res_total_bytes(d.t.res);
    size_t up0 = rf_copy_bytes(d.be);
    for (int p = 0; p < 4; p++)
        REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
    sl_res_stats st;
    sl_res_last_stats(d.t.res, &st);
    CHECK(st.units_resident == 0 && st.units_streamed == N + 1);
    CHECK(st.bytes_uploaded == total);
    /* every pass re-sends every unit; at most one pass's worth is prefetched ahead */
    size_t up = rf_copy_bytes(d.be) - up0;
    CHECKF(up >= 4 * total && up <= 5 * total, "%zu bytes up for 4 passes of %zu", up, total);
    /* virtual time: copies at exactly 1e6 bytes/ms */
    CHECK_NEAR(st.copy_ms, (double)total / 1e6, 1e-3);
    CHECK(st.pass_ms > 0 && st.stall_ms >= 0);
    CHECK_NEAR(st.compute_ms + st.stall_ms, st.pass_ms, 1e-6);
    /* compute is the matmuls: 2 per block of 2·T·D·D flops, in + out projections */
    double flops = (double)N * 2 * 2 * T * D * D + 2.0 * 2 * T * D * D;
    CHECK_NEAR(st.compute_ms, flops / 1e7, 1e-3);
    /* the first pass measured each block's cost: 2 matmuls */
    bool meas = false;
    double c = sl_res_unit_cost(d.t.res, d.t.u[2], &meas);
    CHECK(meas);
    CHECK_NEAR(c * 1e3, 2.0 * 2 * T * D * D / 1e7, 1e-6);
    c = sl_res_unit_cost(d.t.res, d.t.g, &meas);
    CHECK_NEAR(c * 1e3, 2.0 * 2 * T * D * D / 1e7, 1e-6);
    char line[256];
    sl_res_format_stats(d.t.res, line, sizeof line);
    CHECKF(strstr(line, "res[toy model] pass: 0 resident / 7 streamed") && strstr(line, "GB/s") &&
               strstr(line, "stall"),
           "%s", line);
    dev_toy_close(&d);
    toy_file_close(&tf);
}

SL_TEST(res_stream_predicted_time_matches_virtual_time) {
    /* the planner's simulation and the engine agree: plan with the costs measured on the first
     * pass and the fake's link speed, then compare predicted and (virtual) measured pass time */
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 12, D = 64, T = 16 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    rf_opts o = {.policy = RF_RANDOM, .seed = 11, .link_bytes_per_ms = 1e6, .flops_per_ms = 1e7};
    sl_res_plan_opts po = {
        .budget = SIZE_MAX, .prefetch = 1, .force_stream_all = true, .link_gbps = 1.0};
    dev_toy d;
    sl_err e = {0};
    REQUIRE_OK(dev_toy_open(&d, &tf, T, &o, &po, &e), &e);
    REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
    size_t total = sl_res_total_bytes(d.t.res);
    /* budgets: everything streamed, then room for some residents */
    size_t budgets[3] = {0, total / 2, total * 3 / 4};
    for (int b = 0; b < 3; b++) {
        po.force_stream_all = b == 0;
        po.budget = b == 0 ? SIZE_MAX : budgets[b];
        REQUIRE_OK(sl_res_plan(d.t.res, &po, &e), &e);
        REQUIRE_OK(sl_res_load_device(d.t.res, &e), &e);
        for (int p = 0; p < 4; p++)
            REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
        sl_res_stats st;
        sl_res_last_stats(d.t.res, &st);
        sl_res_plan_info pi;
        sl_res_plan_info_get(d.t.res, &pi);
        fprintf(stderr,
                "    budget %d: %d resident, measured %.4f ms, predicted %.4f ms, stall %.4f ms\n",
                b, pi.n_resident, st.pass_ms, pi.predicted_ms, st.stall_ms);
        CHECKF(fabs(st.pass_ms - pi.predicted_ms) <= 0.05 * pi.predicted_ms,
               "budget %d: measured %.4f ms, predicted %.4f ms (%d resident)", b, st.pass_ms,
               pi.predicted_ms, pi.n_resident);
    }
    dev_toy_close(&d);
    toy_file_close(&tf);
}

SL_TEST(res_stream_budget_errors) {
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 4, D = 16, T = 2 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    /* a plan budget below two of the largest unit */
    rf_opts o = {.policy = RF_COPY_FIRST};
    dev_toy d;
    sl_err e = {0};
    sl_res_plan_opts po = {.budget = 1000, .prefetch = 1};
    CHECK(dev_toy_open(&d, &tf, T, &o, &po, &e) == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(e.msg, "toy model") && strstr(e.msg, "--max-vram") && strstr(e.msg, "1000 bytes"),
           "%s", e.msg);
    dev_toy_close(&d);
    /* the plan fits its budget but the device has less: load_device fails cleanly */
    size_t arena = SL_ALIGN_UP(toy_arena_bytes(T, D), 256);
    o.budget = arena + 4096;
    sl_err e2 = {0};
    po.budget = SIZE_MAX;
    CHECK(dev_toy_open(&d, &tf, T, &o, &po, &e2) == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(e2.msg, "toy model") && strstr(e2.msg, "VRAM"), "%s", e2.msg);
    CHECK(rf_device_used(d.be) == arena);
    CHECK(!sl_res_is_loaded(d.t.res));
    /* acquiring then reports through the context instead of crashing */
    toy_pass(&d.t, &d.tc.c, d.in, d.out, T, false);
    CHECK(sl_ctx_status(&d.tc.c) == SL_ERR_OOM_DEVICE);
    dev_toy_close(&d); /* the fake asserts nothing leaked */
    toy_file_close(&tf);
}

SL_TEST(res_link_measure) {
    rf_opts o = {.link_bytes_per_ms = 2e6};
    sl_backend *be = rf_create(&o);
    double g = 0;
    sl_err e = {0};
    REQUIRE_OK(sl_res_measure_link(be, 8 << 20, &g, &e), &e);
    CHECK_NEAR(g, 2.0, 1e-3); /* the fake's virtual link: 2e6 bytes/ms */
    CHECK(rf_device_used(be) == 0 && rf_host_used(be) == 0);
    sl_backend_destroy(be);
    /* the plain cpu backend: memcpy speed, some positive number */
    sl_cpu_options co = {.threads = 1};
    REQUIRE_OK(sl_backend_cpu_create(&co, &be, &e), &e);
    REQUIRE_OK(sl_res_measure_link(be, 16 << 20, &g, &e), &e);
    CHECK(g > 0.05);
    sl_backend_destroy(be);
}

/* ---- the real CPU backend in as_device mode (copy queue = a worker thread) ---- */

SL_TEST(res_cpu_device_plans_bit_identical) {
    sl_log_set_level(SL_LOG_WARN);
    setenv("SLUICE_CPU_COPY_DELAY_US", "300", 1); /* slow uploads: a missing wait shows */
    enum { N = 6, D = 32, T = 4 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference_on(&tf, T, ref, 1, false, true);
    rf_opts o0 = {.plain = true};
    sl_backend *be0 = rf_create(&o0);
    toy t0;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t0, &tf, be0, false, &e), &e);
    size_t total = sl_res_total_bytes(t0.res), mx = 0;
    for (int i = 0; i < sl_res_unit_count(t0.res); i++)
        mx = SL_MAX(mx, sl_res_unit_bytes(t0.res, i));
    sl_res_free(t0.res);
    sl_backend_destroy(be0);
    for (int pf = 1; pf <= 3; pf++) {
        for (int step = 0; step <= 3; step++) {
            size_t lo = (size_t)(pf + 1) * mx;
            size_t budget =
                step == 3 ? SIZE_MAX : lo + (total - SL_MIN(lo, total)) * (size_t)step / 3;
            for (int all = 0; all < 2; all++) {
                run_cfg rc = {.cpu = true,
                              .budget = budget,
                              .prefetch = pf,
                              .stream_all = all,
                              .use_paths = true,
                              .passes = 3,
                              .park_between = step == 1};
                sl_err e2 = {0};
                int bad = run_device(&tf, T, ref, &rc, &e2, NULL);
                CHECKF(bad == 0, "prefetch %d budget %zu stream_all %d: %d bad (%s)", pf, budget,
                       all, bad, e2.msg);
            }
        }
    }
    toy_file_close(&tf);
}

/* ---- host home from real files ---- */

SL_TEST(res_host_arena_from_safetensors_by_pread) {
    /* a safetensors file written by the io writer, opened as a weight directory; the arena is
     * filled by pread (sl_res_set_wdir) and holds exactly the packed bytes, once */
    sl_log_set_level(SL_LOG_WARN);
    char path[600];
    snprintf(path, sizeof path, "%s/w.safetensors", sl_test_tmpdir());
    sl_err e = {0};
    sl_st_writer *w = NULL;
    REQUIRE_OK(sl_st_writer_open(&w, path, &e), &e);
    const char *names[3] = {"a.weight", "b.weight", "c.bias"};
    int64_t shapes[3][2] = {{40, 24}, {24, 24}, {24, 1}};
    sl_dtype dts[3] = {SL_DTYPE_BF16, SL_DTYPE_F32, SL_DTYPE_F16};
    for (int i = 0; i < 3; i++)
        REQUIRE_OK(sl_st_writer_add(w, names[i], dts[i], i == 2 ? 1 : 2, shapes[i], &e), &e);
    REQUIRE_OK(sl_st_writer_begin_data(w, &e), &e);
    for (int i = 0; i < 3; i++) {
        size_t nb = (size_t)(shapes[i][0] * shapes[i][1]) * (dts[i] == SL_DTYPE_F32 ? 4 : 2);
        uint8_t *b = malloc(nb);
        for (size_t k = 0; k < nb; k++)
            b[k] = (uint8_t)(k * 31 + (size_t)i * 7 + 1);
        REQUIRE_OK(sl_st_writer_write(w, b, nb, &e), &e);
        free(b);
    }
    REQUIRE_OK(sl_st_writer_close(w, &e), &e);
    sl_wdir *d = NULL;
    const char *paths[1] = {path};
    REQUIRE_OK(sl_wdir_open(&d, paths, 1, &e), &e);
    const sl_wentry *ea = sl_wdir_find(d, "a.weight"), *eb = sl_wdir_find(d, "b.weight"),
                    *ec = sl_wdir_find(d, "c.bias");
    REQUIRE(ea && eb && ec);
    rf_opts o = {.policy = RF_COPY_FIRST};
    sl_backend *be = rf_create(&o);
    sl_res *r = NULL;
    REQUIRE_OK(sl_res_create(be, "files", &r, &e), &e);
    sl_tensor a0, a1, b, c;
    int u0 = sl_res_add_unit(r, "u0"), u1 = sl_res_add_unit(r, "u1");
    sl_res_add_tensor(r, u0, ea, 0, 16, &a0); /* rows [0, 16) */
    sl_res_add_tensor(r, u0, ec, 0, 0, &c);
    sl_res_add_tensor(r, u1, ea, 16, 24, &a1); /* rows [16, 40) */
    sl_res_add_tensor(r, u1, eb, 0, 0, &b);
    CHECK(a1.ne[0] == 24 && a1.ne[1] == 24);
    REQUIRE_OK(sl_res_set_wdir(r, d, &e), &e);
    REQUIRE_OK(sl_res_load_host(r, &e), &e);
    CHECK(rf_host_used(be) == sl_res_total_bytes(r));
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1, .force_stream_all = true};
    REQUIRE_OK(sl_res_plan(r, &po, &e), &e);
    REQUIRE_OK(sl_res_load_device(r, &e), &e);
    sl_ctx ctx;
    sl_ctx_init(&ctx, be, NULL, 0);
    /* each acquired tensor holds the file's bytes of its rows */
    sl_tensor *ts[4] = {&a0, &c, &a1, &b};
    const uint8_t *want[4] = {ea->data, ec->data, (const uint8_t *)ea->data + 16 * 24 * 2,
                              eb->data};
    int units[4] = {u0, u0, u1, u1};
    for (int p = 0; p < 2; p++) {
        sl_res_begin_pass(r, &ctx);
        for (int i = 0; i < 4; i += 2) {
            sl_res_acquire(r, units[i], &ctx);
            for (int k = i; k < i + 2; k++) {
                size_t nb = sl_tensor_nbytes(ts[k]);
                uint8_t *got = malloc(nb);
                be->vt->download(be, got, ts[k]->data, nb);
                CHECKF(memcmp(got, want[k], nb) == 0, "pass %d tensor %d", p, k);
                free(got);
            }
            sl_res_release(r, units[i], &ctx);
        }
        sl_res_end_pass(r, &ctx);
    }
    REQUIRE_OK(sl_ctx_take_error(&ctx, &e), &e);
    sl_res_free(r);
    sl_backend_destroy(be);
    sl_wdir_free(d);
}

SL_TEST(res_host_arena_oom_names_bytes) {
    enum { N = 3, D = 16 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    rf_opts o = {.host_limit = 1000};
    sl_backend *be = rf_create(&o);
    toy t;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t, &tf, be, true, &e), &e);
    CHECK(sl_res_load_host(t.res, &e) == SL_ERR_OOM_HOST);
    char want[64];
    snprintf(want, sizeof want, "%zu bytes", sl_res_total_bytes(t.res));
    CHECKF(strstr(e.msg, "toy model") && strstr(e.msg, want), "%s", e.msg);
    sl_res_free(t.res);
    sl_backend_destroy(be);
    toy_file_close(&tf);
}

SL_TEST(res_replan_after_first_pass_makes_held_globals_resident) {
    /* globals are acquired for the whole pass; the first plan (nothing known) streams it when the
     * budget is tight, the first pass shows it spanning, and the engine re-plans: globals
     * resident, output unchanged, budget kept */
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 8, D = 32, T = 8 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, false);
    rf_opts o = {.policy = RF_RANDOM, .seed = 2, .link_bytes_per_ms = 2e6, .flops_per_ms = 1e7};
    rf_opts o0 = {.plain = true};
    sl_backend *be0 = rf_create(&o0);
    toy t0;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t0, &tf, be0, false, &e), &e);
    size_t total = sl_res_total_bytes(t0.res);
    sl_res_free(t0.res);
    sl_backend_destroy(be0);
    sl_res_plan_opts po = {.budget = total / 2, .prefetch = 1, .link_gbps = 2};
    dev_toy d;
    g_toy_globals_last = true;
    sl_status st = dev_toy_open(&d, &tf, T, &o, &po, &e);
    g_toy_globals_last = false;
    REQUIRE_OK(st, &e);
    bool globals_streamed_first = sl_res_unit_place(d.t.res, d.t.g) == SL_UNIT_STREAMED;
    for (int p = 0; p < 4; p++) {
        REQUIRE_OK(dev_toy_pass(&d, false, &e), &e);
        CHECKF(memcmp(d.out, ref, sizeof ref) == 0, "pass %d", p);
        CHECK(sl_res_plan_bytes(d.t.res) <= po.budget);
    }
    CHECK(sl_res_unit_place(d.t.res, d.t.g) == SL_UNIT_RESIDENT);
    bool meas = false;
    sl_res_unit_cost(d.t.res, d.t.u[0], &meas);
    CHECK(meas);
    dev_toy_close(&d);
    toy_file_close(&tf);
    CHECKF(globals_streamed_first, "the first plan already kept globals resident: nothing tested");
}

SL_TEST(res_disk_tier_bit_identical) {
    /* pinned RAM limited to a fraction of the model: the units outside the arena are read from
     * the file through the staging buffers at every upload; outputs never change */
    sl_log_set_level(SL_LOG_WARN);
    enum { N = 7, D = 24, T = 3 };
    toy_file tf;
    toy_file_write(&tf, N, D);
    float ref[T * D];
    toy_reference(&tf, T, ref, 1, false);
    rf_opts o0 = {.plain = true};
    sl_backend *be0 = rf_create(&o0);
    toy t0;
    sl_err e = {0};
    REQUIRE_OK(toy_open(&t0, &tf, be0, false, &e), &e);
    size_t total = sl_res_total_bytes(t0.res);
    sl_res_free(t0.res);
    sl_backend_destroy(be0);
    int runs = 0;
    for (int lim = 0; lim < 3; lim++) {
        size_t host_limit = total * (size_t)(2 + lim) / 6; /* 33%, 50%, 67% */
        for (int pf = 1; pf <= 2; pf++) {
            for (int plan = 0; plan < 3; plan++) {
                for (int pol = 0; pol < 3; pol++) {
                    run_cfg rc = {.policy = (rf_policy)pol,
                                  .seed = (uint64_t)(lim * 9 + plan),
                                  .budget = plan == 0 ? SIZE_MAX : total * 2 / 3,
                                  .prefetch = pf,
                                  .stream_all = plan == 2,
                                  .use_paths = (pol + lim) & 1,
                                  .passes = 3,
                                  .park_between = plan == 1 && pol == 0,
                                  .host_limit = host_limit};
                    sl_err e2 = {0};
                    int bad = run_device(&tf, T, ref, &rc, &e2, NULL);
                    runs++;
                    CHECKF(bad == 0, "limit %zu prefetch %d plan %d policy %d: %d bad (%s)",
                           host_limit, pf, plan, pol, bad, e2.msg);
                }
            }
        }
    }
    /* and on the real cpu backend with slow uploads */
    setenv("SLUICE_CPU_COPY_DELAY_US", "200", 1);
    float cref[T * D];
    toy_reference_on(&tf, T, cref, 1, false, true);
    for (int plan = 0; plan < 3; plan++) {
        run_cfg rc = {.cpu = true,
                      .budget = plan == 0 ? SIZE_MAX : total / 2,
                      .prefetch = 1,
                      .stream_all = plan == 2,
                      .use_paths = true,
                      .passes = 3,
                      .host_limit = total / 3};
        sl_err e2 = {0};
        int bad = run_device(&tf, T, cref, &rc, &e2, NULL);
        CHECKF(bad == 0, "cpu plan %d: %d bad (%s)", plan, bad, e2.msg);
    }
    CHECK(runs == 54);
    toy_file_close(&tf);
}

SL_TEST(res_weight_budget) {
    rf_opts o = {.budget = 1000000};
    sl_backend *be = rf_create(&o);
    sl_res *r = NULL;
    sl_err e = {0};
    REQUIRE_OK(sl_res_create(be, "x", &r, &e), &e);
    CHECK(sl_res_weight_budget(r, 100000, 200000, 0) == 700000);
    CHECK(sl_res_weight_budget(r, 100000, 200000, 500000) == 500000);
    CHECK(sl_res_weight_budget(r, 900000, 200000, 0) == 0);
    void *p = NULL;
    REQUIRE_OK(be->vt->alloc(be, 300000, &p, &e), &e);
    CHECK(sl_res_weight_budget(r, 0, 0, 0) == 1000000 - SL_ALIGN_UP((size_t)300000, 256));
    be->vt->free(be, p);
    sl_res_free(r);
    sl_backend_destroy(be);
}
