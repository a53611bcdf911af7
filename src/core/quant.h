/* core/quant.h — converting rows of any weight dtype to and from f32.
 *
 * Byte layouts are GGUF's exactly (specs/formats.md §4); dequantisation reproduces the ggml CPU
 * reference bit for bit (the stated f32 evaluation order, no FMA contraction). n is the number
 * of elements and must be a whole number of blocks of the type. src may be unaligned. */
#ifndef SL_CORE_QUANT_H
#define SL_CORE_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

/* dst[0..n) = the values of n elements of type t at src. Any dtype with is_float set. */
void sl_dequant_row(sl_dtype t, const void *src, float *dst, int64_t n);

/* True when sl_quant_row can write type t (f32, f16, bf16, f8_e4m3, f8_e5m2, q8_0, q4_0, q4_k,
 * and any further block type implemented). */
bool sl_quant_supported(sl_dtype t);

/* Encode n f32 values into type t at dst (reference quantisers of formats.md §5; fp8 saturates
 * to the finite range first, as checkpoint producers do). Asserts sl_quant_supported(t). */
void sl_quant_row(sl_dtype t, const float *src, void *dst, int64_t n);

#endif
