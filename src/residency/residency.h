/* residency/residency.h — where weights live (ARCHITECTURE §3–§4).
 *
 * One sl_res per component (text encoder, diffusion model, VAE). A model declares its units at
 * load (one per block/layer, plus "globals") and registers each weight it needs, giving the
 * sl_tensor field that will receive the weight's data pointer. It never allocates or frees
 * weight memory. At run time it brackets the use of a unit:
 *
 *     sl_res_acquire(res, unit, ctx);   // compute queue waits for the unit's upload (event, no
 *                                       // host wait); the unit's tensors now point at its bytes;
 *                                       // uploads of the next streamed units are queued
 *     ... ops on the unit's tensors ...
 *     sl_res_release(res, unit, ctx);   // the slot may be reused once queued compute is done
 *
 * Units must be acquired in the same order every pass (the order of the first pass is recorded
 * and drives prefetch). Globals may be acquired once for the whole pass. sl_res_acquire and
 * sl_res_release with res == NULL do nothing (dry runs on the measuring backend).
 *
 * Lifecycle driven by the pipeline:
 *   create → add units/tensors → load_host (host home: pinned arena, or the mapped file itself
 *   on host-visible backends) → plan → load_device (upload resident units) → passes →
 *   park (free VRAM, no copy back) → load_device … → free.
 */
#ifndef SL_RESIDENCY_RESIDENCY_H
#define SL_RESIDENCY_RESIDENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/ops.h"
#include "io/wdir.h"

typedef struct sl_res sl_res;

typedef enum sl_unit_place { SL_UNIT_RESIDENT, SL_UNIT_STREAMED } sl_unit_place;

/* `name` names the component in messages and logs ("diffusion model"). */
sl_status sl_res_create(sl_backend *be, const char *name, sl_res **out, sl_err *err);
void sl_res_free(sl_res *r); /* NULL is fine; frees device and host memory it owns */

/* ---- declaration (at model load) ---- */
/* Returns the new unit's index (0, 1, 2, … in call order). */
int sl_res_add_unit(sl_res *r, const char *unit_name);
/* Register weight `e` (or only its rows [row0, row0 + nrows) when nrows > 0; row slicing keeps
 * whole rows so it works for block types) as part of `unit`. *dst receives dtype and shape now
 * and its data pointer whenever the unit is acquired; dst must stay at a stable address for the
 * life of r (a field of the model struct). */
void sl_res_add_tensor(sl_res *r, int unit, const sl_wentry *e, int64_t row0, int64_t nrows,
                       sl_tensor *dst);
/* Estimated compute seconds of one use of the unit in a pass (planner input; refined by
 * measurement after the first pass). */
void sl_res_set_unit_cost(sl_res *r, int unit, double seconds);
/* Declare that `unit` stays acquired while other units are acquired (a globals unit held for a
 * whole pass). Such units are planned resident: streamed, one would keep a slot for the whole
 * pass. The engine also notices it on the first pass; declaring it plans right from the start. */
void sl_res_set_unit_spans(sl_res *r, int unit);

int sl_res_unit_count(const sl_res *r);
size_t sl_res_unit_bytes(const sl_res *r, int unit); /* packed bytes (256-byte aligned tensors) */
size_t sl_res_total_bytes(const sl_res *r);

const char *sl_res_unit_name(const sl_res *r, int unit);
const char *sl_res_name(const sl_res *r);

/* ---- host home ---- */
/* Tell the engine where file index `file` of the registered entries (sl_wentry.file) lives, so
 * that load_host reads it with pread straight into the pinned arena (and drops it from the page
 * cache) instead of copying from the mapping. Optional: without it the mapped bytes are copied.
 * `path` is copied. */
sl_status sl_res_set_file(sl_res *r, int file, const char *path, sl_err *err);
/* sl_res_set_file for every file of a weight directory (the usual call, by the pipeline). */
sl_status sl_res_set_wdir(sl_res *r, const sl_wdir *d, sl_err *err);
/* Pack every unit's tensors contiguously into the host home. On host-visible backends without
 * device emulation the mapped file is used in place (no copy). Device backends get one pinned
 * arena (be->vt->host_alloc) of sl_res_total_bytes(); SL_ERR_OOM_HOST names the bytes needed. */
sl_status sl_res_load_host(sl_res *r, sl_err *err);
/* Disk tier: hold at most `bytes` of weights in pinned host RAM (0: no limit; call before
 * load_host). When the model is larger, load_host allocates that much (an arena plus two staging
 * buffers of up to 64 MiB) and load_device, once the plan is known, keeps streamed units in the
 * arena first (they cross the link every pass), then resident ones; the others are read from
 * their files (sl_res_set_file/_wdir, else the mapping) into a staging buffer and uploaded from
 * there each time they are needed. Slower than RAM (disk speed; the host thread reads while the
 * device computes), but a model larger than RAM runs. */
void sl_res_set_host_limit(sl_res *r, size_t bytes);
/* Host bytes the host home holds (0 when the mapped file is used in place). */
size_t sl_res_host_bytes(const sl_res *r);

