/* tests/test_res.h — helpers shared by the residency tests (tests/test_res*.c).
 *
 * rf ("residency fake") is an adversarial test backend. Its two queues are lists of deferred
 * commands that run only when the host must see a result (download, sync, event_sync) or, with
 * RF_RANDOM, in random bursts after each submission. Which queue runs first is the policy:
 *   RF_COPY_FIRST     the copy queue runs as far as its waits allow before compute moves: an
 *                     upload that does not wait for its slot's `free` event overwrites weights
 *                     that queued compute has not read yet;
 *   RF_COMPUTE_FIRST  compute runs as far as it can first: an acquire that does not wait on the
 *                     `ready` event reads a slot before its upload;
 *   RF_RANDOM         seeded random interleavings.
 * Either bug changes the output, so bit-identical results under every policy prove the ordering.
 * Device memory is host memory with a budget; every pointer an op or an upload touches is checked
 * against the live allocations (a weight left pointing at the host arena fails). Time is virtual:
 * an upload takes bytes / link_bytes_per_ms, a matmul 2·M·N·K / flops_per_ms; waits carry event
 * times, so event_elapsed (can_time) gives deterministic copy/compute/stall numbers.
 * Ops implemented: matmul (x, y f32; w f32/bf16/f16), binary add/mul, fill, copy f32. */
#ifndef SL_TESTS_TEST_RES_H
#define SL_TESTS_TEST_RES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

typedef enum rf_policy { RF_COPY_FIRST, RF_COMPUTE_FIRST, RF_RANDOM } rf_policy;

typedef struct rf_opts {
    bool plain;        /* host-visible, not a device: weights used in place */
    size_t budget;     /* device bytes (0: unlimited) */
    size_t host_limit; /* host_alloc bytes (0: unlimited) */
    rf_policy policy;
    uint64_t seed;
    double link_bytes_per_ms; /* virtual link speed (default 1e6 = 1 GB/s) */
    double flops_per_ms;      /* virtual compute speed (default 1e7) */
} rf_opts;

sl_backend *rf_create(const rf_opts *o);
size_t rf_device_used(sl_backend *be);
size_t rf_device_peak(sl_backend *be);
size_t rf_host_used(sl_backend *be);
/* Bytes uploaded on the copy queue so far. */
size_t rf_copy_bytes(sl_backend *be);
/* Overwrite every live host_alloc buffer with 0xFF bytes (after draining the queues). */
void rf_poison_host(sl_backend *be);

#endif
