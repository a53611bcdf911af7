/* bench/bench_impl.h — helpers shared by the files of bench/ (not part of bench.h's API). */
#ifndef SL_BENCH_BENCH_IMPL_H
#define SL_BENCH_BENCH_IMPL_H

#include <stddef.h>

#include "backend/backend.h"
#include "bench/bench.h"

/* "auto", "cpu", "cuda" (sl_backend_create) or "cpu-device[:BYTES]" (BYTES may end in K, M, G:
 * binary units; default 64 GiB, large enough to never be the limit, small enough that mem_info
 * reports the device's own accounting). */
sl_status sl_bench_open_backend(const char *spec, int threads, sl_backend **out, sl_err *err);
/* Local time as ISO 8601 with its UTC offset ("2026-11-27T10:16:03+0000"). */
void sl_bench_now(char *buf, size_t n);
/* A row with every optional number at its "absent" value. */
void sl_bench_row_init(sl_bench_row *row, const char *system, const char *kind);
/* Append a zeroed row (grows out->rows); NULL when out of memory. */
sl_bench_row *sl_bench_add_row(sl_bench_result *out);

#endif
