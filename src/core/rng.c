#include "core/rng.h"

#include <math.h>

void sl_philox(uint64_t seed, uint64_t stream, uint64_t ctr, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = (uint32_t)stream,
             c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static inline float u01(uint32_t x) { return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

void sl_rng_normal(uint64_t seed, uint64_t stream, uint64_t first, float *out, int64_t n) {
    /* each counter yields 4 words = 2 Box–Muller pairs = 4 normals */
    for (int64_t k = 0; k < n;) {
        uint64_t idx = first + (uint64_t)k;
        uint64_t ctr = idx / 4;
        uint32_t w[4];
        sl_philox(seed, stream, ctr, w);
        float z[4];
        for (int j = 0; j < 2; j++) {
            float u1 = u01(w[2 * j]), u2 = u01(w[2 * j + 1]);
            float r = sqrtf(-2.0f * logf(u1));
            z[2 * j] = r * cosf(6.2831853071795864f * u2);
            z[2 * j + 1] = r * sinf(6.2831853071795864f * u2);
        }
        for (int j = (int)(idx % 4); j < 4 && k < n; j++, k++) out[k] = z[j];
    }
}

void sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t first, float lo, float hi, float *out,
                    int64_t n) {
    for (int64_t k = 0; k < n;) {
        uint64_t idx = first + (uint64_t)k;
        uint32_t w[4];
        sl_philox(seed, stream, idx / 4, w);
        for (int j = (int)(idx % 4); j < 4 && k < n; j++, k++) out[k] = lo + (hi - lo) * u01(w[j]);
    }
}
