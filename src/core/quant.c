/* core/quant.c — row conversions between f32 and every weight dtype (specs/formats.md §4–§6).
 *
 * Dequantisers follow formats.md §4 with its f32 evaluation order (scale products first, then
 * the code, then the min), so that results equal ggml's CPU reference bit for bit; this file
 * must be compiled without FMA contraction (GCC's -std=c11 default is -ffp-contract=off, and
 * plain x86-64 has no FMA instructions to contract to).
 *
 * Speed: sl_dequant_row runs inside the CPU matmul on every weight tile, so the inner loops read
 * bytes directly, convert each block's f16 factors once, and leave per-element work to simple
 * loops the compiler can vectorise. f16 and fp8 decode through lookup tables built once.
 *
 * Quantisers are ggml's reference quantisers (formats.md §5) for Q8_0, Q4_0 and Q4_K, and
 * ggml-style quantisers for Q4_1, Q5_0, Q5_1, Q5_K and Q6_K (not verified byte for byte against
 * ggml; they round-trip within the bounds tests/test_quant.c states). */
#include "core/quant.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/status.h"

/* ---- small helpers ---- */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline float f16f(const uint8_t *p) { return sl_f16_to_f32(rd16(p)); }

/* ggml's nearest_int: round to nearest, ties to even, for |x| < 2^22. Arguments outside that
 * range (and NaN) are clamped first so that the conversion is always defined. */
static inline int rne(float x) {
    if (!(x >= -4194303.0f)) x = -4194303.0f; /* also NaN */
    if (x > 4194303.0f) x = 4194303.0f;
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* float -> int with C truncation, defined for every input (clamps to +-2^30, NaN -> 0). */
static inline int trunc_i(float x) {
    if (!(x == x)) return 0;
    if (x > 1073741824.0f) return 1 << 30;
    if (x < -1073741824.0f) return -(1 << 30);
    return (int)x;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- lookup tables for the scalar float types ----
 * A 65536-entry f16 table (256 KB) decodes at ~0.25 ns/element, about 3x the branch-free bit
 * manipulation (which GCC does not vectorise at -O2). Built once, on first use. */

static float g_f16[65536], g_e4m3[256], g_e5m2[256];
static pthread_once_t g_tab_once = PTHREAD_ONCE_INIT;
static void tables_init(void) {
    for (int h = 0; h < 65536; h++) g_f16[h] = sl_f16_to_f32((uint16_t)h);
    for (int b = 0; b < 256; b++) {
        g_e4m3[b] = sl_e4m3_to_f32((uint8_t)b);
        g_e5m2[b] = sl_e5m2_to_f32((uint8_t)b);
    }
}

/* ---- dequantisation, one block type per function; n is a whole number of blocks ---- */

static void dq_f16(const uint8_t *s, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = g_f16[rd16(s + 2 * i)];
}

static void dq_bf16(const uint8_t *s, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sl_bits_f32((uint32_t)rd16(s + 2 * i) << 16);
}

static void dq_table8(const uint8_t *s, float *y, int64_t n, const float *tab) {
    for (int64_t i = 0; i < n; i++) y[i] = tab[s[i]];
}

static void dq_q4_0(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 18, y += 32) {
        const float d = f16f(s);
        const uint8_t *qs = s + 2;
        for (int i = 0; i < 16; i++) {
            y[i] = (float)((qs[i] & 15) - 8) * d;
            y[i + 16] = (float)((qs[i] >> 4) - 8) * d;
        }
    }
}

static void dq_q4_1(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 20, y += 32) {
        const float d = f16f(s), m = f16f(s + 2);
        const uint8_t *qs = s + 4;
        for (int i = 0; i < 16; i++) {
            y[i] = (float)(qs[i] & 15) * d + m;
            y[i + 16] = (float)(qs[i] >> 4) * d + m;
        }
    }
}

