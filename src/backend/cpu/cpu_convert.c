/* Row conversions between any float dtype and f32 for the CPU backend. f32/f16/bf16/fp8 are
 * converted here (the hot paths of activations and common weights); block types go through the
 * quant module's sl_dequant_row, which reproduces ggml's dequantisation exactly. */
#include <string.h>

#include "backend/cpu/cpu_impl.h"
#include "core/quant.h"

/* Until core/quant.c lands, block types are reported unsupported instead of breaking the link.
 * TODO(cpu): drop this weak reference once sl_dequant_row is in the tree. */
#pragma weak sl_dequant_row

bool cpu_can_load(sl_dtype dt) {
    const sl_dtype_info *d = sl_dtype_get(dt);
    return d->is_float && (!d->is_quant || sl_dequant_row != NULL);
}

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
        const uint16_t *s = (const uint16_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = sl_f16_to_f32(s[i]);
        return;
    }
    case SL_DTYPE_F8_E4M3: {
        const uint8_t *s = (const uint8_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = sl_e4m3_to_f32(s[i]);
        return;
    }
    case SL_DTYPE_F8_E5M2: {
        const uint8_t *s = (const uint8_t *)src + off;
        for (int64_t i = 0; i < n; i++) dst[i] = sl_e5m2_to_f32(s[i]);
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
