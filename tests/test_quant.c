/* quant_*: core/quant.c against formats.md §4–§6.
 *
 * Expected values are computed here independently, element by element from the "which bits hold
 * element e" rules of formats.md §4.15 (the implementation walks blocks chunk by chunk), in the
 * same f32 evaluation order, so dequantised values must match bit for bit. Hand-built blocks
 * check literal values worked out by hand; round trips check quantise→dequantise error against
 * bounds that follow from each format's step size. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/rng.h"
#include "core/status.h"
#include "test.h"

/* ---- helpers ---- */

static uint16_t h16(float f) { return sl_f32_to_f16(f); }
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static float get_f16(const uint8_t *p) { return sl_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static int lo4(uint8_t b) { return b & 15; }
static int hi4(uint8_t b) { return b >> 4; }

static uint32_t g_state = 12345;
static uint32_t rnd(void) { /* xorshift; the test's own bytes, independent of core/rng */
    g_state ^= g_state << 13;
    g_state ^= g_state >> 17;
    g_state ^= g_state << 5;
    return g_state;
}
/* A random finite f16 scale in a moderate range, either sign. */
static uint16_t rnd_scale(void) {
    float v = ldexpf(1.0f + (float)(rnd() % 1000) / 1000.0f, (int)(rnd() % 12) - 10);
    return h16((rnd() & 1) ? -v : v);
}

static int bits_equal(float a, float b) {
    if (isnan(a) && isnan(b)) return 1;
    return sl_f32_bits(a) == sl_f32_bits(b);
}

/* ---- independent element-wise references (formats.md §4) ---- */

static float ref_elem(sl_dtype t, const uint8_t *blk, int e) {
    switch (t) {
    case SL_DTYPE_Q4_0: {
        int q = e < 16 ? lo4(blk[2 + e]) : hi4(blk[2 + e - 16]);
        return (float)(q - 8) * get_f16(blk);
    }
    case SL_DTYPE_Q4_1: {
        int q = e < 16 ? lo4(blk[4 + e]) : hi4(blk[4 + e - 16]);
        return (float)q * get_f16(blk) + get_f16(blk + 2);
    }
    case SL_DTYPE_Q5_0: {
        uint32_t qh = blk[2] | blk[3] << 8 | blk[4] << 16 | (uint32_t)blk[5] << 24;
        int q = (e < 16 ? lo4(blk[6 + e]) : hi4(blk[6 + e - 16])) | (int)((qh >> e) & 1) << 4;
        return (float)(q - 16) * get_f16(blk);
    }
    case SL_DTYPE_Q5_1: {
        uint32_t qh = blk[4] | blk[5] << 8 | blk[6] << 16 | (uint32_t)blk[7] << 24;
        int q = (e < 16 ? lo4(blk[8 + e]) : hi4(blk[8 + e - 16])) | (int)((qh >> e) & 1) << 4;
        return (float)q * get_f16(blk) + get_f16(blk + 2);
    }
    case SL_DTYPE_Q8_0: return (float)(int8_t)blk[2 + e] * get_f16(blk);
    case SL_DTYPE_Q2_K: {
        int q = (blk[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        uint8_t sc = blk[e / 16];
        return (get_f16(blk + 80) * (float)lo4(sc)) * (float)q - get_f16(blk + 82) * (float)hi4(sc);
    }
    case SL_DTYPE_Q3_K: {
        const uint8_t *B = blk + 96;
        int j = e / 16;
        int low = j < 8 ? lo4(B[j]) : hi4(B[j - 8]);
        int high = (B[8 + j % 4] >> (2 * (j / 4))) & 3;
        int S = (low | high << 4) - 32;
        int q2 = (blk[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int hb = (blk[e % 32] >> (e / 32)) & 1;
        int q = hb ? q2 : q2 - 4;
        return (get_f16(blk + 108) * (float)S) * (float)q;
    }
    case SL_DTYPE_Q4_K:
    case SL_DTYPE_Q5_K: {
        const uint8_t *B = blk + 4;
        int j = e / 32, sc, m;
        if (j < 4) {
            sc = B[j] & 63;
            m = B[j + 4] & 63;
        } else {
            sc = (B[j + 4] & 0x0F) | ((B[j - 4] >> 6) << 4);
            m = (B[j + 4] >> 4) | ((B[j] >> 6) << 4);
        }
        const uint8_t *qs = blk + (t == SL_DTYPE_Q4_K ? 16 : 48);
        uint8_t byte = qs[32 * (e / 64) + e % 32];
        int q = (e % 64) / 32 ? hi4(byte) : lo4(byte);
        if (t == SL_DTYPE_Q5_K) q += 16 * ((blk[16 + e % 32] >> (e / 32)) & 1);
        return (get_f16(blk) * (float)sc) * (float)q - get_f16(blk + 2) * (float)m;
    }
    case SL_DTYPE_Q6_K: {
        int h = e / 128, g = (e % 128) / 32, l = e % 32;
        uint8_t b = blk[64 * h + 32 * (g & 1) + l];
        int low = g < 2 ? lo4(b) : hi4(b);
        int high = (blk[128 + 32 * h + l] >> (2 * g)) & 3;
        int q = (low | high << 4) - 32;
        return (get_f16(blk + 208) * (float)(int8_t)blk[192 + e / 16]) * (float)q;
    }
    default: return NAN;
    }
}

/* Offset of each f16 scale field within a block (to make them finite after random filling). */
static void fix_scales(sl_dtype t, uint8_t *blk) {
    switch (t) {
    case SL_DTYPE_Q4_0:
    case SL_DTYPE_Q5_0:
    case SL_DTYPE_Q8_0: put16(blk, rnd_scale()); break;
    case SL_DTYPE_Q4_1:
    case SL_DTYPE_Q5_1:
    case SL_DTYPE_Q4_K:
    case SL_DTYPE_Q5_K:
        put16(blk, rnd_scale());
        put16(blk + 2, rnd_scale());
        break;
    case SL_DTYPE_Q2_K:
        put16(blk + 80, rnd_scale());
        put16(blk + 82, rnd_scale());
        break;
    case SL_DTYPE_Q3_K: put16(blk + 108, rnd_scale()); break;
    case SL_DTYPE_Q6_K: put16(blk + 208, rnd_scale()); break;
    default: break;
    }
}

static const sl_dtype k_blocks[] = {SL_DTYPE_Q4_0, SL_DTYPE_Q4_1, SL_DTYPE_Q5_0, SL_DTYPE_Q5_1,
                                    SL_DTYPE_Q8_0, SL_DTYPE_Q2_K, SL_DTYPE_Q3_K, SL_DTYPE_Q4_K,
                                    SL_DTYPE_Q5_K, SL_DTYPE_Q6_K};

/* Dequantise `nblk` blocks from an odd (unaligned) address and compare with ref_elem. */
static int check_blocks(sl_dtype t, const uint8_t *blocks, int nblk) {
    const sl_dtype_info *in = sl_dtype_get(t);
    size_t nbytes = (size_t)nblk * (size_t)in->bsize;
    int64_t n = (int64_t)nblk * in->blck;
    uint8_t *buf = malloc(nbytes + 1);
    float *y = malloc((size_t)n * sizeof(float));
    memcpy(buf + 1, blocks, nbytes);
    sl_dequant_row(t, buf + 1, y, n);
    int bad = 0;
    for (int b = 0; b < nblk; b++)
        for (int e = 0; e < in->blck; e++) {
            float want = ref_elem(t, blocks + (size_t)b * (size_t)in->bsize, e);
            float got = y[(int64_t)b * in->blck + e];
            if (!bits_equal(want, got)) {
                if (bad < 5)
                    sl_test_fail(__FILE__, __LINE__, "%s block %d elem %d: got %.9g want %.9g",
                                 in->name, b, e, got, want);
                bad++;
            }
        }
    free(buf);
    free(y);
    return bad;
}

/* ---- scalar types ---- */

SL_TEST(quant_scalar_dequant_all_codes) {
    uint8_t src[65536 * 2];
    float y[65536];
    for (int i = 0; i < 65536; i++) put16(src + 2 * i, (uint16_t)i);
    sl_dequant_row(SL_DTYPE_F16, src, y, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) bad += !bits_equal(y[i], sl_f16_to_f32((uint16_t)i));
    CHECKF(bad == 0, "%d f16 codes differ from sl_f16_to_f32", bad);
    CHECK(y[0x3c00] == 1.0f && y[0xc000] == -2.0f && y[0x0001] == ldexpf(1.0f, -24));
    CHECK(isinf(y[0x7c00]) && isnan(y[0x7e00]) && sl_f32_bits(y[0x8000]) == 0x80000000u);

    sl_dequant_row(SL_DTYPE_BF16, src, y, 65536);
    bad = 0;
    for (int i = 0; i < 65536; i++) bad += sl_f32_bits(y[i]) != (uint32_t)i << 16;
    CHECKF(bad == 0, "%d bf16 codes wrong", bad);

    for (int i = 0; i < 256; i++) src[i] = (uint8_t)i;
    sl_dequant_row(SL_DTYPE_F8_E4M3, src, y, 256);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += !bits_equal(y[i], sl_e4m3_to_f32((uint8_t)i));
    CHECK(bad == 0);
    CHECK(y[0x7e] == 448.0f && y[0x01] == ldexpf(1.0f, -9) && isnan(y[0x7f]) && isnan(y[0xff]));
    CHECK(y[0x38] == 1.0f && y[0xb8] == -1.0f);
    sl_dequant_row(SL_DTYPE_F8_E5M2, src, y, 256);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += !bits_equal(y[i], sl_e5m2_to_f32((uint8_t)i));
    CHECK(bad == 0);
    CHECK(y[0x7b] == 57344.0f && isinf(y[0x7c]) && y[0x3c] == 1.0f);

    float f[5] = {1.5f, -0.0f, 3e38f, INFINITY, 1e-40f}, g[5];
    sl_dequant_row(SL_DTYPE_F32, f, g, 5);
    CHECK(memcmp(f, g, sizeof f) == 0);
}

SL_TEST(quant_scalar_roundtrip) {
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q = malloc(N * 4);
    sl_rng_normal(7, 1, 0, x, N);
    for (int i = 0; i < N; i++) x[i] *= (i % 7 == 0) ? 40.0f : 1.0f;
    struct {
        sl_dtype t;
        double rel; /* half an ulp: 2^-(mantissa bits + 1) */
        double floor;
    } cases[] = {{SL_DTYPE_F16, ldexp(1, -11), ldexp(1, -25)},
                 {SL_DTYPE_BF16, ldexp(1, -8), 0},
                 {SL_DTYPE_F8_E4M3, ldexp(1, -4), ldexp(1, -10)},
                 {SL_DTYPE_F8_E5M2, ldexp(1, -3), ldexp(1, -17)},
                 {SL_DTYPE_F32, 0, 0}};
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        sl_quant_row(cases[c].t, x, q, N);
        sl_dequant_row(cases[c].t, q, y, N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double xi = x[i];
            if (cases[c].t == SL_DTYPE_F8_E4M3 && fabs(xi) > 448) xi = xi > 0 ? 448 : -448;
            double err = fabs((double)y[i] - xi);
            if (!(err <= fabs(xi) * cases[c].rel + cases[c].floor)) bad++;
        }
        CHECKF(bad == 0, "%s: %d of %d values outside half an ulp", sl_dtype_name(cases[c].t), bad, N);
    }
    free(x);
    free(y);
    free(q);
}

SL_TEST(quant_fp8_saturates) {
    float x[8] = {1000.0f, -1000.0f, INFINITY, -INFINITY, 448.0f, 465.0f, NAN, 1e6f};
    uint8_t q[8];
    float y[8];
    sl_quant_row(SL_DTYPE_F8_E4M3, x, q, 8);
    CHECK(q[0] == 0x7e && q[1] == 0xfe && q[2] == 0x7e && q[3] == 0xfe && q[4] == 0x7e);
    CHECK(q[5] == 0x7e && q[7] == 0x7e);
    CHECK((q[6] & 0x7f) == 0x7f); /* NaN stays NaN */
    sl_dequant_row(SL_DTYPE_F8_E4M3, q, y, 8);
    CHECK(y[0] == 448.0f && y[1] == -448.0f && isnan(y[6]));
    float z[4] = {1e6f, -INFINITY, 57344.0f, 61439.0f};
    sl_quant_row(SL_DTYPE_F8_E5M2, z, q, 4);
    CHECK(q[0] == 0x7b && q[1] == 0xfb && q[2] == 0x7b && q[3] == 0x7b);
    /* saturation happens in sl_quant_row only: the scalar conversion keeps PyTorch's NaN */
    CHECK(sl_f32_to_e4m3(1000.0f) == 0x7f);
}

/* ---- block types: random bytes vs the element-wise reference ---- */

SL_TEST(quant_blocks_random_vs_reference) {
    for (size_t k = 0; k < SL_ARRAY_LEN(k_blocks); k++) {
        sl_dtype t = k_blocks[k];
        const sl_dtype_info *in = sl_dtype_get(t);
        int nblk = 203; /* odd number of blocks */
        uint8_t *b = malloc((size_t)nblk * (size_t)in->bsize);
        for (int i = 0; i < nblk * in->bsize; i++) b[i] = (uint8_t)rnd();
        for (int i = 0; i < nblk; i++) fix_scales(t, b + (size_t)i * (size_t)in->bsize);
        int bad = check_blocks(t, b, nblk);
        CHECKF(bad == 0, "%s: %d elements differ", in->name, bad);
        free(b);
    }
}

/* ---- hand-built blocks with literal expected values ---- */

SL_TEST(quant_q4_0_q8_0_hand) {
    uint8_t b[18] = {0};
    put16(b, h16(-0.5f)); /* negative d */
    b[2 + 0] = 0x0F;      /* elem 0: q=15 -> (15-8)*-0.5 = -3.5; elem 16: q=0 -> 4 */
    b[2 + 5] = 0x8A;      /* elem 5: q=10 -> -1; elem 21: q=8 -> 0 */
    float y[32];
    sl_dequant_row(SL_DTYPE_Q4_0, b, y, 32);
    CHECK(y[0] == -3.5f && y[16] == 4.0f && y[5] == -1.0f && y[21] == 0.0f);
    CHECK(y[1] == 4.0f); /* q=0 */

    uint8_t c[34] = {0};
    put16(c, h16(0.25f));
    c[2 + 0] = 0x80;  /* -128 */
    c[2 + 31] = 0x7F; /* 127 */
    c[2 + 7] = 0xFD;  /* -3 */
    sl_dequant_row(SL_DTYPE_Q8_0, c, y, 32);
    CHECK(y[0] == -32.0f && y[31] == 31.75f && y[7] == -0.75f && y[1] == 0.0f);
}

SL_TEST(quant_q5_hand) {
    uint8_t b[22] = {0};
    put16(b, h16(2.0f));
    b[2] = 0x08;      /* qh bit 3: element 3 has bit 4 */
    b[5] = 0x02;      /* qh bit 25 (byte 3, bit 1): element 25 */
    b[6 + 3] = 0x71;  /* elem 3 low 1 -> q 17 -> (17-16)*2 = 2; elem 19 low 7 -> q 7 -> -18 */
    float y[32];
    sl_dequant_row(SL_DTYPE_Q5_0, b, y, 32);
    CHECK(y[3] == 2.0f && y[19] == -18.0f && y[0] == -32.0f);
    CHECK(y[25] == 0.0f); /* low 0 + 16 -> q 16 -> 0 */
    CHECK(y[24] == -32.0f && y[26] == -32.0f);
    uint8_t c[24] = {0};
    put16(c, h16(0.5f));
    put16(c + 2, h16(-3.0f));
    c[4 + 3] = 0x80; /* qh bit 31 (byte 7 bit 7): elem 31 */
    c[8 + 15] = 0xF0;
    sl_dequant_row(SL_DTYPE_Q5_1, c, y, 32);
    CHECK(y[31] == 31.0f * 0.5f - 3.0f && y[15] == -3.0f && y[0] == -3.0f);
    uint8_t d[20] = {0};
    put16(d, h16(0.5f));
    put16(d + 2, h16(1.0f));
    d[4 + 2] = 0x3C; /* elem 2: 12 -> 7; elem 18: 3 -> 2.5 */
    sl_dequant_row(SL_DTYPE_Q4_1, d, y, 32);
    CHECK(y[2] == 7.0f && y[18] == 2.5f && y[0] == 1.0f);
}

SL_TEST(quant_q2_k_hand) {
    uint8_t b[84] = {0};
    put16(b + 80, h16(0.5f));  /* d */
    put16(b + 82, h16(0.25f)); /* dmin */
    b[9] = 0x36;               /* sub-block 9 (elems 144..159): scale 6, min 3 */
    /* elem 150 = 128*1 + 32*0 + 22: byte qs[32+22] bits 0-1 */
    b[16 + 32 + 22] = 0x03 | (2 << 4); /* elem 150 q=3; elem 150+64=214 q=2 (sub-block 13) */
    b[13] = 0x21;                      /* sub-block 13: scale 1, min 2 */
    float y[256];
    sl_dequant_row(SL_DTYPE_Q2_K, b, y, 256);
    CHECK(y[150] == (0.5f * 6) * 3 - 0.25f * 3); /* 8.25 */
    CHECK(y[150] == 8.25f);
    CHECK(y[214] == 0.5f * 2 - 0.5f);
    CHECK(y[151] == -0.75f); /* q=0, same sub-block */
    CHECK(y[0] == 0.0f);
}

SL_TEST(quant_q3_k_hand) {
    uint8_t b[110] = {0};
    put16(b + 108, h16(-0.5f)); /* negative d */
    uint8_t *B = b + 96;
    /* scale code for sub-block 10 (elems 160..175): low4 = hi(B[2]), high2 = B[8+2] bits 4-5 */
    B[2] = 0x50;          /* low4 = 5 */
    B[10] = 0x2 << 4;     /* high2 = 2 -> code 37 -> S = 5 */
    /* sub-block 0: low4 = lo(B[0]) = 0, high2 = B[8] bits 0-1 = 0 -> S = -32 */
    /* elem 165 = 128 + 32*1 + 5: q2 from qs[32+5] bits 2-3; hmask[165%32=5] bit 5 */
    b[32 + 32 + 5] = 0x3 << 2;
    b[5] = 1 << 5; /* hb = 1: q = q2 = 3 */
    /* elem 166: q2 = 0, hb = 0 -> q = -4 */
    float y[256];
    sl_dequant_row(SL_DTYPE_Q3_K, b, y, 256);
    CHECK(y[165] == (-0.5f * 5) * 3); /* -7.5 */
    CHECK(y[166] == (-0.5f * 5) * -4); /* 10 */
    CHECK(y[0] == (-0.5f * -32) * -4); /* -64 */
    /* elem 5 (hmask[5] bit 0 clear) and elem 37 (bit 1 clear) still -4 */
    CHECK(y[5] == -64.0f && y[37] == -64.0f);
}

SL_TEST(quant_q4_k_q5_k_hand) {
    uint8_t b[144] = {0};
    put16(b, h16(0.5f));
    put16(b + 2, h16(0.25f));
    uint8_t *B = b + 4;
    /* sc_5 = 37 (0b100101): low4 5 in B[9] bits 0-3, top2 (2) in B[1] bits 6-7.
     * m_5 = 20 (0b010100): low4 4 in B[9] bits 4-7, top2 (1) in B[5] bits 6-7. */
    B[9] = 0x45;
    B[1] = 2 << 6;
    B[5] = 1 << 6;
    B[0] = 3;  /* sc_0 = 3 */
    B[4] = 63; /* m_0 = 63 */
    /* elem 163 = 64*2 + 32 + 3: high nibble of qs[64+3] */
    b[16 + 64 + 3] = 0xA0;
    b[16 + 0] = 0x07; /* elem 0: q=7 */
    float y[256];
    sl_dequant_row(SL_DTYPE_Q4_K, b, y, 256);
    CHECK(y[163] == 180.0f); /* 0.5*37*10 - 0.25*20 */
    CHECK(y[0] == 1.5f * 7 - 15.75f);
    CHECK(y[1] == -15.75f);
    CHECK(y[160] == -5.0f); /* q=0 in sub-block 5 */

    uint8_t c[176] = {0};
    put16(c, h16(0.5f));
    put16(c + 2, h16(0.25f));
    memcpy(c + 4, B, 12);
    c[48 + 64 + 3] = 0xA0;  /* elem 163 low 4 bits = 10 */
    c[16 + 3] = 1 << 5;     /* qh[3] bit 5 = elem 32*5+3 = 163 -> +16 */
    c[16 + 0] = 1 << 0;     /* elem 0 +16 */
    c[48 + 0] = 0x07;
    sl_dequant_row(SL_DTYPE_Q5_K, c, y, 256);
    CHECK(y[163] == 0.5f * 37 * 26 - 5.0f);
    CHECK(y[0] == 1.5f * 23 - 15.75f);
    CHECK(y[131] == 0.0f); /* sub-block 4 has sc 0, m 0 */
}

SL_TEST(quant_q6_k_hand) {
    uint8_t b[210] = {0};
    put16(b + 208, h16(0.25f));
    int8_t *sc = (int8_t *)(b + 192);
    sc[0] = -3;
    sc[12] = 100;
    float y[256];
    sl_dequant_row(SL_DTYPE_Q6_K, b, y, 256);
    CHECK(y[0] == 24.0f); /* code 0 -> q = -32; (0.25*-3)*-32 */
    /* elem 200 = 128 + 64 + 8 (g=2): low nibble = hi(ql[64+8]), high2 = qh[32+8] bits 4-5 */
    b[64 + 8] = 0xF0;
    b[128 + 32 + 8] = 3 << 4; /* q = 63 - 32 = 31 */
    /* elem 232 = 128 + 96 + 8 (g=3): hi(ql[64+32+8]), qh[40] bits 6-7 */
    b[64 + 32 + 8] = 0x50;
    b[128 + 32 + 8] |= 1 << 6; /* code 0x15 = 21 -> q = -11 */
    sl_dequant_row(SL_DTYPE_Q6_K, b, y, 256);
    CHECK(y[200] == (0.25f * 100) * 31); /* sub-block 12 */
    CHECK(y[232] == (0.25f * 0) * -11);
    sc[14] = -7;
    sl_dequant_row(SL_DTYPE_Q6_K, b, y, 256);
    CHECK(y[232] == 0.25f * -7 * -11);
    CHECK(y[0] == 24.0f);
}

/* ---- quantisers ---- */

/* Q8_0 and Q4_0 are exact on values that lie on their grids. */
SL_TEST(quant_q8_0_q4_0_exact_on_grid) {
    enum { NB = 7 };
    float x[NB * 32], y[NB * 32];
    uint8_t q[NB * 34];
    for (int b = 0; b < NB; b++) {
        float d = ldexpf(1.0f, b - 3) * (b & 1 ? -1.0f : 1.0f);
        for (int j = 0; j < 32; j++) x[b * 32 + j] = d * (float)((int)(rnd() % 255) - 127);
        x[b * 32 + (int)(rnd() % 32)] = 127.0f * d; /* amax = 127|d| -> stored d is |d|, exact */
    }
    sl_quant_row(SL_DTYPE_Q8_0, x, q, NB * 32);
    sl_dequant_row(SL_DTYPE_Q8_0, q, y, NB * 32);
    int bad = 0;
    for (int i = 0; i < NB * 32; i++) bad += x[i] != y[i]; /* == : a -0 input decodes as +0 */
    CHECKF(bad == 0, "q8_0: %d grid values not exact", bad);
    for (int b = 0; b < NB; b++) {
        float d = ldexpf(1.0f, b - 4);
        for (int j = 0; j < 32; j++) x[b * 32 + j] = d * (float)((int)(rnd() % 16) - 8);
        x[b * 32 + 9] = -8.0f * d; /* largest magnitude, negative: d = -8d/-8 = d */
        for (int j = 0; j < 9; j++) x[b * 32 + j] = d * (float)((int)(rnd() % 15) - 7);
    }
    sl_quant_row(SL_DTYPE_Q4_0, x, q, NB * 32);
    sl_dequant_row(SL_DTYPE_Q4_0, q, y, NB * 32);
    bad = 0;
    for (int i = 0; i < NB * 32; i++) bad += x[i] != y[i];
    CHECKF(bad == 0, "q4_0: %d grid values not exact", bad);
    /* all-zero block: d = 0 and codes that decode to 0 */
    float z[32] = {0}, w[32];
    uint8_t qz[34];
    sl_quant_row(SL_DTYPE_Q8_0, z, qz, 32);
    sl_dequant_row(SL_DTYPE_Q8_0, qz, w, 32);
    for (int j = 0; j < 32; j++) CHECK(w[j] == 0.0f);
}

/* The §5.1/§5.2 reference quantisers, written out plainly, give the same bytes. */
SL_TEST(quant_q8_0_q4_0_reference_bytes) {
    enum { NB = 31 };
    float x[NB * 32];
    sl_rng_normal(3, 9, 0, x, NB * 32);
    for (int i = 0; i < NB * 32; i++) x[i] *= (i / 32 % 3) ? 0.02f : 3.0f;
    uint8_t got[NB * 34], want[NB * 34];
    sl_quant_row(SL_DTYPE_Q8_0, x, got, NB * 32);
    for (int b = 0; b < NB; b++) {
        const float *v = x + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]);
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        put16(want + 34 * b, h16(d));
        for (int j = 0; j < 32; j++) want[34 * b + 2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
    }
    CHECK(memcmp(got, want, sizeof got) == 0);
    sl_quant_row(SL_DTYPE_Q4_0, x, got, NB * 32);
    for (int b = 0; b < NB; b++) {
        const float *v = x + 32 * b;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]), max = v[j];
        float d = max / -8, id = d != 0 ? 1 / d : 0;
        put16(want + 18 * b, h16(d));
        for (int j = 0; j < 16; j++) {
            int a = (int)(v[j] * id + 8.5f), c = (int)(v[j + 16] * id + 8.5f);
            want[18 * b + 2 + j] = (uint8_t)((a > 15 ? 15 : a) | (c > 15 ? 15 : c) << 4);
        }
    }
    CHECK(memcmp(got, want, NB * 18) == 0);
}

/* Round trips of a Gaussian row with outliers against per-block bounds. For the plain block
 * types the bound is the code step (half a step of rounding, plus clamping of the extreme
 * element for the asymmetric signed ranges); for K-quants, whose scales are fitted, the RMS error
 * relative to the block's RMS. */
SL_TEST(quant_block_roundtrip_bounds) {
    const int64_t n = 256 * 37; /* odd multiple of every block size */
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc((size_t)n * 2);
    sl_rng_normal(11, 2, 0, x, n);
    for (int64_t i = 0; i < n; i++) {
        if (i % 997 == 0) x[i] *= 8.0f;                  /* outliers */
        if ((i / 256) % 5 == 1) x[i] = fabsf(x[i]) + 0.5f; /* one-signed blocks */
        if ((i / 256) % 5 == 2) x[i] *= 1e-3f;           /* small blocks */
    }
    struct {
        sl_dtype t;
        double step_mul; /* |err| <= step_mul * step (plain types) */
        double rel_rms;  /* rms(err)/rms(x) bound per 256 (K-quants and overall) */
    } cases[] = {
        /* measured worst: q8_0 .0094, q4_0 .156, q4_1 .091, q5_0 .074, q5_1 .051, q4_k .092,
         * q5_k .048, q6_k .026 (bounds ~20% above) */
        {SL_DTYPE_Q8_0, 0.51, 0.012}, {SL_DTYPE_Q4_0, 1.01, 0.19}, {SL_DTYPE_Q4_1, 0.51, 0.11},
        {SL_DTYPE_Q5_0, 1.01, 0.09},  {SL_DTYPE_Q5_1, 0.51, 0.062}, {SL_DTYPE_Q4_K, 0, 0.11},
        {SL_DTYPE_Q5_K, 0, 0.058},    {SL_DTYPE_Q6_K, 0, 0.032},
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        sl_dtype t = cases[c].t;
        REQUIRE(sl_quant_supported(t));
        const sl_dtype_info *in = sl_dtype_get(t);
        sl_quant_row(t, x, q, n);
        sl_dequant_row(t, q, y, n);
        int bad = 0;
        double worst_rel = 0;
        if (cases[c].step_mul > 0) {
            for (int64_t b = 0; b < n / 32; b++) {
                double lo = 1e30, hi = -1e30, amax = 0;
                for (int j = 0; j < 32; j++) {
                    double v = x[b * 32 + j];
                    lo = fmin(lo, v), hi = fmax(hi, v), amax = fmax(amax, fabs(v));
                }
                double step = t == SL_DTYPE_Q8_0   ? amax / 127
                              : t == SL_DTYPE_Q4_0 ? amax / 8
                              : t == SL_DTYPE_Q5_0 ? amax / 16
                              : t == SL_DTYPE_Q4_1 ? (hi - lo) / 15
                                                   : (hi - lo) / 31;
                /* storing d (and the min) in f16 moves a code's value by at most |q| times d's
                 * rounding error (2^-11 relative, or 2^-25 absolute when subnormal) */
                double qmax = t == SL_DTYPE_Q8_0   ? 127
                              : t == SL_DTYPE_Q4_0 ? 8
                              : t == SL_DTYPE_Q5_0 ? 16
                              : t == SL_DTYPE_Q4_1 ? 15
                                                   : 31;
                double tol = cases[c].step_mul * step + qmax * (step * ldexp(1, -11) + ldexp(1, -25)) +
                             fabs(lo) * ldexp(1, -11) + ldexp(1, -25);
                for (int j = 0; j < 32; j++)
                    if (!(fabs((double)y[b * 32 + j] - x[b * 32 + j]) <= tol)) bad++;
            }
            CHECKF(bad == 0, "%s: %d elements beyond the step bound", in->name, bad);
        }
        for (int64_t b = 0; b < n / 256; b++) {
            double se = 0, sx = 0;
            for (int j = 0; j < 256; j++) {
                double e = (double)y[b * 256 + j] - x[b * 256 + j];
                se += e * e;
                sx += (double)x[b * 256 + j] * x[b * 256 + j];
            }
            double rel = sqrt(se / sx);
            if (rel > worst_rel) worst_rel = rel;
        }
        CHECKF(worst_rel <= cases[c].rel_rms, "%s: worst relative RMS error %.4f > %.4f", in->name,
               worst_rel, cases[c].rel_rms);
    }
    free(x);
    free(y);
    free(q);
}

/* Q4_K specifics: fitted factors are stored as 6-bit codes of d/dmin; codes re-quantised against
 * the stored factors; constant and zero blocks. */
SL_TEST(quant_q4_k_properties) {
    float x[512], y[512];
    uint8_t q[2 * 144];
    for (int i = 0; i < 256; i++) x[i] = 1.5f;    /* constant positive block */
    for (int i = 256; i < 512; i++) x[i] = 0.0f;  /* zero block */
    sl_quant_row(SL_DTYPE_Q4_K, x, q, 512);
    sl_dequant_row(SL_DTYPE_Q4_K, q, y, 512);
    for (int i = 0; i < 256; i++) CHECK_NEAR(y[i], 1.5f, 1.5 * ldexp(1, -10));
    for (int i = 256; i < 512; i++) CHECK(y[i] == 0.0f);
    /* a block whose sub-blocks differ by 10x in scale: every sub-block keeps its own fit (at
     * 100x the 6-bit scale codes of the small ones round to 0, in ggml too) */
    float z[256], w[256];
    sl_rng_normal(5, 5, 0, z, 256);
    for (int i = 0; i < 256; i++) z[i] *= (i / 32 % 2) ? 1.0f : 0.1f;
    sl_quant_row(SL_DTYPE_Q4_K, z, q, 256);
    sl_dequant_row(SL_DTYPE_Q4_K, q, w, 256);
    for (int j = 0; j < 8; j += 2) {
        double se = 0, sx = 0;
        for (int i = 32 * j; i < 32 * j + 32; i++) {
            se += (double)(w[i] - z[i]) * (w[i] - z[i]);
            sx += (double)z[i] * z[i];
        }
        CHECKF(sqrt(se / sx) < 0.5, "small sub-block %d lost: rel rms %.3f", j, sqrt(se / sx));
    }
    /* d and dmin are non-negative and every code is in 0..15 by construction */
    CHECK((q[1] & 0x80) == 0 && (q[3] & 0x80) == 0);
}