static void dq_q5_0(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 22, y += 32) {
        const float d = f16f(s);
        const uint32_t qh = (uint32_t)s[2] | (uint32_t)s[3] << 8 | (uint32_t)s[4] << 16 |
                            (uint32_t)s[5] << 24;
        const uint8_t *qs = s + 6;
        for (int i = 0; i < 16; i++) {
            int q0 = (qs[i] & 15) | (int)((qh >> i) & 1) << 4;
            int q1 = (qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
            y[i] = (float)(q0 - 16) * d;
            y[i + 16] = (float)(q1 - 16) * d;
        }
    }
}

static void dq_q5_1(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 24, y += 32) {
        const float d = f16f(s), m = f16f(s + 2);
        const uint32_t qh = (uint32_t)s[4] | (uint32_t)s[5] << 8 | (uint32_t)s[6] << 16 |
                            (uint32_t)s[7] << 24;
        const uint8_t *qs = s + 8;
        for (int i = 0; i < 16; i++) {
            int q0 = (qs[i] & 15) | (int)((qh >> i) & 1) << 4;
            int q1 = (qs[i] >> 4) | (int)((qh >> (i + 16)) & 1) << 4;
            y[i] = (float)q0 * d + m;
            y[i + 16] = (float)q1 * d + m;
        }
    }
}

static void dq_q8_0(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 34, y += 32) {
        const float d = f16f(s);
        const int8_t *qs = (const int8_t *)(s + 2);
        for (int i = 0; i < 32; i++) y[i] = (float)qs[i] * d;
    }
}

/* Q2_K (formats.md §4.9): per 128-element half h and shift t, byte qs[32h + r] holds element
 * 128h + 32t + r in bits 2t..2t+1; sub-block s = e/16 has scale lo(scales[s]), min hi(...). */
static void dq_q2_k(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 84, y += 256) {
        const uint8_t *sc = s, *qs = s + 16;
        const float d = f16f(s + 80), dmin = f16f(s + 82);
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++)
                for (int half = 0; half < 2; half++) {
                    const int sb = 8 * h + 2 * t + half;
                    const float dl = d * (float)(sc[sb] & 15), ml = dmin * (float)(sc[sb] >> 4);
                    const uint8_t *q = qs + 32 * h + 16 * half;
                    float *o = y + 128 * h + 32 * t + 16 * half;
                    for (int r = 0; r < 16; r++) o[r] = dl * (float)((q[r] >> (2 * t)) & 3) - ml;
                }
    }
}

/* Q3_K (§4.10): 6-bit signed scales S_j, low 2 bits as Q2_K, hmask[e%32] bit e/32 set means
 * "no -4". */
static void dq_q3_k(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 110, y += 256) {
        const uint8_t *hm = s, *qs = s + 32, *B = s + 96;
        const float d = f16f(s + 108);
        float dl[16];
        for (int j = 0; j < 16; j++) {
            int lo4 = j < 8 ? (B[j] & 15) : (B[j - 8] >> 4);
            int hi2 = (B[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
            dl[j] = d * (float)((lo4 | hi2 << 4) - 32);
        }
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++) {
                const int k = 4 * h + t; /* = e / 32 */
                for (int half = 0; half < 2; half++) {
                    const float f = dl[2 * k + half];
                    const uint8_t *q = qs + 32 * h + 16 * half, *m = hm + 16 * half;
                    float *o = y + 32 * k + 16 * half;
                    for (int r = 0; r < 16; r++) {
                        int v = ((q[r] >> (2 * t)) & 3) - (((m[r] >> k) & 1) ? 0 : 4);
                        o[r] = f * (float)v;
                    }
                }
            }
    }
}

/* get_scale_min_k4 of formats.md §4.11 for all eight sub-blocks. */
static inline void k4_scales(const uint8_t *B, int sc[8], int mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = B[j] & 63;
        mn[j] = B[j + 4] & 63;
        sc[j + 4] = (B[j + 8] & 15) | ((B[j] >> 6) << 4);
        mn[j + 4] = (B[j + 8] >> 4) | ((B[j + 4] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 144, y += 256) {
        const float d = f16f(s), dmin = f16f(s + 2);
        int sc[8], mn[8];
        k4_scales(s + 4, sc, mn);
        const uint8_t *qs = s + 16;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            float *o = y + 64 * c;
            for (int i = 0; i < 32; i++) o[i] = d1 * (float)(q[i] & 15) - m1;
            for (int i = 0; i < 32; i++) o[32 + i] = d2 * (float)(q[i] >> 4) - m2;
        }
    }
}

