/* core/: dtype conversions, tensor helpers, thread pool, rng, errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "test.h"

SL_TEST(core_f16_roundtrip_all) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sl_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (sl_f32_to_f16(f) != h) bad++;
    }
    CHECKF(bad == 0, "%d f16 codes do not round-trip", bad);
    CHECK(sl_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sl_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(sl_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(sl_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000); /* tie to even: 0 */
    CHECK(sl_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    CHECK(sl_f32_to_f16(-0.0f) == 0x8000);
    CHECK((sl_f32_to_f16(NAN) & 0x7e00) == 0x7e00);
}

SL_TEST(core_bf16_rounding) {
    CHECK(sl_f32_to_bf16(1.0f) == 0x3f80);
    /* 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0) */
    CHECK(sl_f32_to_bf16(1.00390625f) == 0x3f80);
    CHECK(sl_f32_to_bf16(1.01171875f) == 0x3f82); /* halfway, odd below -> up */
    CHECK(sl_bf16_to_f32(0x3f80) == 1.0f);
    uint16_t n = sl_f32_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sl_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && sl_f32_to_bf16(f) != h) {
            CHECKF(0, "bf16 %04x does not round-trip", h);
            break;
        }
    }
}

SL_TEST(core_fp8_codes) {
    for (int b = 0; b < 256; b++) {
        float v = sl_e4m3_to_f32((uint8_t)b);
        if (!isnan(v)) CHECKF(sl_f32_to_e4m3(v) == b, "e4m3 %02x", b);
        v = sl_e5m2_to_f32((uint8_t)b);
        if (!isnan(v)) CHECKF(sl_f32_to_e5m2(v) == b, "e5m2 %02x", b);
    }
    CHECK(sl_e4m3_to_f32(0x7e) == 448.0f);
    CHECK(sl_f32_to_e4m3(464.0f) == 0x7e);  /* tie to even -> 448 */
    CHECK(sl_f32_to_e4m3(465.0f) == 0x7f);  /* NaN, PyTorch semantics */
    CHECK(sl_e4m3_to_f32(0x01) == ldexpf(1.0f, -9));
    CHECK(sl_f32_to_e4m3(ldexpf(1.0f, -10)) == 0x00); /* tie to even -> 0 */
    CHECK(sl_e5m2_to_f32(0x7b) == 57344.0f);
    CHECK(sl_f32_to_e5m2(61440.0f) == 0x7c);
    CHECK(sl_f32_to_e5m2(61439.0f) == 0x7b);
    /* rounding: midpoints between two e4m3 codes go to the even mantissa */
    CHECK(sl_f32_to_e4m3(1.0625f) == sl_f32_to_e4m3(1.0f));
    CHECK(sl_f32_to_e4m3(1.1875f) == sl_f32_to_e4m3(1.25f));
}

SL_TEST(core_dtype_table) {
    CHECK(sl_dtype_row_bytes(SL_DTYPE_Q4_K, 512) == 288);
    CHECK(sl_dtype_row_bytes(SL_DTYPE_Q8_0, 64) == 68);
    CHECK(sl_dtype_row_bytes(SL_DTYPE_BF16, 3) == 6);
    CHECK(!sl_dtype_row_ok(SL_DTYPE_Q4_0, 33));
    CHECK(sl_dtype_from_name("fp8") == SL_DTYPE_F8_E4M3);
    CHECK(sl_dtype_from_name("q4_k") == SL_DTYPE_Q4_K);
    CHECK(sl_dtype_from_name("nope") == -1);
    CHECK(sl_dtype_from_ggml(12) == SL_DTYPE_Q4_K);
    CHECK(sl_dtype_from_ggml(16) == -1); /* IQ2_XXS: unsupported */
}

SL_TEST(core_tensor_views) {
    sl_tensor t = sl_tensor3(SL_DTYPE_BF16, 4, 3, 8);
    char buf[64];
    t.data = (void *)0x1000;
    CHECK(sl_tensor_numel(&t) == 96 && sl_tensor_nbytes(&t) == 192);
    CHECK(sl_tensor_nrows(&t) == 12 && sl_tensor_ncols(&t) == 8);
    sl_tensor r = sl_tensor_rows(&t, 1, 2);
    CHECK(r.ne[0] == 2 && (char *)r.data - (char *)t.data == 48);
    sl_tensor v = sl_reshape2(&t, 12, 8);
    CHECK(v.ndim == 2 && v.ne[0] == 12);
    CHECK(!strcmp(sl_tensor_desc(&t, buf, sizeof buf), "bf16[4, 3, 8]"));
}

typedef struct {
    int64_t *hits;
} pool_arg;

static void pool_fn(void *a_, int64_t b, int64_t e, int tid) {
    pool_arg *a = a_;
    (void)tid;
    for (int64_t i = b; i < e; i++) __atomic_add_fetch(&a->hits[i], 1, __ATOMIC_RELAXED);
}

SL_TEST(core_pool_covers_range_once) {
    sl_pool *p = sl_pool_create(4);
    REQUIRE(p);
    for (int rep = 0; rep < 50; rep++) {
        int64_t n = 1 + rep * 37;
        int64_t *hits = calloc((size_t)n, sizeof *hits);
        pool_arg a = {hits};
        sl_pool_for(p, n, 1, pool_fn, &a);
        for (int64_t i = 0; i < n; i++) CHECK(hits[i] == 1);
        free(hits);
    }
    sl_pool_free(p);
    sl_pool_free(NULL);
}

SL_TEST(core_rng_is_counter_based) {
    float a[64], b[16];
    sl_rng_normal(42, 0, 0, a, 64);
    sl_rng_normal(42, 0, 13, b, 16);
    for (int i = 0; i < 16; i++) CHECK(a[13 + i] == b[i]);
    double m = 0, v = 0;
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof *x);
    sl_rng_normal(7, 1, 0, x, N);
    for (int i = 0; i < N; i++) m += x[i];
    m /= N;
    for (int i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
    v /= N;
    CHECK_NEAR(m, 0.0, 0.02);
    CHECK_NEAR(v, 1.0, 0.03);
    free(x);
}

SL_TEST(core_err_first_wins) {
    sl_err e = {0};
    CHECK(sl_err_set(&e, SL_ERR_IO, "first %d", 1) == SL_ERR_IO);
    sl_err_set(&e, SL_ERR_FORMAT, "second");
    CHECK(e.status == SL_ERR_IO && !strcmp(e.msg, "first 1"));
    sl_err_prefix(&e, "ctx: ");
    CHECK(!strcmp(e.msg, "ctx: first 1"));
    CHECK(sl_err_set(NULL, SL_ERR_IO, "x") == SL_ERR_IO);
}
