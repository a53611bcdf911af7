/* residency/link.c — measuring the host→device link once (sl_res_measure_link). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "residency/residency.h"

enum { LINK_REPS = 3 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Plain host backends: the "link" is memcpy between two host buffers. */
static sl_status measure_memcpy(sl_backend *be, size_t n, double *gbps, sl_err *err) {
    void *a = NULL, *b = NULL;
    sl_status st = be->vt->host_alloc(be, n, &a, err);
    if (st == SL_OK) st = be->vt->host_alloc(be, n, &b, err);
    if (st == SL_OK) {
        memset(a, 1, n);
        memset(b, 0, n); /* touch both so page faults are not timed */
        double best = 0;
        for (int i = 0; i < LINK_REPS; i++) {
            double t0 = now_s();
            memcpy(b, a, n);
            double dt = now_s() - t0;
            if (dt > 0 && (double)n / dt > best) best = (double)n / dt;
        }
        *gbps = best / 1e9;
    }
    if (a) be->vt->host_free(be, a);
    if (b) be->vt->host_free(be, b);
    return st;
}

sl_status sl_res_measure_link(sl_backend *be, size_t bytes, double *gbps, sl_err *err) {
    SL_ASSERT(be && gbps);
    *gbps = 0;
    size_t n = bytes ? bytes : (size_t)256 << 20;
    if (!be->info.is_device) return measure_memcpy(be, n, gbps, err);
    size_t fr = 0, tot = 0;
    be->vt->mem_info(be, &fr, &tot);
    if (n > fr / 2) n = SL_ALIGN_UP(fr / 2 > 4096 ? fr / 2 - 4095 : 0, (size_t)256);
    if (n < ((size_t)1 << 20))
        return sl_err_set(
            err, SL_ERR_OOM_DEVICE,
            "measuring the link: %zu bytes of device memory free, need at least 2 MiB", fr);
    void *h = NULL, *d = NULL;
    sl_event *e0 = NULL, *e1 = NULL;
    sl_status st = be->vt->host_alloc(be, n, &h, err);
    if (st == SL_OK) st = be->vt->alloc(be, n, &d, err);
    if (st == SL_OK && ((st = be->vt->event_create(be, &e0)) != SL_OK ||
                        (st = be->vt->event_create(be, &e1)) != SL_OK))
        sl_err_set(err, st, "measuring the link: %s", be->last_error);
    if (st == SL_OK) {
        memset(h, 1, n);
        /* one untimed copy warms the path (page tables, driver state) */
        st = be->vt->upload(be, SL_QUEUE_COPY, d, h, n);
        double best = 0;
        for (int i = 0; st == SL_OK && i < LINK_REPS; i++) {
            double t0 = now_s();
            if ((st = be->vt->event_record(be, e0, SL_QUEUE_COPY)) != SL_OK ||
                (st = be->vt->upload(be, SL_QUEUE_COPY, d, h, n)) != SL_OK ||
                (st = be->vt->event_record(be, e1, SL_QUEUE_COPY)) != SL_OK ||
                (st = be->vt->event_sync(be, e1)) != SL_OK)
                break;
            double s = now_s() - t0;
            float ms = 0;
            if (be->info.can_time && be->vt->event_elapsed(be, e0, e1, &ms) == SL_OK && ms > 0)
                s = ms / 1e3;
            if (s > 0 && (double)n / s > best) best = (double)n / s;
        }
        if (st != SL_OK) sl_err_set(err, st, "measuring the link: %s", be->last_error);
        *gbps = best / 1e9;
    }
    be->vt->sync(be);
    if (e0) be->vt->event_destroy(be, e0);
    if (e1) be->vt->event_destroy(be, e1);
    if (d) be->vt->free(be, d);
    if (h) be->vt->host_free(be, h);
    return st;
}