static void dq_q5_k(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 176, y += 256) {
        const float d = f16f(s), dmin = f16f(s + 2);
        int sc[8], mn[8];
        k4_scales(s + 4, sc, mn);
        const uint8_t *qh = s + 16, *qs = s + 48;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            float *o = y + 64 * c;
            for (int i = 0; i < 32; i++)
                o[i] = d1 * (float)((q[i] & 15) | ((qh[i] >> (2 * c)) & 1) << 4) - m1;
            for (int i = 0; i < 32; i++)
                o[32 + i] = d2 * (float)((q[i] >> 4) | ((qh[i] >> (2 * c + 1)) & 1) << 4) - m2;
        }
    }
}

/* Q6_K (§4.13): element 128h + 32g + l takes its low nibble from ql[64h + 32(g&1) + l] (low
 * nibble for g < 2), its top two bits from qh[32h + l] bits 2g; int8 scales per 16. */
static void dq_q6_k(const uint8_t *s, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, s += 210, y += 256) {
        const uint8_t *ql = s, *qh = s + 128;
        const int8_t *sc = (const int8_t *)(s + 192);
        const float d = f16f(s + 208);
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 4; g++)
                for (int half = 0; half < 2; half++) {
                    const int e0 = 128 * h + 32 * g + 16 * half;
                    const float f = d * (float)sc[e0 / 16];
                    const uint8_t *l4 = ql + 64 * h + 32 * (g & 1) + 16 * half;
                    const uint8_t *h2 = qh + 32 * h + 16 * half;
                    const int sh = g < 2 ? 0 : 4;
                    float *o = y + e0;
                    for (int l = 0; l < 16; l++) {
                        int q = (((l4[l] >> sh) & 15) | ((h2[l] >> (2 * g)) & 3) << 4) - 32;
                        o[l] = f * (float)q;
                    }
                }
    }
}

void sl_dequant_row(sl_dtype t, const void *src, float *dst, int64_t n) {
    const sl_dtype_info *info = sl_dtype_get(t);
    SL_ASSERTF(info->is_float, "sl_dequant_row: %s is not a float type", info->name);
    SL_ASSERTF(n >= 0 && n % info->blck == 0, "sl_dequant_row: %lld elements of %s are not whole blocks",
               (long long)n, info->name);
    const uint8_t *s = src;
    const int64_t nb = n / info->blck;
    switch (t) {
    case SL_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SL_DTYPE_F16:
        pthread_once(&g_tab_once, tables_init);
        dq_f16(s, dst, n);
        break;
    case SL_DTYPE_BF16: dq_bf16(s, dst, n); break;
    case SL_DTYPE_F8_E4M3:
        pthread_once(&g_tab_once, tables_init);
        dq_table8(s, dst, n, g_e4m3);
        break;
    case SL_DTYPE_F8_E5M2:
        pthread_once(&g_tab_once, tables_init);
        dq_table8(s, dst, n, g_e5m2);
        break;
    case SL_DTYPE_Q4_0: dq_q4_0(s, dst, nb); break;
    case SL_DTYPE_Q4_1: dq_q4_1(s, dst, nb); break;
    case SL_DTYPE_Q5_0: dq_q5_0(s, dst, nb); break;
    case SL_DTYPE_Q5_1: dq_q5_1(s, dst, nb); break;
    case SL_DTYPE_Q8_0: dq_q8_0(s, dst, nb); break;
    case SL_DTYPE_Q2_K: dq_q2_k(s, dst, nb); break;
    case SL_DTYPE_Q3_K: dq_q3_k(s, dst, nb); break;
    case SL_DTYPE_Q4_K: dq_q4_k(s, dst, nb); break;
    case SL_DTYPE_Q5_K: dq_q5_k(s, dst, nb); break;
    case SL_DTYPE_Q6_K: dq_q6_k(s, dst, nb); break;
    default: SL_ASSERTF(0, "sl_dequant_row: no dequantiser for %s", info->name);
    }
}

