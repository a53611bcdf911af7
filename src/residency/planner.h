/* residency/planner.h — which units stay resident (ARCHITECTURE §4, "The planner").
 *
 * A pure function over numbers: no backend, no allocation visible to the caller. Units are given
 * in pass order (the order a pass acquires them), each with its packed bytes and its compute
 * seconds per pass. A placement marks each unit resident (own VRAM, never re-sent) or streamed
 * (sent over the link every pass into one of `slots` = prefetch + 1 device buffers, each the size
 * of the largest streamed unit).
 *
 * The simulation models the two queues of the engine in steady state: copies run in pass order on
 * the copy queue, copy j waits for the copy queue and for its slot (freed when the compute of
 * streamed unit j − slots ends); compute runs units in order, a streamed unit waiting for its copy.
 * Three passes are simulated back to back (the next pass's first copies overlap the end of the
 * previous one, as the engine prefetches them) and the last one is reported.
 *
 * The search: everything fits → everything resident. Otherwise, from each feasible starting point
 * (the units larger than a size threshold resident, the rest streamed), greedily make resident
 * the unit whose residency lowers the simulated pass time most per byte, while the budget holds
 * and the time does not grow; ties go to the unit farthest from other resident units, so resident
 * units end up spread between streamed ones, where their compute hides the next copies. */
#ifndef SL_RESIDENCY_PLANNER_H
#define SL_RESIDENCY_PLANNER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

/* Assumed link speed when it is unknown (link_gbps <= 0): PCIe 3 x16 in practice. */
#define SL_PLAN_DEFAULT_GBPS 12.0

typedef struct sl_plan_in {
    int n;               /* units, in pass order */
    const size_t *bytes; /* [n] packed bytes per unit */
    const double *cost;  /* [n] compute seconds per pass per unit (NULL: all 0) */
    double link_gbps;    /* host→device GB/s (1e9 bytes/s); <= 0: SL_PLAN_DEFAULT_GBPS */
    size_t budget;       /* device bytes for resident units + slots (SIZE_MAX: no limit) */
    int prefetch;        /* >= 1; slots = prefetch + 1 when anything streams */
    bool force_stream_all;
    /* [n] or NULL: units that must be resident unless force_stream_all (units held across other
     * units' use, such as a globals unit acquired for a whole pass: streamed, one would occupy
     * a slot for the whole pass, which the simulation does not model) */
    const bool *must_resident;
} sl_plan_in;

typedef struct sl_plan_out {
    int slots;             /* 0 when nothing streams */
    size_t slot_bytes;     /* bytes of one slot (largest streamed unit) */
    size_t resident_bytes; /* sum over resident units */
    size_t streamed_bytes; /* sent over the link per pass */
    size_t device_bytes;   /* resident_bytes + slots · slot_bytes (<= budget) */
    int n_resident, n_streamed;
    double pass_s;    /* predicted steady-state seconds per pass */
    double compute_s; /* sum of costs (lower bound) */
    double link_s;    /* streamed_bytes / bandwidth (lower bound) */
} sl_plan_out;

/* Plan. resident[n] receives the placement (true: resident). SL_ERR_OOM_DEVICE when no placement
 * fits the budget; the message names the bytes needed and available and which setting would fit
 * (--max-vram, --streaming-prefetch 1). Messages name no component: the caller prefixes it. */
sl_status sl_plan_make(const sl_plan_in *in, bool *resident, sl_plan_out *out, sl_err *err);

/* Predicted steady-state seconds per pass of a given placement with `slots` slots (slots >= 1
 * when any unit streams). Fills out (may be NULL) with the placement's numbers. */
double sl_plan_simulate(const sl_plan_in *in, const bool *resident, int slots, sl_plan_out *out);

#endif
