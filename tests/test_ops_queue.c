/* CPU backend memory, queues and events: the ordering rules of backend.h on the cpu-as-device
 * emulation (a worker thread as copy queue), and the device budget. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/ops.h"
#include "test.h"

static sl_backend *make_dev(size_t budget) {
    sl_cpu_options o = {.threads = 2, .as_device = true, .device_budget = budget};
    sl_backend *be = NULL;
    sl_err err = {0};
    if (sl_backend_cpu_create(&o, &be, &err) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "cpu backend: %s", err.msg);
        return NULL;
    }
    return be;
}

SL_TEST(ops_queue_info_and_alignment) {
    sl_backend *be = NULL;
    sl_err err = {0};
    sl_cpu_options o = {.threads = 0};
    REQUIRE_OK(sl_backend_cpu_create(&o, &be, &err), &err);
    CHECK(!be->info.is_device && be->info.host_visible && be->info.act_dtype == SL_DTYPE_F32);
    void *p = NULL, *h = NULL;
    REQUIRE_OK(be->vt->alloc(be, 1000, &p, &err), &err);
    REQUIRE_OK(be->vt->host_alloc(be, 77, &h, &err), &err);
    CHECK(((uintptr_t)p & 255) == 0 && ((uintptr_t)h & 255) == 0);
    size_t fr = 0, tot = 0;
    be->vt->mem_info(be, &fr, &tot);
    CHECK(tot > 0 && fr <= tot);
    be->vt->free(be, p);
    be->vt->host_free(be, h);
    sl_backend_destroy(be);

    be = make_dev(0);
    REQUIRE(be);
    CHECK(be->info.is_device && !be->info.host_visible && be->info.can_time);
    sl_backend_destroy(be);
}

SL_TEST(ops_queue_device_budget) {
    sl_backend *be = make_dev(1 << 20);
    REQUIRE(be);
    sl_err err = {0};
    void *a = NULL, *b = NULL, *c = NULL;
    size_t fr = 0, tot = 0;
    be->vt->mem_info(be, &fr, &tot);
    CHECK(tot == (1 << 20) && fr == tot);
    REQUIRE_OK(be->vt->alloc(be, 600 << 10, &a, &err), &err);
    be->vt->mem_info(be, &fr, &tot);
    CHECK(fr == (1 << 20) - (600 << 10));
    sl_status st = be->vt->alloc(be, 600 << 10, &b, &err);
    CHECK(st == SL_ERR_OOM_DEVICE && b == NULL);
    /* the message names the bytes needed and free */
    CHECKF(strstr(err.msg, "614400") && strstr(err.msg, "434176"), "message: %s", err.msg);
    CHECK(strstr(be->last_error, "614400") != NULL);
    /* what remains can still be allocated; freeing returns it */
    REQUIRE_OK(be->vt->alloc(be, 400 << 10, &c, &(sl_err){0}), &err);
    be->vt->free(be, a);
    be->vt->mem_info(be, &fr, &tot);
    CHECK(fr == (1 << 20) - (400 << 10));
    REQUIRE_OK(be->vt->alloc(be, 600 << 10, &b, &(sl_err){0}), &err);
    be->vt->free(be, b);
    be->vt->free(be, c);
    /* host_alloc is not counted */
    void *h = NULL;
    REQUIRE_OK(be->vt->host_alloc(be, 4 << 20, &h, &err), &err);
    be->vt->mem_info(be, &fr, &tot);
    CHECK(fr == tot);
    be->vt->host_free(be, h);
    sl_backend_destroy(be);
}