/* ---- quantisation ---- */

/* Q8_0, formats.md §5.1. */
static void q_q8_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(y, sl_f32_to_f16(d));
        for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)clampi(trunc_i(roundf(x[j] * id)), -128, 127);
    }
}

/* The element of largest magnitude with its sign (first one wins), as Q4_0/Q5_0 need. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

/* Q4_0, formats.md §5.2. */
static void q_q4_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 18) {
        const float d = signed_absmax(x, 32) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(y, sl_f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            int a = clampi(trunc_i(x[j] * id + 8.5f), 0, 15);
            int c = clampi(trunc_i(x[j + 16] * id + 8.5f), 0, 15);
            y[2 + j] = (uint8_t)(a | c << 4);
        }
    }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Q4_1 / Q5_1: d = (max - min) / nmax, m = min, codes trunc((x - min) / d + 0.5). */
static void q_q4_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 20) {
        float lo, hi;
        minmax(x, 32, &lo, &hi);
        const float d = (hi - lo) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(y, sl_f32_to_f16(d));
        wr16(y + 2, sl_f32_to_f16(lo));
        for (int j = 0; j < 16; j++) {
            int a = clampi(trunc_i((x[j] - lo) * id + 0.5f), 0, 15);
            int c = clampi(trunc_i((x[j + 16] - lo) * id + 0.5f), 0, 15);
            y[4 + j] = (uint8_t)(a | c << 4);
        }
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void q_q5_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 22) {
        const float d = signed_absmax(x, 32) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(y, sl_f32_to_f16(d));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = clampi(trunc_i(x[j] * id + 16.5f), 0, 31);
            int c = clampi(trunc_i(x[j + 16] * id + 16.5f), 0, 31);
            y[6 + j] = (uint8_t)((a & 15) | (c & 15) << 4);
            qh |= (uint32_t)(a >> 4) << j | (uint32_t)(c >> 4) << (j + 16);
        }
        put_u32(y + 2, qh);
    }
}

static void q_q5_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 24) {
        float lo, hi;
        minmax(x, 32, &lo, &hi);
        const float d = (hi - lo) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(y, sl_f32_to_f16(d));
        wr16(y + 2, sl_f32_to_f16(lo));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = clampi(trunc_i((x[j] - lo) * id + 0.5f), 0, 31);
            int c = clampi(trunc_i((x[j + 16] - lo) * id + 0.5f), 0, 31);
            y[8 + j] = (uint8_t)((a & 15) | (c & 15) << 4);
            qh |= (uint32_t)(a >> 4) << j | (uint32_t)(c >> 4) << (j + 16);
        }
        put_u32(y + 4, qh);
    }
}

/* The weighted scale+min fit of formats.md §5.3 (ggml's make_qkx2_quants, squared error) on
 * n <= 32 values. Writes codes L, returns the scale and *min_out = -offset (>= 0). */
static float fit_qkx2(int n, int nmax, const float *v, const float *w, uint8_t *L, float *min_out,
                      float rmin, float rdelta, int nstep) {
    float lo = v[0], hi = v[0], sw = w[0], sx = w[0] * v[0];
    for (int i = 1; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
        sw += w[i];
        sx += w[i] * v[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *min_out = -lo;
        return 0.0f;
    }
    float is = (float)nmax / (hi - lo), scale = 1.0f / is, best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(rne(is * (v[i] - lo)), 0, nmax);
        float diff = scale * (float)L[i] + lo - v[i];
        best += w[i] * (diff * diff);
    }
    uint8_t T[32];
    for (int k = 0; k <= nstep; k++) {
        is = (rmin + rdelta * (float)k + (float)nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            T[i] = (uint8_t)clampi(rne(is * (v[i] - lo)), 0, nmax);
            float wl = w[i] * (float)T[i];
            sl += wl;
            sl2 += wl * (float)T[i];
            sxl += wl * v[i];
        }
        float D = sw * sl2 - sl * sl;
        if (D > 0) {
            float s = (sw * sxl - sx * sl) / D, m = (sl2 * sx - sl * sxl) / D;
            if (m > 0) {
                m = 0;
                s = sxl / sl2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = s * (float)T[i] + m - v[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, T, (size_t)n);
                best = err;
                scale = s;
                lo = m;
            }
        }
    }
    *min_out = -lo;
    return scale;
}

