/* core/rng.h — deterministic random numbers for latents and synthetic weights.
 *
 * Counter-based (Philox4x32-10): element i of stream (seed, stream) is a pure function of
 * (seed, stream, i), so any slice can be generated independently, in parallel, on any backend,
 * and a full-size synthetic model can be written in chunks with the same values. */
#ifndef SL_CORE_RNG_H
#define SL_CORE_RNG_H

#include <stdint.h>

/* Four 32-bit random words for counter `ctr` under key (seed, stream). */
void sl_philox(uint64_t seed, uint64_t stream, uint64_t ctr, uint32_t out[4]);

/* out[k] = N(0,1) sample number (first + k) of the stream. Box–Muller on Philox output. */
void sl_rng_normal(uint64_t seed, uint64_t stream, uint64_t first, float *out, int64_t n);
/* out[k] = uniform in [lo, hi) sample number (first + k) of the stream. */
void sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t first, float lo, float hi, float *out,
                    int64_t n);

#endif