/* Device memory is filled with NaN bytes, and ops refuse host pointers on a "device". */
SL_TEST(ops_queue_device_pointers_checked) {
    sl_backend *be = make_dev(0);
    REQUIRE(be);
    sl_err err = {0};
    void *d = NULL;
    REQUIRE_OK(be->vt->alloc(be, 4096, &d, &err), &err);
    CHECK(((unsigned char *)d)[100] == 0xff);
    sl_ctx c;
    sl_ctx_init(&c, be, d, 4096);
    sl_tensor y = sl_new1(&c, SL_DTYPE_F32, 16);
    float host[16] = {0};
    sl_tensor hx = sl_tensor1(SL_DTYPE_F32, 16);
    hx.data = host;
    sl_op_scale(&c, &y, &hx, 2.0f, 0.0f);
    CHECK(sl_ctx_status(&c) == SL_ERR_BACKEND);
    CHECKF(strstr(c.err.msg, "not in device memory") != NULL, "message: %s", c.err.msg);
    /* an asynchronous upload from pageable memory is refused too */
    CHECK(be->vt->upload(be, SL_QUEUE_COPY, d, host, sizeof host) == SL_ERR_BACKEND);
    CHECK(be->vt->upload(be, SL_QUEUE_COMPUTE, d, host, sizeof host) == SL_OK);
    be->vt->free(be, d);
    sl_backend_destroy(be);
}

enum { NBUF = 16, BUFSZ = 1 << 20 };

/* Many large copies queued back to back land in order: a later copy to the same destination
 * wins, and an event recorded after them is complete only when all are done. */
SL_TEST(ops_queue_copies_in_order) {
    setenv("SLUICE_CPU_COPY_DELAY_US", "2000", 1);
    sl_backend *be = make_dev(0);
    unsetenv("SLUICE_CPU_COPY_DELAY_US");
    REQUIRE(be);
    sl_err err = {0};
    unsigned char *h[NBUF];
    void *d = NULL;
    REQUIRE_OK(be->vt->alloc(be, BUFSZ, &d, &err), &err);
    for (int i = 0; i < NBUF; i++) {
        REQUIRE_OK(be->vt->host_alloc(be, BUFSZ, (void **)&h[i], &err), &err);
        memset(h[i], i + 1, BUFSZ);
    }
    sl_event *e = NULL;
    REQUIRE_OK(be->vt->event_create(be, &e), &err);
    for (int i = 0; i < NBUF; i++) REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, d, h[i], BUFSZ) == SL_OK);
    REQUIRE(be->vt->event_record(be, e, SL_QUEUE_COPY) == SL_OK);
    /* with 2 ms per copy, 16 copies cannot be done yet: the host must not see the last value */
    unsigned char early = ((volatile unsigned char *)d)[BUFSZ - 1];
    CHECK(early != NBUF);
    REQUIRE(be->vt->event_sync(be, e) == SL_OK);
    unsigned char *back = malloc(BUFSZ);
    REQUIRE(back);
    REQUIRE(be->vt->download(be, back, d, BUFSZ) == SL_OK);
    int bad = 0;
    for (int i = 0; i < BUFSZ; i++) bad += back[i] != NBUF;
    CHECK(bad == 0);
    free(back);
    be->vt->event_destroy(be, e);
    for (int i = 0; i < NBUF; i++) be->vt->host_free(be, h[i]);
    be->vt->free(be, d);
    sl_backend_destroy(be);
}

/* An event recorded after a copy completes only after the copy; compute that waits on it sees
 * the data (the residency engine's `ready` event). */