/* Q4_K (formats.md §5.3) and Q5_K (the same with nmax 31, rmin -0.5, 15 steps, codes split into
 * qs and qh as §4.12 lays them out). */
static void q_k4(const float *x, uint8_t *y, int64_t nb, int nmax, float rmin, int nstep) {
    const bool five = nmax == 31;
    const int bsize = five ? 176 : 144;
    for (int64_t b = 0; b < nb; b++, x += 256, y += bsize) {
        uint8_t L[256];
        float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
            const float av = sqrtf(sum_x2 / 32.0f);
            for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
            scales[j] = fit_qkx2(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_s = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_m = max_min > 0 ? 63.0f / max_min : 0.0f;
        uint8_t ls[8], lm[8], *B = y + 4;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)rne(inv_s * scales[j]); /* wraps like ggml's uint8_t conversion */
            lm[j] = (uint8_t)rne(inv_m * mins[j]);
            if (ls[j] > 63) ls[j] = 63;
            if (lm[j] > 63) lm[j] = 63;
        }
        for (int k = 0; k < 4; k++) {
            B[k] = (uint8_t)(ls[k] | (ls[k + 4] >> 4) << 6);
            B[4 + k] = (uint8_t)(lm[k] | (lm[k + 4] >> 4) << 6);
            B[8 + k] = (uint8_t)((ls[k + 4] & 15) | (lm[k + 4] & 15) << 4);
        }
        const uint16_t dh = sl_f32_to_f16(max_scale / 63.0f), mh = sl_f32_to_f16(max_min / 63.0f);
        wr16(y, dh);
        wr16(y + 2, mh);
        const float d = sl_f16_to_f32(dh), dmin = sl_f16_to_f32(mh);
        for (int j = 0; j < 8; j++) {
            const float Dj = d * (float)ls[j];
            if (Dj == 0.0f) continue;
            const float Mj = dmin * (float)lm[j];
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = (uint8_t)clampi(rne((x[32 * j + i] + Mj) / Dj), 0, nmax);
        }
        uint8_t *qs = y + (five ? 48 : 16);
        if (five) memset(y + 16, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 32; i++) {
                const uint8_t a = L[64 * c + i], h = L[64 * c + 32 + i];
                qs[32 * c + i] = (uint8_t)((a & 15) | (h & 15) << 4);
                if (five) y[16 + i] |= (uint8_t)((a >> 4) << (2 * c) | (h >> 4) << (2 * c + 1));
            }
    }
}

/* Signed symmetric fit for Q6_K sub-blocks (ggml's make_qx_quants with x² weights): codes in
 * [-nmax, nmax-1] stored +nmax; tries scales around nmax/max and keeps the best least-squares
 * one. Returns the scale (0 for an all-zero group). */
static float fit_qx(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float best_scale = 0, best = -1;
    static const int order[19] = {0, -9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int o = 0; o < 19; o++) {
        const int k = order[o];
        const float is = k == 0 ? -(float)nmax / max : -((float)nmax + 0.1f * (float)k) / max;
        float sumlx = 0, suml2 = 0;
        int8_t T[16];
        for (int i = 0; i < n; i++) {
            int l = clampi(rne(is * x[i]), -nmax, nmax - 1);
            T[i] = (int8_t)(l + nmax);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && (best < 0 || sumlx * sumlx > best * suml2)) {
            best_scale = sumlx / suml2;
            best = best_scale * sumlx;
            memcpy(L, T, (size_t)n);
        }
    }
    return best_scale;
}

