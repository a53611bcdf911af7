/* Row conversions between any float dtype and f32 for the CPU backend. f32/f16/bf16/fp8 are
 * converted here (the hot paths of activations and common weights); block types go through the
 * quant module's sl_dequant_row, which reproduces ggml's dequantisation exactly. */
#include <pthread.h>
#include <string.h>

#include "backend/cpu/cpu_impl.h"
#include "core/quant.h"

/* Lookup tables for the 16- and 8-bit float types (exact: built with the core conversions). */
static float g_f16[65536], g_e4m3[256], g_e5m2[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void tables_init(void) {
    for (uint32_t i = 0; i < 65536; i++) g_f16[i] = sl_f16_to_f32((uint16_t)i);
    for (uint32_t i = 0; i < 256; i++) {
        g_e4m3[i] = sl_e4m3_to_f32((uint8_t)i);
        g_e5m2[i] = sl_e5m2_to_f32((uint8_t)i);
    }
}

bool cpu_can_load(sl_dtype dt) { return sl_dtype_get(dt)->is_float; }

void cpu_load(sl_dtype dt, const void *src, int64_t off, float *dst, int64_t n) {
    switch (dt) {
    case SL_DTYPE_F32:
        memcpy(dst, (const float *)src + off, (size_t)n * sizeof(float));
        return;
    case SL_DTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)src + off;
        uint32_t *d = (uint32_t *)(void *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
        return;
    }
    case SL_DTYPE_F16: {
        pthread_once(&g_once, tables_init);
        const uint16_t *s = (const uint16_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = g_f16[s[i]];
        return;
    }
    case SL_DTYPE_F8_E4M3: {
        pthread_once(&g_once, tables_init);
        const uint8_t *s = (const uint8_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = g_e4m3[s[i]];
        return;
    }
    case SL_DTYPE_F8_E5M2: {
        pthread_once(&g_once, tables_init);
        const uint8_t *s = (const uint8_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = g_e5m2[s[i]];
        return;
    }
    default: {
        const sl_dtype_info *d = sl_dtype_get(dt);
        SL_ASSERTF(d->is_quant && off % d->blck == 0 && n % d->blck == 0,
                   "cpu_load: %s at element %lld, %lld elements", d->name, (long long)off,
                   (long long)n);
        sl_dequant_row(dt, (const char *)src + (size_t)(off / d->blck) * (size_t)d->bsize, dst, n);
        return;
    }
    }
}

void cpu_store(sl_dtype dt, void *dst, int64_t off, const float *src, int64_t n) {
    switch (dt) {
    case SL_DTYPE_F32:
        memcpy((float *)dst + off, src, (size_t)n * sizeof(float));
        return;
    case SL_DTYPE_BF16: {
        uint16_t *d = (uint16_t *)dst + off;
        for (int64_t i = 0; i < n; i++) d[i] = sl_f32_to_bf16(src[i]);
        return;
    }
    case SL_DTYPE_F16: {
        uint16_t *d = (uint16_t *)dst + off;
        for (int64_t i = 0; i < n; i++) d[i] = sl_f32_to_f16(src[i]);
        return;
    }
    default:
        SL_ASSERTF(0, "cpu_store: %s is not an activation dtype", sl_dtype_name(dt));
    }
}