SL_TEST(ops_queue_compute_waits_for_copy) {
    setenv("SLUICE_CPU_COPY_DELAY_US", "20000", 1);
    sl_backend *be = make_dev(0);
    unsetenv("SLUICE_CPU_COPY_DELAY_US");
    REQUIRE(be);
    sl_err err = {0};
    enum { N = 4096 };
    float *h = NULL;
    void *arena = NULL;
    REQUIRE_OK(be->vt->host_alloc(be, N * sizeof(float), (void **)&h, &err), &err);
    REQUIRE_OK(be->vt->alloc(be, 4 * N * sizeof(float), &arena, &err), &err);
    for (int i = 0; i < N; i++) h[i] = (float)i;
    sl_ctx c;
    sl_ctx_init(&c, be, arena, 4 * N * sizeof(float));
    sl_tensor w = sl_new1(&c, SL_DTYPE_F32, N), y = sl_new1(&c, SL_DTYPE_F32, N);
    sl_event *ready = NULL, *start = NULL;
    REQUIRE_OK(be->vt->event_create(be, &ready), &err);
    REQUIRE_OK(be->vt->event_create(be, &start), &err);
    REQUIRE(be->vt->event_record(be, start, SL_QUEUE_COPY) == SL_OK);
    REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, w.data, h, N * sizeof(float)) == SL_OK);
    REQUIRE(be->vt->event_record(be, ready, SL_QUEUE_COPY) == SL_OK);
    /* the copy sleeps 20 ms first: right after queueing it the destination is still NaN */
    CHECK(isnan(((volatile float *)w.data)[N - 1]));
    REQUIRE(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, ready) == SL_OK);
    sl_op_scale(&c, &y, &w, 2.0f, 1.0f);
    float *out = malloc(N * sizeof(float));
    REQUIRE(out);
    sl_download(&c, out, &y);
    REQUIRE(sl_ctx_status(&c) == SL_OK);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += out[i] != 2.0f * (float)i + 1.0f;
    CHECK(bad == 0);
    float ms = -1;
    REQUIRE(be->vt->event_elapsed(be, start, ready, &ms) == SL_OK);
    CHECKF(ms >= 15.0f && ms < 5000.0f, "elapsed %.3f ms for a copy delayed 20 ms", ms);
    free(out);
    be->vt->event_destroy(be, ready);
    be->vt->event_destroy(be, start);
    be->vt->host_free(be, h);
    be->vt->free(be, arena);
    sl_backend_destroy(be);
}

/* The copy queue waits for a compute event before overwriting a buffer compute reads (the
 * residency engine's `free` event): compute reads the old contents, a later copy the new ones.
 * (The compute queue is the host thread, so a compute event is reached when recorded and the
 * copy queue's wait is satisfied at once; this checks that the sequence runs and stays ordered.) */
SL_TEST(ops_queue_copy_waits_for_compute) {
    sl_backend *be = make_dev(0);
    REQUIRE(be);
    sl_err err = {0};
    enum { N = 1 << 16 };
    float *h1 = NULL, *h2 = NULL;
    void *arena = NULL;
    REQUIRE_OK(be->vt->host_alloc(be, N * sizeof(float), (void **)&h1, &err), &err);
    REQUIRE_OK(be->vt->host_alloc(be, N * sizeof(float), (void **)&h2, &err), &err);
    REQUIRE_OK(be->vt->alloc(be, 4 * N * sizeof(float), &arena, &err), &err);
    for (int i = 0; i < N; i++) h1[i] = 1.0f, h2[i] = 2.0f;
    sl_ctx c;
    sl_ctx_init(&c, be, arena, 4 * N * sizeof(float));
    sl_tensor slot = sl_new1(&c, SL_DTYPE_F32, N), y = sl_new1(&c, SL_DTYPE_F32, N);
    sl_event *ready = NULL, *freed = NULL, *ready2 = NULL;
    REQUIRE_OK(be->vt->event_create(be, &ready), &err);
    REQUIRE_OK(be->vt->event_create(be, &freed), &err);
    REQUIRE_OK(be->vt->event_create(be, &ready2), &err);
    for (int round = 0; round < 20; round++) {
        REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, slot.data, h1, N * sizeof(float)) == SL_OK);
        REQUIRE(be->vt->event_record(be, ready, SL_QUEUE_COPY) == SL_OK);
        REQUIRE(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, ready) == SL_OK);
        sl_op_scale(&c, &y, &slot, 1.0f, 0.0f);
        REQUIRE(be->vt->event_record(be, freed, SL_QUEUE_COMPUTE) == SL_OK);
        REQUIRE(be->vt->queue_wait(be, SL_QUEUE_COPY, freed) == SL_OK);
        REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, slot.data, h2, N * sizeof(float)) == SL_OK);
        REQUIRE(be->vt->event_record(be, ready2, SL_QUEUE_COPY) == SL_OK);
        float out[4];
        REQUIRE(be->vt->download(be, out, (float *)y.data + N - 4, sizeof out) == SL_OK);
        CHECK(out[3] == 1.0f);
        REQUIRE(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, ready2) == SL_OK);
        REQUIRE(be->vt->download(be, out, (float *)slot.data + N - 4, sizeof out) == SL_OK);
        CHECK(out[3] == 2.0f);
    }
    REQUIRE(be->vt->sync(be) == SL_OK);
    REQUIRE(sl_ctx_status(&c) == SL_OK);
    be->vt->event_destroy(be, ready);
    be->vt->event_destroy(be, freed);
    be->vt->event_destroy(be, ready2);
    be->vt->host_free(be, h1);
    be->vt->host_free(be, h2);
    be->vt->free(be, arena);
    sl_backend_destroy(be);
}