static void q_q6_k(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 256, y += 210) {
        int8_t L[256];
        float scales[16], max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_qx(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y, 0, 210);
        if (max_abs < 1e-15f) continue; /* all-zero block: d = 0, every element 0 */
        const float iscale = -128.0f / max_scale;
        const uint16_t dh = sl_f32_to_f16(1.0f / iscale);
        wr16(y + 208, dh);
        int8_t *sc = (int8_t *)(y + 192);
        for (int j = 0; j < 16; j++) sc[j] = (int8_t)clampi(rne(iscale * scales[j]), -128, 127);
        const float d = sl_f16_to_f32(dh);
        for (int j = 0; j < 16; j++) {
            const float dj = d * (float)sc[j];
            if (dj == 0.0f) continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(rne(x[16 * j + i] / dj), -32, 31) + 32);
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int e = 0; e < 256; e++) {
            const int h = e / 128, g = (e % 128) / 32, l = e % 32, q = (uint8_t)L[e];
            ql[64 * h + 32 * (g & 1) + l] |= (uint8_t)((q & 15) << (g < 2 ? 0 : 4));
            qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * g));
        }
    }
}

bool sl_quant_supported(sl_dtype t) {
    switch (t) {
    case SL_DTYPE_F32:
    case SL_DTYPE_F16:
    case SL_DTYPE_BF16:
    case SL_DTYPE_F8_E4M3:
    case SL_DTYPE_F8_E5M2:
    case SL_DTYPE_Q4_0:
    case SL_DTYPE_Q4_1:
    case SL_DTYPE_Q5_0:
    case SL_DTYPE_Q5_1:
    case SL_DTYPE_Q8_0:
    case SL_DTYPE_Q4_K:
    case SL_DTYPE_Q5_K:
    case SL_DTYPE_Q6_K: return true;
    default: return false;
    }
}

void sl_quant_row(sl_dtype t, const float *src, void *dst, int64_t n) {
    const sl_dtype_info *info = sl_dtype_get(t);
    SL_ASSERTF(sl_quant_supported(t), "sl_quant_row: cannot write %s", info->name);
    SL_ASSERTF(n >= 0 && n % info->blck == 0, "sl_quant_row: %lld elements of %s are not whole blocks",
               (long long)n, info->name);
    uint8_t *y = dst;
    const int64_t nb = n / info->blck;
    switch (t) {
    case SL_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SL_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) wr16(y + 2 * i, sl_f32_to_f16(src[i]));
        break;
    case SL_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) wr16(y + 2 * i, sl_f32_to_bf16(src[i]));
        break;
    case SL_DTYPE_F8_E4M3:
        for (int64_t i = 0; i < n; i++) { /* saturate to +-448 (NaN passes through as NaN) */
            float v = src[i];
            if (v > 448.0f) v = 448.0f;
            if (v < -448.0f) v = -448.0f;
            y[i] = sl_f32_to_e4m3(v);
        }
        break;
    case SL_DTYPE_F8_E5M2:
        for (int64_t i = 0; i < n; i++) { /* saturate to +-57344 */
            float v = src[i];
            if (v > 57344.0f) v = 57344.0f;
            if (v < -57344.0f) v = -57344.0f;
            y[i] = sl_f32_to_e5m2(v);
        }
        break;
    case SL_DTYPE_Q4_0: q_q4_0(src, y, nb); break;
    case SL_DTYPE_Q4_1: q_q4_1(src, y, nb); break;
    case SL_DTYPE_Q5_0: q_q5_0(src, y, nb); break;
    case SL_DTYPE_Q5_1: q_q5_1(src, y, nb); break;
    case SL_DTYPE_Q8_0: q_q8_0(src, y, nb); break;
    case SL_DTYPE_Q4_K: q_k4(src, y, nb, 15, -1.0f, 20); break;
    case SL_DTYPE_Q5_K: q_k4(src, y, nb, 31, -0.5f, 15); break;
    case SL_DTYPE_Q6_K: q_q6_k(src, y, nb); break;
    default: SL_ASSERT(0);
    }
}
