#include "core/dtype.h"

#include "core/status.h"

#include <math.h>

static const sl_dtype_info g_info[SL_DTYPE_COUNT] = {
    [SL_DTYPE_F32] = {"f32", 1, 4, true, false, 0},
    [SL_DTYPE_F16] = {"f16", 1, 2, true, false, 1},
    [SL_DTYPE_BF16] = {"bf16", 1, 2, true, false, 30},
    [SL_DTYPE_F8_E4M3] = {"f8_e4m3", 1, 1, true, false, -1},
    [SL_DTYPE_F8_E5M2] = {"f8_e5m2", 1, 1, true, false, -1},
    [SL_DTYPE_Q4_0] = {"q4_0", 32, 18, true, true, 2},
    [SL_DTYPE_Q4_1] = {"q4_1", 32, 20, true, true, 3},
    [SL_DTYPE_Q5_0] = {"q5_0", 32, 22, true, true, 6},
    [SL_DTYPE_Q5_1] = {"q5_1", 32, 24, true, true, 7},
    [SL_DTYPE_Q8_0] = {"q8_0", 32, 34, true, true, 8},
    [SL_DTYPE_Q2_K] = {"q2_k", 256, 84, true, true, 10},
    [SL_DTYPE_Q3_K] = {"q3_k", 256, 110, true, true, 11},
    [SL_DTYPE_Q4_K] = {"q4_k", 256, 144, true, true, 12},
    [SL_DTYPE_Q5_K] = {"q5_k", 256, 176, true, true, 13},
    [SL_DTYPE_Q6_K] = {"q6_k", 256, 210, true, true, 14},
    [SL_DTYPE_F64] = {"f64", 1, 8, false, false, 28},
    [SL_DTYPE_I32] = {"i32", 1, 4, false, false, 26},
    [SL_DTYPE_I64] = {"i64", 1, 8, false, false, 27},
    [SL_DTYPE_I16] = {"i16", 1, 2, false, false, 25},
    [SL_DTYPE_I8] = {"i8", 1, 1, false, false, 24},
    [SL_DTYPE_U8] = {"u8", 1, 1, false, false, -1},
    [SL_DTYPE_BOOL] = {"bool", 1, 1, false, false, -1},
};

const sl_dtype_info *sl_dtype_get(sl_dtype t) {
    SL_ASSERT((unsigned)t < SL_DTYPE_COUNT);
    return &g_info[t];
}

int sl_dtype_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "fp8") || !strcmp(name, "f8") || !strcmp(name, "fp8_e4m3")) return SL_DTYPE_F8_E4M3;
    if (!strcmp(name, "fp8_e5m2")) return SL_DTYPE_F8_E5M2;
    if (!strcmp(name, "fp32")) return SL_DTYPE_F32;
    if (!strcmp(name, "fp16")) return SL_DTYPE_F16;
    for (int i = 0; i < SL_DTYPE_COUNT; i++)
        if (!strcmp(name, g_info[i].name)) return i;
    return -1;
}

int sl_dtype_from_ggml(uint32_t ggml_type) {
    for (int i = 0; i < SL_DTYPE_COUNT; i++)
        if (g_info[i].ggml_type >= 0 && (uint32_t)g_info[i].ggml_type == ggml_type) return i;
    return -1;
}

bool sl_dtype_row_ok(sl_dtype t, int64_t n) {
    const sl_dtype_info *d = sl_dtype_get(t);
    return n >= 0 && n % d->blck == 0;
}

size_t sl_dtype_row_bytes(sl_dtype t, int64_t n) {
    const sl_dtype_info *d = sl_dtype_get(t);
    SL_ASSERTF(n >= 0 && n % d->blck == 0, "%lld elements of %s are not whole blocks", (long long)n,
               d->name);
    return (size_t)(n / d->blck) * (size_t)d->bsize;
}

float sl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -v : v;
    }
    if (exp == 31) return sl_bits_f32(sign | 0x7f800000u | (mant << 13));
    return sl_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t sl_f32_to_f16(float f) {
    uint32_t u = sl_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;
    if (a >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 */
    if (a < 0x38800000u) {                      /* < 2^-14: subnormal */
        float af = sl_bits_f32(a) * 16777216.0f; /* exact: scaling by 2^24 */
        /* round to nearest even integer */
        uint32_t m = (uint32_t)af;
        float frac = af - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* RNE on the 13 dropped bits */
    r -= 112u << 23;
    return sign | (uint16_t)(r >> 13);
}

float sl_e4m3_to_f32(uint8_t b) {
    uint32_t s = b & 0x80, e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 15 && m == 7) return sl_bits_f32(0x7fc00000u | (s << 24));
    if (e == 0)
        v = (float)m * (1.0f / 512.0f);
    else
        v = sl_bits_f32(((e + 120) << 23) | (m << 20));
    return s ? -v : v;
}

/* Encode |x| (finite, in range) to an fp8 magnitude with `mb` mantissa bits and exponent bias
 * `bias`: subnormals on the grid 2^(1-bias-mb), normals by RNE on the dropped f32 mantissa bits. */
static uint8_t fp8_mag(float a, int mb, int bias) {
    float min_normal = ldexpf(1.0f, 1 - bias);
    if (a < min_normal) return (uint8_t)nearbyintf(ldexpf(a, bias - 1 + mb)); /* may carry to 1<<mb */
    uint32_t u = sl_f32_bits(a);
    int drop = 23 - mb;
    uint32_t r = u + ((1u << (drop - 1)) - 1) + ((u >> drop) & 1u);
    int e = (int)(r >> 23) - 127 + bias;
    return (uint8_t)((e << mb) | ((r >> drop) & ((1u << mb) - 1)));
}

uint8_t sl_f32_to_e4m3(float f) {
    uint8_t s = (sl_f32_bits(f) >> 24) & 0x80;
    float a = fabsf(f);
    if (isnan(f) || a > 464.0f) return s | 0x7f;
    return s | fp8_mag(a, 3, 7);
}

float sl_e5m2_to_f32(uint8_t b) { return sl_f16_to_f32((uint16_t)b << 8); }

uint8_t sl_f32_to_e5m2(float f) {
    uint8_t s = (sl_f32_bits(f) >> 24) & 0x80;
    float a = fabsf(f);
    if (isnan(f)) return s | 0x7f;
    if (a >= 61440.0f) return s | 0x7c;
    return s | fp8_mag(a, 2, 15);
}