/* Never-recorded events are complete; re-recording moves the point waited for; sync drains. */
SL_TEST(ops_queue_event_rules) {
    sl_backend *be = make_dev(0);
    REQUIRE(be);
    sl_err err = {0};
    sl_event *e = NULL;
    REQUIRE_OK(be->vt->event_create(be, &e), &err);
    CHECK(be->vt->event_sync(be, e) == SL_OK);
    CHECK(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, e) == SL_OK);
    CHECK(be->vt->queue_wait(be, SL_QUEUE_COPY, e) == SL_OK);
    float ms;
    CHECK(be->vt->event_elapsed(be, e, e, &ms) != SL_OK); /* never recorded */
    REQUIRE(be->vt->event_record(be, e, SL_QUEUE_COMPUTE) == SL_OK);
    REQUIRE(be->vt->event_elapsed(be, e, e, &ms) == SL_OK);
    CHECK(ms == 0.0f);
    void *d = NULL, *h = NULL;
    REQUIRE_OK(be->vt->alloc(be, 1 << 22, &d, &err), &err);
    REQUIRE_OK(be->vt->host_alloc(be, 1 << 22, &h, &err), &err);
    memset(h, 7, 1 << 22);
    for (int i = 0; i < 8; i++) REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, d, h, 1 << 22) == SL_OK);
    REQUIRE(be->vt->event_record(be, e, SL_QUEUE_COPY) == SL_OK);
    REQUIRE(be->vt->sync(be) == SL_OK);
    CHECK(((unsigned char *)d)[(1 << 22) - 1] == 7);
    REQUIRE(be->vt->event_elapsed(be, e, e, &ms) == SL_OK);
    be->vt->event_destroy(be, e);
    be->vt->free(be, d);
    be->vt->host_free(be, h);
    sl_backend_destroy(be);
}

/* Plain mode: every queue is synchronous, and host memory may be used directly by ops. */
SL_TEST(ops_queue_plain_mode) {
    sl_backend *be = NULL;
    sl_err err = {0};
    sl_cpu_options o = {.threads = 2};
    REQUIRE_OK(sl_backend_cpu_create(&o, &be, &err), &err);
    float src[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dst[8] = {0};
    sl_event *e = NULL;
    REQUIRE_OK(be->vt->event_create(be, &e), &err);
    void *d = NULL;
    REQUIRE_OK(be->vt->alloc(be, sizeof src, &d, &err), &err);
    REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, d, src, sizeof src) == SL_OK);
    REQUIRE(be->vt->event_record(be, e, SL_QUEUE_COPY) == SL_OK);
    REQUIRE(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, e) == SL_OK);
    sl_tensor x = sl_tensor1(SL_DTYPE_F32, 8), y = sl_tensor1(SL_DTYPE_F32, 8);
    x.data = src; /* host memory straight into an op */
    y.data = d;
    sl_ctx c;
    sl_ctx_init(&c, be, NULL, 0);
    sl_op_add(&c, &y, &x, &y);
    REQUIRE(be->vt->download(be, dst, d, sizeof dst) == SL_OK);
    REQUIRE(sl_ctx_status(&c) == SL_OK);
    for (int i = 0; i < 8; i++) CHECK(dst[i] == 2 * src[i]);
    be->vt->event_destroy(be, e);
    be->vt->free(be, d);
    sl_backend_destroy(be);
}

