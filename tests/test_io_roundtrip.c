/* Writer -> parser round trips for safetensors and GGUF (every storable dtype, block types
 * included), chunked writes, and writer failure paths. */
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "test.h"
#include "test_io_util.h"

/* Deterministic payload byte for tensor t, byte i. */
static uint8_t payload(int t, uint64_t i) {
    return (uint8_t)(i * 31u + (uint64_t)t * 7u + 1u);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

SL_TEST(io_st_roundtrip_all_dtypes) {
    char path[600];
    tmp_path(path, sizeof path, "rt.safetensors");
    sl_err err = {0};
    sl_st_writer *w = NULL;
    REQUIRE_OK(sl_st_writer_open(&w, path, &err), &err);
    REQUIRE_OK(sl_st_writer_meta(w, "format", "pt", &err), &err);
    REQUIRE_OK(sl_st_writer_meta(w, "quote\"and\\slash\n", "v\t\x01", &err), &err);
    int n = 0;
    sl_dtype dts[SL_DTYPE_COUNT];
    int64_t shapes[SL_DTYPE_COUNT][4];
    int ndims[SL_DTYPE_COUNT];
    for (int d = 0; d < SL_DTYPE_COUNT; d++) {
        if (!sl_st_dtype_string((sl_dtype)d)) continue;
        char name[64];
        snprintf(name, sizeof name, "layer.%d.%s", n, sl_dtype_name((sl_dtype)d));
        dts[n] = (sl_dtype)d;
        ndims[n] = n % 4 + 1;
        for (int k = 0; k < 4; k++)
            shapes[n][k] = 1 + (n + k) % 3;
        REQUIRE_OK(sl_st_writer_add(w, name, dts[n], ndims[n], shapes[n], &err), &err);
        n++;
    }
    /* a scalar and an empty tensor */
    REQUIRE_OK(sl_st_writer_add(w, "scalar", SL_DTYPE_F32, 0, NULL, &err), &err);
    REQUIRE_OK(sl_st_writer_add(w, "empty", SL_DTYPE_BF16, 2, (int64_t[]){0, 5}, &err), &err);
    CHECK(n == 12); /* F64 F32 F16 BF16 F8x2 I64 I32 I16 I8 U8 BOOL */
    REQUIRE_OK(sl_st_writer_begin_data(w, &err), &err);
    for (int t = 0; t < n; t++) {
        uint64_t nb = (uint64_t)sl_dtype_get(dts[t])->bsize;
        for (int k = 0; k < ndims[t]; k++)
            nb *= (uint64_t)shapes[t][k];
        for (uint64_t i = 0; i < nb; i++) { /* byte by byte: chunks of any size */
            uint8_t b = payload(t, i);
            REQUIRE_OK(sl_st_writer_write(w, &b, 1, &err), &err);
        }
    }
    float one = 1.5f;
    REQUIRE_OK(sl_st_writer_write(w, &one, 4, &err), &err);
    REQUIRE_OK(sl_st_writer_close(w, &err), &err);

    sl_mapfile m;
    REQUIRE_OK(sl_mapfile_open(&m, path, &err), &err);
    uint64_t n8 = 0;
    for (int i = 7; i >= 0; i--)
        n8 = n8 << 8 | m.data[i];
    CHECK(n8 % 8 == 0); /* header padded to 8 */
    CHECK(m.data[8] == '{');
    sl_st_file f;
    sl_status st = sl_st_parse(m.data, m.size, path, &f, &err);
    if (st != SL_OK) {
        sl_mapfile_close(&m);
        REQUIRE_OK(st, &err);
    }
    CHECK(f.n_tensors == n + 2);
    CHECK(f.data_start == 8 + n8);
    CHECK(f.n_meta == 2);
    if (f.n_meta == 2) {
        CHECK(!strcmp(f.meta[0].key, "format") && !strcmp(f.meta[0].value, "pt"));
        CHECK(!strcmp(f.meta[1].key, "quote\"and\\slash\n") && !strcmp(f.meta[1].value, "v\t\x01"));
    }
    for (int t = 0; t < n && t < f.n_tensors; t++) {
        const sl_st_tensor *x = &f.tensors[t];
        CHECK(x->dtype == dts[t]);
        CHECK(x->ndim == ndims[t]);
        for (int k = 0; k < ndims[t]; k++)
            CHECK(x->ne[k] == shapes[t][k]);
        for (int k = ndims[t]; k < 4; k++)
            CHECK(x->ne[k] == 1);
        for (uint64_t i = 0; i < x->nbytes; i++)
            if (m.data[x->offset + i] != payload(t, i)) {
                CHECKF(0, "tensor %s byte %llu differs", x->name, (unsigned long long)i);
                break;
            }
    }
    if (f.n_tensors == n + 2) {
        const sl_st_tensor *s = &f.tensors[n], *e = &f.tensors[n + 1];
        CHECK(!strcmp(s->name, "scalar") && s->ndim == 0 && s->nbytes == 4);
        float v;
        memcpy(&v, m.data + s->offset, 4);
        CHECK(v == 1.5f);
        CHECK(!strcmp(e->name, "empty") && e->ndim == 2 && e->ne[0] == 0 && e->nbytes == 0);
    }
    sl_st_file_free(&f);
    sl_mapfile_close(&m);
}

SL_TEST(io_st_writer_errors) {
    char path[600];
    tmp_path(path, sizeof path, "bad.safetensors");
    sl_err err = {0};
    sl_st_writer *w = NULL;
    REQUIRE_OK(sl_st_writer_open(&w, path, &err), &err);
    CHECK(sl_st_writer_add(w, "q", SL_DTYPE_Q4_K, 1, (int64_t[]){256}, &err) == SL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "q4_k") != NULL);
    sl_err_clear(&err);
    REQUIRE_OK(sl_st_writer_add(w, "a", SL_DTYPE_F32, 1, (int64_t[]){4}, &err), &err);
    REQUIRE_OK(sl_st_writer_begin_data(w, &err), &err);
    uint8_t buf[32] = {0};
    CHECK(sl_st_writer_write(w, buf, 17, &err) == SL_ERR_INVALID_ARG); /* more than declared */
    sl_err_clear(&err);
    REQUIRE_OK(sl_st_writer_write(w, buf, 8, &err), &err);
    CHECK(file_exists(path));
    CHECK(sl_st_writer_close(w, &err) == SL_ERR_INVALID_ARG); /* 8 of 16 bytes */
    CHECK(strstr(err.msg, "8 of 16") != NULL);
    CHECK(!file_exists(path)); /* partial file removed */

    sl_err_clear(&err);
    REQUIRE_OK(sl_st_writer_open(&w, path, &err), &err);
    REQUIRE_OK(sl_st_writer_add(w, "a", SL_DTYPE_F32, 1, (int64_t[]){4}, &err), &err);
    REQUIRE_OK(sl_st_writer_add(w, "a", SL_DTYPE_F32, 1, (int64_t[]){4}, &err), &err);
    CHECK(sl_st_writer_begin_data(w, &err) == SL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "'a' declared twice") != NULL);
    sl_st_writer_abort(w);
    CHECK(!file_exists(path));

    sl_err_clear(&err);
    CHECK(sl_st_writer_open(&w, "/nonexistent-dir-sluice/x.safetensors", &err) == SL_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent-dir-sluice/x.safetensors") != NULL);
    sl_st_writer_abort(NULL);
    CHECK(sl_st_writer_close(NULL, &err) == SL_OK);
}