/* ---- planning and device placement ---- */
typedef struct sl_res_plan_opts {
    size_t budget;         /* device bytes this component's weights may use (resident units
                              + streaming slots); SIZE_MAX: everything may be resident */
    int prefetch;          /* streaming prefetch depth (>= 1); slots = prefetch + 1 */
    double link_gbps;      /* measured host→device bandwidth, GB/s (0: unknown) */
    bool force_stream_all; /* testing/benchmarks: plan nothing resident */
    bool no_replan;        /* keep this plan after the first pass (see below) */
} sl_res_plan_opts;

/* Choose the placement (residency/planner.h) from the units' bytes and costs in pass order (the
 * recorded order once a pass has run, declaration order before). Parks the component first when
 * it is loaded. SL_ERR_OOM_DEVICE when no placement fits, naming needed vs available bytes. On
 * host-visible backends every unit is resident in the mapped file and the plan needs 0 bytes.
 * Re-planning: when something streams, the end of the first pass plans again with the measured
 * unit costs, the recorded order and the units seen held across others; if the placement changes
 * and the predicted pass time drops by 2% or more, the component is parked and reloaded there and
 * then (same budget; one-time uploads). opts.no_replan keeps the first plan. */
sl_status sl_res_plan(sl_res *r, const sl_res_plan_opts *opt, sl_err *err);
/* The weights budget of a stage as the pipeline computes it: free device memory now − `reserve`
 * (--streaming-min-vram) − `act_peak` (the stage's activation arena), capped by `max_vram` when
 * it is non-zero (--max-vram); 0 when nothing is left. Memory this component holds already
 * (when loaded) counts as free. */
size_t sl_res_weight_budget(const sl_res *r, size_t reserve, size_t act_peak, size_t max_vram);
sl_unit_place sl_res_unit_place(const sl_res *r, int unit);
/* Device bytes the current plan needs (resident units + slots). */
size_t sl_res_plan_bytes(const sl_res *r);
/* Upload resident units and allocate slots (no-op when already loaded). The resident uploads and
 * the first streamed units of the next pass are queued on the copy queue; the first acquire
 * orders compute after them by an event. */
sl_status sl_res_load_device(sl_res *r, sl_err *err);
/* Free all device memory of this component (no copy back). Waits for queued work first. */
void sl_res_park(sl_res *r);
bool sl_res_is_loaded(const sl_res *r);

/* ---- passes ---- */
void sl_res_begin_pass(sl_res *r, sl_ctx *ctx);
void sl_res_acquire(sl_res *r, int unit, sl_ctx *ctx);
void sl_res_release(sl_res *r, int unit, sl_ctx *ctx);
void sl_res_end_pass(sl_res *r, sl_ctx *ctx);

/* Per-pass counters (the last completed pass). Times are 0 on backends that cannot time.
 *   bytes_uploaded  weights sent over the link for the pass (streamed units it acquired)
 *   copy_ms         copy-queue time of those uploads
 *   stall_ms        compute-queue time spent waiting for uploads (the cost of streaming)
 *   compute_ms      pass_ms − stall_ms
 *   pass_ms         compute queue from sl_res_begin_pass to sl_res_end_pass */
typedef struct sl_res_stats {
    int units_resident, units_streamed;
    size_t bytes_uploaded;
    double copy_ms, compute_ms, stall_ms, pass_ms;
} sl_res_stats;
/* A pass's times are read when its events are complete: normally at the end of the next pass;
 * this call waits for (host-synchronises with) the passes not read yet. */
void sl_res_last_stats(sl_res *r, sl_res_stats *out);
/* The --profile line of the last pass into buf: "res[diffusion model] pass: 12 resident / 22
 * streamed, 4.91 GB up, copy 92.1 ms, compute 160.2 ms, stall 3.1 ms, 53.3 GB/s, pass 163.3 ms".
 * Returns what snprintf returns. */
int sl_res_format_stats(sl_res *r, char *buf, size_t n);

/* The current plan in numbers. */
typedef struct sl_res_plan_info {
    int n_resident, n_streamed;
    int slots;             /* 0 when nothing streams */
    size_t slot_bytes;     /* one slot (the largest streamed unit) */
    size_t streamed_bytes; /* link bytes per pass */
    size_t device_bytes;   /* = sl_res_plan_bytes */
    double predicted_ms;   /* the planner's steady-state pass time */
} sl_res_plan_info;
void sl_res_plan_info_get(const sl_res *r, sl_res_plan_info *out);
/* The compute seconds per pass the planner uses for a unit: measured on the first timed pass when
 * available (*measured true), else the model's estimate. A later sl_res_plan uses the measured
 * values (the pipeline may re-plan after the first step; that parks the component). */
double sl_res_unit_cost(const sl_res *r, int unit, bool *measured);

/* Host→device bandwidth in GB/s (1e9 bytes/s) of the backend's copy queue from pinned memory:
 * a few uploads of `bytes` (0: 256 MiB, capped by free device memory) timed by events (on the
 * plain CPU backend: memcpy between two host buffers). Takes about a tenth of a second. */
sl_status sl_res_measure_link(sl_backend *be, size_t bytes, double *gbps, sl_err *err);

#endif
