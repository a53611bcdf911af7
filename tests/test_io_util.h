/* tests/test_io_util.h — helpers shared by the io tests: byte-buffer builders for hand-made
 * safetensors/GGUF files and small file utilities. Header-only (static functions). */
#ifndef SL_TESTS_TEST_IO_UTIL_H
#define SL_TESTS_TEST_IO_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef struct tbuf {
    uint8_t *p;
    size_t n, cap;
} tbuf;

static inline void tb_put(tbuf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        SL_ASSERT(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static inline void tb_le(tbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    tb_put(b, t, (size_t)n);
}
static inline void tb_u8(tbuf *b, uint8_t v) {
    tb_le(b, v, 1);
}
static inline void tb_u32(tbuf *b, uint32_t v) {
    tb_le(b, v, 4);
}
static inline void tb_u64(tbuf *b, uint64_t v) {
    tb_le(b, v, 8);
}
static inline void tb_zeros(tbuf *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        tb_u8(b, 0);
}
static inline void tb_gstr(tbuf *b, const char *s) { /* GGUF string */
    tb_u64(b, strlen(s));
    tb_put(b, s, strlen(s));
}
static inline void tb_free(tbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* A safetensors file: u64 N + header text + `data_len` bytes of data (i & 255 pattern). */
static inline tbuf st_bytes(const char *header, size_t data_len) {
    tbuf b = {0};
    tb_u64(&b, strlen(header));
    tb_put(&b, header, strlen(header));
    for (size_t i = 0; i < data_len; i++)
        tb_u8(&b, (uint8_t)i);
    return b;
}

static inline int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static inline uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(sz > 0 ? (size_t)sz : 1);
    if (p && sz > 0 && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = sz > 0 ? (size_t)sz : 0;
    return p;
}

static inline const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", sl_test_tmpdir(), name);
    return buf;
}

#endif