/* The emulation exposes a missing wait the way a GPU would: with uploads slowed down, compute
 * that does not wait on the copy's event reads the slot's old contents (NaN fill). */
SL_TEST(ops_queue_missing_wait_is_visible) {
    setenv("SLUICE_CPU_COPY_DELAY_US", "50000", 1);
    sl_backend *be = make_dev(0);
    unsetenv("SLUICE_CPU_COPY_DELAY_US");
    REQUIRE(be);
    sl_err err = {0};
    enum { N = 256 };
    float *h = NULL;
    void *arena = NULL;
    REQUIRE_OK(be->vt->host_alloc(be, N * sizeof(float), (void **)&h, &err), &err);
    REQUIRE_OK(be->vt->alloc(be, 2 * N * sizeof(float), &arena, &err), &err);
    for (int i = 0; i < N; i++) h[i] = 1.0f;
    sl_ctx c;
    sl_ctx_init(&c, be, arena, 2 * N * sizeof(float));
    sl_tensor slot = sl_new1(&c, SL_DTYPE_F32, N), y = sl_new1(&c, SL_DTYPE_F32, N);
    REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, slot.data, h, N * sizeof(float)) == SL_OK);
    sl_op_scale(&c, &y, &slot, 1.0f, 0.0f); /* no queue_wait: a bug in the caller */
    float out[N];
    sl_download(&c, out, &y);
    REQUIRE(sl_ctx_status(&c) == SL_OK);
    CHECK(isnan(out[0]) && isnan(out[N - 1]));
    REQUIRE(be->vt->sync(be) == SL_OK);
    sl_op_scale(&c, &y, &slot, 1.0f, 0.0f);
    sl_download(&c, out, &y);
    CHECK(out[0] == 1.0f && out[N - 1] == 1.0f);
    be->vt->host_free(be, h);
    be->vt->free(be, arena);
    sl_backend_destroy(be);
}

static double ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* free and host_free wait for queued copies, as cudaFree/cudaFreeHost do: freeing a slot or a
 * staging buffer with an upload still queued must not let that upload touch freed (and possibly
 * reallocated) memory. Under ASan a violation is a heap-use-after-free. */
SL_TEST(ops_queue_free_waits_for_queued_copies) {
    setenv("SLUICE_CPU_COPY_DELAY_US", "20000", 1);
    sl_backend *be = make_dev(0);
    unsetenv("SLUICE_CPU_COPY_DELAY_US");
    REQUIRE(be);
    sl_err err = {0};
    void *d = NULL, *h = NULL;
    REQUIRE_OK(be->vt->alloc(be, 1 << 16, &d, &err), &err);
    REQUIRE_OK(be->vt->host_alloc(be, 1 << 16, &h, &err), &err);
    memset(h, 3, 1 << 16);
    REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, d, h, 1 << 16) == SL_OK);
    double t0 = ms_now();
    be->vt->free(be, d);
    double t1 = ms_now();
    CHECKF(t1 - t0 >= 15.0, "free returned after %.2f ms with a 20 ms copy queued", t1 - t0);
    REQUIRE_OK(be->vt->alloc(be, 1 << 16, &d, &err), &err);
    REQUIRE(be->vt->upload(be, SL_QUEUE_COPY, d, h, 1 << 16) == SL_OK);
    t0 = ms_now();
    be->vt->host_free(be, h);
    t1 = ms_now();
    CHECKF(t1 - t0 >= 15.0, "host_free returned after %.2f ms with a 20 ms copy queued", t1 - t0);
    CHECK(((unsigned char *)d)[(1 << 16) - 1] == 3);
    be->vt->free(be, d);
    sl_backend_destroy(be);
}