SL_TEST(io_gguf_roundtrip_all_dtypes) {
    char path[600];
    tmp_path(path, sizeof path, "rt.gguf");
    sl_err err = {0};
    sl_gguf_writer *w = NULL;
    REQUIRE_OK(sl_gguf_writer_open(&w, path, &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_str(w, "general.architecture", "zimage", &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_u32(w, "test.u32", 123456789u, &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_f32(w, "test.f32", -2.25f, &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_i32_array(w, "test.arr", (int32_t[]){-1, 2, 3}, 3, &err), &err);
    CHECK(sl_gguf_writer_kv_u32(w, "test.u32", 1, &err) == SL_ERR_INVALID_ARG);
    sl_err_clear(&err);
    int n = 0;
    sl_dtype dts[SL_DTYPE_COUNT];
    int64_t shapes[SL_DTYPE_COUNT][4];
    int ndims[SL_DTYPE_COUNT];
    uint64_t nbytes[SL_DTYPE_COUNT];
    for (int d = 0; d < SL_DTYPE_COUNT; d++) {
        const sl_dtype_info *di = sl_dtype_get((sl_dtype)d);
        if (di->ggml_type < 0) continue;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.%s.weight", n, di->name);
        dts[n] = (sl_dtype)d;
        ndims[n] = n % 4 + 1;
        for (int k = 0; k < 4; k++)
            shapes[n][k] = 1 + (n + k) % 3;
        shapes[n][ndims[n] - 1] = 2 * di->blck; /* whole blocks in the innermost dimension */
        nbytes[n] = 2 * (uint64_t)di->bsize;
        for (int k = 0; k + 1 < ndims[n]; k++)
            nbytes[n] *= (uint64_t)shapes[n][k];
        REQUIRE_OK(sl_gguf_writer_add(w, name, dts[n], ndims[n], shapes[n], &err), &err);
        n++;
    }
    CHECK(n == 18); /* F32 F16 BF16, 10 block types, F64 I32 I64 I16 I8 */
    CHECK(sl_gguf_writer_add(w, "bad", SL_DTYPE_Q4_0, 2, (int64_t[]){2, 48}, &err) ==
          SL_ERR_INVALID_ARG);
    CHECK(sl_gguf_writer_add(w, "fp8", SL_DTYPE_F8_E4M3, 1, (int64_t[]){4}, &err) ==
          SL_ERR_INVALID_ARG);
    sl_err_clear(&err);
    REQUIRE_OK(sl_gguf_writer_begin_data(w, &err), &err);
    /* write everything in odd-sized chunks that straddle tensor boundaries */
    uint64_t total = 0;
    for (int t = 0; t < n; t++)
        total += nbytes[t];
    uint8_t *all = malloc(total);
    REQUIRE(all);
    for (int t = 0, o = 0; t < n; o += (int)nbytes[t], t++)
        for (uint64_t i = 0; i < nbytes[t]; i++)
            all[o + i] = payload(t, i);
    for (uint64_t o = 0; o < total;) {
        size_t k = (size_t)SL_MIN((uint64_t)37, total - o);
        REQUIRE_OK(sl_gguf_writer_write(w, all + o, k, &err), &err);
        o += k;
    }
    free(all);
    REQUIRE_OK(sl_gguf_writer_close(w, &err), &err);

    size_t len;
    uint8_t *buf = read_file(path, &len);
    REQUIRE(buf);
    sl_gguf_file f;
    sl_status st = sl_gguf_parse(buf, len, path, &f, &err);
    if (st) free(buf);
    REQUIRE_OK(st, &err);
    CHECK(f.version == 3 && f.alignment == 32 && f.data_start % 32 == 0);
    CHECK(f.n_tensors == n);
    CHECK(f.n_kvs == 5); /* 4 + general.quantization_version */
    const sl_gguf_kv *kv = sl_gguf_find_kv(&f, "general.architecture");
    CHECK(kv && kv->type == SL_GGUF_STRING && !strcmp(kv->str, "zimage"));
    kv = sl_gguf_find_kv(&f, "test.u32");
    CHECK(kv && kv->type == SL_GGUF_U32 && kv->v.u == 123456789u);
    kv = sl_gguf_find_kv(&f, "test.f32");
    CHECK(kv && kv->type == SL_GGUF_F32 && kv->v.f == -2.25);
    kv = sl_gguf_find_kv(&f, "test.arr");
    CHECK(kv && kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_I32 && kv->arr_count == 3);
    if (kv) CHECK(sl_gguf_arr_int(buf, kv, 0) == -1 && sl_gguf_arr_int(buf, kv, 2) == 3);
    kv = sl_gguf_find_kv(&f, "general.quantization_version");
    CHECK(kv && kv->type == SL_GGUF_U32 && kv->v.u == 2);
    CHECK(sl_gguf_find_kv(&f, "nope") == NULL);
    uint64_t expect_off = f.data_start;
    for (int t = 0; t < n && t < f.n_tensors; t++) {
        const sl_gguf_tensor *x = &f.tensors[t];
        CHECK(x->dtype == dts[t]);
        CHECK(x->ggml_type == (uint32_t)sl_dtype_get(dts[t])->ggml_type);
        CHECK(x->ndim == ndims[t]);
        for (int k = 0; k < ndims[t]; k++)
            CHECK(x->ne[k] == shapes[t][k]);
        CHECK(x->nbytes == nbytes[t]);
        CHECK(x->offset == expect_off); /* ggml's strict layout: padded, in info order */
        expect_off += SL_ALIGN_UP(x->nbytes, 32);
        for (uint64_t i = 0; i < x->nbytes; i++)
            if (buf[x->offset + i] != payload(t, i)) {
                CHECKF(0, "tensor %s byte %llu differs", x->name, (unsigned long long)i);
                break;
            }
    }
    CHECK(len == expect_off); /* the last tensor is padded too */
    sl_gguf_file_free(&f);
    free(buf);
}

SL_TEST(io_gguf_writer_alignment_and_errors) {
    char path[600];
    tmp_path(path, sizeof path, "al.gguf");
    sl_err err = {0};
    sl_gguf_writer *w = NULL;
    REQUIRE_OK(sl_gguf_writer_open(&w, path, &err), &err);
    CHECK(sl_gguf_writer_kv_u32(w, "general.alignment", 48, &err) == SL_ERR_INVALID_ARG);
    sl_err_clear(&err);
    REQUIRE_OK(sl_gguf_writer_kv_u32(w, "general.alignment", 64, &err), &err);
    REQUIRE_OK(sl_gguf_writer_add(w, "a", SL_DTYPE_F32, 1, (int64_t[]){3}, &err), &err);
    REQUIRE_OK(sl_gguf_writer_add(w, "z", SL_DTYPE_F16, 2, (int64_t[]){0, 3}, &err), &err);
    REQUIRE_OK(sl_gguf_writer_add(w, "b", SL_DTYPE_F16, 1, (int64_t[]){5}, &err), &err);
    REQUIRE_OK(sl_gguf_writer_begin_data(w, &err), &err);
    uint8_t d[22];
    for (int i = 0; i < 22; i++)
        d[i] = (uint8_t)(i + 1);
    REQUIRE_OK(sl_gguf_writer_write(w, d, 22, &err), &err);
    CHECK(sl_gguf_writer_write(w, d, 1, &err) == SL_ERR_INVALID_ARG);
    sl_err_clear(&err);
    REQUIRE_OK(sl_gguf_writer_close(w, &err), &err);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    REQUIRE(buf);
    sl_gguf_file f;
    sl_status st = sl_gguf_parse(buf, len, path, &f, &err);
    if (st) free(buf);
    REQUIRE_OK(st, &err);
    CHECK(f.alignment == 64 && f.data_start % 64 == 0);
    CHECK(sl_gguf_find_kv(&f, "general.quantization_version") == NULL); /* nothing quantised */
    REQUIRE(f.n_tensors == 3);
    CHECK(f.tensors[0].offset == f.data_start && f.tensors[0].nbytes == 12);
    CHECK(f.tensors[1].nbytes == 0 && f.tensors[1].ne[0] == 0 && f.tensors[1].ne[1] == 3);
    CHECK(f.tensors[2].offset == f.data_start + 64 && f.tensors[2].nbytes == 10);
    CHECK(buf[f.tensors[2].offset] == 13 && buf[f.tensors[2].offset + 9] == 22);
    CHECK(len == f.data_start + 128);
    sl_gguf_file_free(&f);
    free(buf);

    /* short write: close fails and removes the file */
    REQUIRE_OK(sl_gguf_writer_open(&w, path, &err), &err);
    REQUIRE_OK(sl_gguf_writer_add(w, "a", SL_DTYPE_F32, 1, (int64_t[]){3}, &err), &err);
    REQUIRE_OK(sl_gguf_writer_begin_data(w, &err), &err);
    REQUIRE_OK(sl_gguf_writer_write(w, d, 5, &err), &err);
    CHECK(sl_gguf_writer_close(w, &err) == SL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "'a' got 5 of its 12 bytes") != NULL);
    CHECK(!file_exists(path));
    sl_err_clear(&err);
    REQUIRE_OK(sl_gguf_writer_open(&w, path, &err), &err);
    CHECK(file_exists(path));
    sl_gguf_writer_abort(w);
    CHECK(!file_exists(path));
}
