/* core/dtype.h — element types of weights and activations, and scalar float conversions.
 *
 * Block types (Q4_0 … Q6_K) are the GGUF layouts byte for byte (specs/formats.md §4); a row of a
 * quantised tensor holds ne/blck blocks. The scalar conversions follow formats.md §6 exactly
 * (round to nearest even; fp8 e4m3fn encodes out-of-range values as NaN like PyTorch). */
#ifndef SL_CORE_DTYPE_H
#define SL_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum sl_dtype {
    SL_DTYPE_F32 = 0,
    SL_DTYPE_F16,
    SL_DTYPE_BF16,
    SL_DTYPE_F8_E4M3,
    SL_DTYPE_F8_E5M2,
    SL_DTYPE_Q4_0,
    SL_DTYPE_Q4_1,
    SL_DTYPE_Q5_0,
    SL_DTYPE_Q5_1,
    SL_DTYPE_Q8_0,
    SL_DTYPE_Q2_K,
    SL_DTYPE_Q3_K,
    SL_DTYPE_Q4_K,
    SL_DTYPE_Q5_K,
    SL_DTYPE_Q6_K,
    SL_DTYPE_F64, /* files only: converted at load or rejected */
    SL_DTYPE_I32,
    SL_DTYPE_I64,
    SL_DTYPE_I16,
    SL_DTYPE_I8,
    SL_DTYPE_U8,
    SL_DTYPE_BOOL,
    SL_DTYPE_COUNT
} sl_dtype;

typedef struct sl_dtype_info {
    const char *name;    /* "bf16", "q4_k", ... (lower case, as the CLI spells them) */
    int blck;            /* elements per block (1 for scalar types) */
    int bsize;           /* bytes per block */
    bool is_float;       /* a floating-point weight/activation type sl_dequant_row accepts */
    bool is_quant;       /* a GGUF block type */
    int ggml_type;       /* the GGUF/ggml type id, -1 if none */
} sl_dtype_info;

const sl_dtype_info *sl_dtype_get(sl_dtype t);
static inline const char *sl_dtype_name(sl_dtype t) { return sl_dtype_get(t)->name; }
/* Parse a name as the CLI spells it ("bf16", "fp8"/"f8_e4m3", "q8_0", ...); -1 if unknown. */
int sl_dtype_from_name(const char *name);
/* The sl_dtype for a ggml type id, or -1 when the id is unknown or unsupported. */
int sl_dtype_from_ggml(uint32_t ggml_type);

/* Bytes for n elements (n must be a multiple of the block size; asserts otherwise). */
size_t sl_dtype_row_bytes(sl_dtype t, int64_t n);
/* True when n elements of t form whole blocks. */
bool sl_dtype_row_ok(sl_dtype t, int64_t n);

/* ---- scalar conversions (formats.md §6) ---- */
static inline uint32_t sl_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float sl_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float sl_bf16_to_f32(uint16_t h) { return sl_bits_f32((uint32_t)h << 16); }
static inline uint16_t sl_f32_to_bf16(float f) {
    uint32_t u = sl_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float sl_f16_to_f32(uint16_t h);
uint16_t sl_f32_to_f16(float f);
float sl_e4m3_to_f32(uint8_t b);
uint8_t sl_f32_to_e4m3(float f); /* PyTorch semantics: |x| > 464 -> NaN; clamp first to saturate */
float sl_e5m2_to_f32(uint8_t b);
uint8_t sl_f32_to_e5m2(float f);

#endif
