/* GGUF parser (formats.md §2): hand-built files (every KV type, nested arrays, v2, reversed
 * dims, orig_shape, no trailing padding) and one test per malformed case. */
#include "io/gguf.h"
#include "test.h"
#include "test_io_util.h"

typedef struct gt {
    const char *name;
    uint32_t nd;
    uint64_t ne[5]; /* innermost first, as stored */
    uint32_t type;
    uint64_t off;
} gt;

/* magic, version, counts, the given KV bytes, tensor infos, zero padding to `align`, then
 * data_len bytes. */
static tbuf gguf_build(uint32_t version, const tbuf *kvs, uint64_t n_kv, const gt *ts, int nt,
                       uint32_t align, size_t data_len) {
    tbuf b = {0};
    tb_put(&b, "GGUF", 4);
    tb_u32(&b, version);
    tb_u64(&b, (uint64_t)nt);
    tb_u64(&b, n_kv);
    if (kvs && kvs->n) tb_put(&b, kvs->p, kvs->n);
    for (int i = 0; i < nt; i++) {
        tb_gstr(&b, ts[i].name);
        tb_u32(&b, ts[i].nd);
        for (uint32_t j = 0; j < ts[i].nd; j++)
            tb_u64(&b, ts[i].ne[j]);
        tb_u32(&b, ts[i].type);
        tb_u64(&b, ts[i].off);
    }
    while (b.n % align)
        tb_u8(&b, 0);
    for (size_t i = 0; i < data_len; i++)
        tb_u8(&b, (uint8_t)(i + 1));
    return b;
}

static sl_status parse_buf(const tbuf *b, sl_gguf_file *f, sl_err *err) {
    sl_err_clear(err);
    return sl_gguf_parse(b->p, b->n, "t.gguf", f, err);
}

#define EXPECT_GGUF_FAIL(bufp, status, needle)                                                     \
    do {                                                                                           \
        sl_gguf_file f_;                                                                           \
        sl_err e_ = {0};                                                                           \
        sl_status s_ = parse_buf((bufp), &f_, &e_);                                                \
        CHECKF(s_ == (status), "status %s, want %s (%s)", sl_status_str(s_),                       \
               sl_status_str(status), e_.msg);                                                     \
        CHECKF(strstr(e_.msg, "t.gguf") && strstr(e_.msg, (needle)), "message lacks '%s': %s",     \
               (needle), e_.msg);                                                                  \
        CHECK(f_.n_tensors == 0 && f_.tensors == NULL && f_.kvs == NULL);                          \
        if (s_ == SL_OK) sl_gguf_file_free(&f_);                                                   \
    } while (0)

static void kv_u32(tbuf *k, const char *key, uint32_t v) {
    tb_gstr(k, key);
    tb_u32(k, SL_GGUF_U32);
    tb_u32(k, v);
}

SL_TEST(io_gguf_hand_built_valid) {
    tbuf k = {0};
    int nkv = 0;
    /* every scalar type */
    tb_gstr(&k, "a.u8"), tb_u32(&k, SL_GGUF_U8), tb_u8(&k, 200), nkv++;
    tb_gstr(&k, "a.i8"), tb_u32(&k, SL_GGUF_I8), tb_u8(&k, 0xfe), nkv++;
    tb_gstr(&k, "a.u16"), tb_u32(&k, SL_GGUF_U16), tb_le(&k, 60000, 2), nkv++;
    tb_gstr(&k, "a.i16"), tb_u32(&k, SL_GGUF_I16), tb_le(&k, 0xfffd, 2), nkv++;
    kv_u32(&k, "a.u32", 4000000000u), nkv++;
    tb_gstr(&k, "a.i32"), tb_u32(&k, SL_GGUF_I32), tb_u32(&k, 0xfffffffcu), nkv++;
    tb_gstr(&k, "a.f32"), tb_u32(&k, SL_GGUF_F32), tb_u32(&k, 0x3fc00000u), nkv++; /* 1.5 */
    tb_gstr(&k, "a.bool"), tb_u32(&k, SL_GGUF_BOOL), tb_u8(&k, 1), nkv++;
    tb_gstr(&k, "general.architecture"), tb_u32(&k, SL_GGUF_STRING), tb_gstr(&k, "flux"), nkv++;
    tb_gstr(&k, "a.u64"), tb_u32(&k, SL_GGUF_U64), tb_u64(&k, 1ull << 40), nkv++;
    tb_gstr(&k, "a.i64"), tb_u32(&k, SL_GGUF_I64), tb_u64(&k, (uint64_t)-5), nkv++;
    tb_gstr(&k, "a.f64"), tb_u32(&k, SL_GGUF_F64), tb_u64(&k, 0xc004000000000000ull),
        nkv++; /* -2.5 */
    /* arrays: of strings, of f32, empty, and nested (array of 2 arrays of u16 / string) */
    tb_gstr(&k, "tok.tokens"), tb_u32(&k, SL_GGUF_ARRAY), tb_u32(&k, SL_GGUF_STRING), tb_u64(&k, 3);
    tb_gstr(&k, "x"), tb_gstr(&k, ""), tb_gstr(&k, "yz"), nkv++;
    tb_gstr(&k, "tok.scores"), tb_u32(&k, SL_GGUF_ARRAY), tb_u32(&k, SL_GGUF_F32), tb_u64(&k, 2);
    tb_u32(&k, 0), tb_u32(&k, 0x3f800000u), nkv++;
    tb_gstr(&k, "a.empty"), tb_u32(&k, SL_GGUF_ARRAY), tb_u32(&k, SL_GGUF_I64), tb_u64(&k, 0),
        nkv++;
    tb_gstr(&k, "a.nested"), tb_u32(&k, SL_GGUF_ARRAY), tb_u32(&k, SL_GGUF_ARRAY), tb_u64(&k, 2);
    tb_u32(&k, SL_GGUF_U16), tb_u64(&k, 3), tb_le(&k, 1, 2), tb_le(&k, 2, 2), tb_le(&k, 3, 2);
    tb_u32(&k, SL_GGUF_STRING), tb_u64(&k, 1), tb_gstr(&k, "deep"), nkv++;
    kv_u32(&k, "z.after_nested", 7), nkv++;
    /* tensors: data order differs from info order; the last one has no trailing padding */
    gt ts[] = {
        {"w", 2, {4, 3}, 0, 32},        /* F32 [3, 4] = 48 bytes at 32..80 */
        {"b", 1, {5}, 1, 0},            /* F16 [5] = 10 bytes at 0..10 */
        {"q", 2, {32, 2}, 8, 96},       /* Q8_0 [2, 32] = 68 bytes at 96..164 */
        {"s", 0, {0}, 0, 192},          /* scalar F32 at 192..196 */
        {"k", 3, {256, 1, 2}, 12, 224}, /* Q4_K [2, 1, 256] = 288 bytes */
        {"z", 2, {0, 7}, 30, 512},      /* empty BF16 [7, 0] at the very end */
    };
    tbuf b = gguf_build(2, &k, (uint64_t)nkv, ts, 6, 32, 512);
    sl_gguf_file f;
    sl_err err = {0};
    sl_status st = parse_buf(&b, &f, &err);
    if (st) tb_free(&b), tb_free(&k);
    REQUIRE_OK(st, &err);
    CHECK(f.version == 2 && f.alignment == 32 && f.n_kvs == nkv && f.n_tensors == 6);
    const sl_gguf_kv *kv;
    CHECK((kv = sl_gguf_find_kv(&f, "a.u8")) && kv->type == SL_GGUF_U8 && kv->v.u == 200);
    CHECK((kv = sl_gguf_find_kv(&f, "a.i8")) && kv->v.i == -2);
    CHECK((kv = sl_gguf_find_kv(&f, "a.u16")) && kv->v.u == 60000);
    CHECK((kv = sl_gguf_find_kv(&f, "a.i16")) && kv->v.i == -3);
    CHECK((kv = sl_gguf_find_kv(&f, "a.u32")) && kv->v.u == 4000000000u);
    CHECK((kv = sl_gguf_find_kv(&f, "a.i32")) && kv->v.i == -4);
    CHECK((kv = sl_gguf_find_kv(&f, "a.f32")) && kv->v.f == 1.5);
    CHECK((kv = sl_gguf_find_kv(&f, "a.bool")) && kv->v.b);
    CHECK((kv = sl_gguf_find_kv(&f, "general.architecture")) && !strcmp(kv->str, "flux"));
    CHECK((kv = sl_gguf_find_kv(&f, "a.u64")) && kv->v.u == 1ull << 40);
    CHECK((kv = sl_gguf_find_kv(&f, "a.i64")) && kv->v.i == -5);
    CHECK((kv = sl_gguf_find_kv(&f, "a.f64")) && kv->v.f == -2.5);
    CHECK((kv = sl_gguf_find_kv(&f, "tok.tokens")) && kv->arr_type == SL_GGUF_STRING &&
          kv->arr_count == 3 && b.p[kv->arr_offset] == 1 && b.p[kv->arr_offset + 8] == 'x');
    CHECK((kv = sl_gguf_find_kv(&f, "a.nested")) && kv->arr_type == SL_GGUF_ARRAY &&
          kv->arr_count == 2);
    CHECK((kv = sl_gguf_find_kv(&f, "z.after_nested")) && kv->v.u == 7);
    /* array element access */
    if ((kv = sl_gguf_find_kv(&f, "tok.tokens"))) {
        sl_gguf_str_iter it = sl_gguf_arr_strings(b.p, kv);
        const char *s;
        size_t n;
        CHECK(sl_gguf_arr_next_str(&it, &s, &n) && n == 1 && s[0] == 'x');
        CHECK(sl_gguf_arr_next_str(&it, &s, &n) && n == 0);
        CHECK(sl_gguf_arr_next_str(&it, &s, &n) && n == 2 && !memcmp(s, "yz", 2));
        CHECK(!sl_gguf_arr_next_str(&it, &s, &n));
    }
    if ((kv = sl_gguf_find_kv(&f, "tok.scores"))) CHECK(sl_gguf_arr_float(b.p, kv, 1) == 1.0);
    uint64_t ds = f.data_start;
    CHECK(ds % 32 == 0 && b.n == ds + 512);
    const sl_gguf_tensor *t = f.tensors;
    CHECK(!strcmp(t[0].name, "w") && t[0].ndim == 2 && t[0].ne[0] == 3 && t[0].ne[1] == 4);
    CHECK(t[0].offset == ds + 32 && t[0].nbytes == 48 && t[0].dtype == SL_DTYPE_F32);
    CHECK(t[1].ndim == 1 && t[1].ne[0] == 5 && t[1].nbytes == 10 && t[1].offset == ds);
    CHECK(t[2].dtype == SL_DTYPE_Q8_0 && t[2].ne[0] == 2 && t[2].ne[1] == 32 && t[2].nbytes == 68);
    CHECK(t[3].ndim == 0 && t[3].nbytes == 4);
    CHECK(t[4].dtype == SL_DTYPE_Q4_K && t[4].ndim == 3 && t[4].ne[0] == 2 && t[4].ne[1] == 1 &&
          t[4].ne[2] == 256 && t[4].nbytes == 288 && t[4].ggml_type == 12);
    CHECK(t[5].dtype == SL_DTYPE_BF16 && t[5].nbytes == 0 && t[5].ne[0] == 7 && t[5].ne[1] == 0);
    sl_gguf_file_free(&f);
    sl_gguf_file_free(&f);
    sl_gguf_file_free(NULL);

    /* the last tensor's data may end exactly at the end of the file (no padding after it) */
    gt one[] = {{"w", 1, {3}, 0, 0}};
    tb_free(&b);
    b = gguf_build(3, NULL, 0, one, 1, 32, 12);
    REQUIRE_OK(parse_buf(&b, &f, &err), &err);
    CHECK(f.tensors[0].offset + 12 == b.n);
    sl_gguf_file_free(&f);
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_bad_magic) {
    tbuf b = gguf_build(3, NULL, 0, NULL, 0, 1, 0);
    b.p[0] = 'g';
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "bad magic 67 47 55 46 at offset 0");
    b.n = 3;
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "too short");
    tb_free(&b);
}

SL_TEST(io_gguf_bad_version) {
    tbuf b = gguf_build(1, NULL, 0, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "GGUF version 1");
    tb_free(&b);
    b = gguf_build(0x03000000u, NULL, 0, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "big-endian");
    tb_free(&b);
    b = gguf_build(4, NULL, 0, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "version 4");
    tb_free(&b);
    b = gguf_build(0, NULL, 0, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "version 0");
    tb_free(&b);
}

SL_TEST(io_gguf_truncated_header) {
    tbuf b = gguf_build(3, NULL, 0, NULL, 0, 1, 0);
    b.n = 20; /* inside the KV count */
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "truncated: KV count");
    tb_free(&b);
}

SL_TEST(io_gguf_absurd_counts) {
    tbuf b = gguf_build(3, NULL, 0, NULL, 0, 1, 64);
    b.p[8 + 5] = 1; /* tensor count 2^40 */
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "tensor count 1099511627776 (offset 8) cannot fit");
    tb_free(&b);
    b = gguf_build(3, NULL, 0, NULL, 0, 1, 64);
    b.p[16 + 7] = 0x80; /* KV count >= 2^63 */
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "KV count");
    tb_free(&b);
}

SL_TEST(io_gguf_truncated_kv) {
    tbuf k = {0};
    tb_u64(&k, 1000); /* key length far past the end */
    tb_put(&k, "abc", 3);
    tbuf b = gguf_build(3, &k, 1, NULL, 0, 1, 20);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT,
                     "truncated: key of KV #0 (offset 24) at offset 32 needs 1000");
    tb_free(&b);
    tb_free(&k);
    tb_gstr(&k, "general.name");
    tb_u32(&k, SL_GGUF_STRING);
    tb_u64(&k, 50);
    tb_put(&k, "short", 5);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "string value of KV 'general.name'");
    tb_free(&b);
    tb_free(&k);
    /* an array of 2^61 u64 elements */
    tb_gstr(&k, "a.arr");
    tb_u32(&k, SL_GGUF_ARRAY);
    tb_u32(&k, SL_GGUF_U64);
    tb_u64(&k, 1ull << 61);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "overflows");
    tb_free(&b);
    tb_free(&k);
    /* an array of 2^40 strings */
    tb_gstr(&k, "a.strs");
    tb_u32(&k, SL_GGUF_ARRAY);
    tb_u32(&k, SL_GGUF_STRING);
    tb_u64(&k, 1ull << 40);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "cannot fit");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_unknown_value_type) {
    tbuf k = {0};
    tb_gstr(&k, "a.b");
    tb_u32(&k, 13);
    tb_u32(&k, 0);
    tbuf b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "KV 'a.b' (offset 24): unknown value type 13");
    tb_free(&b);
    tb_free(&k);
    tb_gstr(&k, "a.c");
    tb_u32(&k, SL_GGUF_ARRAY);
    tb_u32(&k, 77);
    tb_u64(&k, 1);
    tb_u32(&k, 0);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "unknown array element type 77");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_nested_array_too_deep) {
    tbuf k = {0};
    tb_gstr(&k, "a.deep");
    tb_u32(&k, SL_GGUF_ARRAY);
    for (int i = 0; i < 20; i++) {
        tb_u32(&k, SL_GGUF_ARRAY);
        tb_u64(&k, 1);
    }
    tb_u32(&k, SL_GGUF_U8);
    tb_u64(&k, 0);
    tbuf b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "nested deeper than");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_duplicate_key) {
    tbuf k = {0};
    kv_u32(&k, "a.x", 1);
    kv_u32(&k, "a.y", 1);
    kv_u32(&k, "a.x", 2);
    tbuf b = gguf_build(3, &k, 3, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "KV key 'a.x' appears twice");
    tb_free(&b);
    tb_free(&k);
    kv_u32(&k, "", 1);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "empty KV key at offset 24");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_bad_alignment) {
    tbuf k = {0};
    kv_u32(&k, "general.alignment", 24);
    tbuf b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "general.alignment = 24 is not a power of two");
    tb_free(&b);
    tb_free(&k);
    kv_u32(&k, "general.alignment", 0);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "not a power of two");
    tb_free(&b);
    tb_free(&k);
    tb_gstr(&k, "general.alignment");
    tb_u32(&k, SL_GGUF_U64);
    tb_u64(&k, 32);
    b = gguf_build(3, &k, 1, NULL, 0, 1, 0);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "general.alignment has type u64; it must be u32");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_custom_alignment) {
    tbuf k = {0};
    kv_u32(&k, "general.alignment", 256);
    gt ts[] = {{"a", 1, {2}, 0, 0}, {"b", 1, {2}, 0, 256}};
    tbuf b = gguf_build(3, &k, 1, ts, 2, 256, 264);
    sl_gguf_file f;
    sl_err err = {0};
    sl_status st = parse_buf(&b, &f, &err);
    if (!st) {
        CHECK(f.alignment == 256 && f.data_start % 256 == 0);
        CHECK(f.tensors[1].offset == f.data_start + 256);
        sl_gguf_file_free(&f);
    }
    CHECK(st == SL_OK);
    /* offset 32 is aligned for the default but not for 256 */
    tb_free(&b);
    ts[1].off = 32;
    b = gguf_build(3, &k, 1, ts, 2, 256, 64);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT,
                     "'b': data offset 32 is not a multiple of the alignment 256");
    tb_free(&b);
    tb_free(&k);
}

SL_TEST(io_gguf_unsupported_type) {
    gt ts[] = {{"blk.0.attn", 1, {256}, 16, 0}};
    tbuf b = gguf_build(3, NULL, 0, ts, 1, 32, 66);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "'blk.0.attn' has ggml type 16 (IQ2_XXS)");
    tb_free(&b);
    ts[0].type = 99;
    b = gguf_build(3, NULL, 0, ts, 1, 32, 256);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "ggml type 99 (unknown)");
    tb_free(&b);
    ts[0].type = 4;
    b = gguf_build(3, NULL, 0, ts, 1, 32, 256);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "removed");
    tb_free(&b);
}

SL_TEST(io_gguf_row_not_whole_blocks) {
    gt ts[] = {{"w", 2, {48, 2}, 2, 0}}; /* Q4_0, ne[0] = 48 */
    tbuf b = gguf_build(3, NULL, 0, ts, 1, 32, 128);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "'w' (info at offset 24): innermost dimension ne[0] = 48");
    tb_free(&b);
}

SL_TEST(io_gguf_size_overflow) {
    gt ts[] = {{"w", 3, {1ull << 32, 1ull << 32, 1ull << 10}, 0, 0}};
    tbuf b = gguf_build(3, NULL, 0, ts, 1, 32, 64);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "overflows 64 bits");
    tb_free(&b);
    gt neg[] = {{"w", 1, {1ull << 63}, 0, 0}};
    b = gguf_build(3, NULL, 0, neg, 1, 32, 64);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "is negative as i64");
    tb_free(&b);
}

SL_TEST(io_gguf_too_many_dims) {
    gt ts[] = {{"w", 5, {1, 1, 1, 1, 1}, 0, 0}};
    tbuf b = gguf_build(3, NULL, 0, ts, 1, 32, 32);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "n_dims = 5");
    tb_free(&b);
}

SL_TEST(io_gguf_data_out_of_range) {
    gt ts[] = {{"a", 1, {8}, 0, 0}, {"b", 1, {8}, 0, 32}};
    tbuf b = gguf_build(3, NULL, 0, ts, 2, 32, 60); /* b needs 32..64 */
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "'b': data");
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "runs past the end of the file");
    tb_free(&b);
    gt huge[] = {{"a", 1, {8}, 0, 0xffffffffffffffe0ull}};
    b = gguf_build(3, NULL, 0, huge, 1, 32, 64);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "runs past the end");
    tb_free(&b);
    /* the tensor infos themselves are cut short */
    b = gguf_build(3, NULL, 0, ts, 2, 1, 0);
    b.n -= 6;
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "truncated: offset of tensor 'b'");
    tb_free(&b);
}

SL_TEST(io_gguf_overlapping_tensors) {
    gt ts[] = {{"a", 1, {16}, 0, 0}, {"b", 1, {8}, 0, 32}}; /* a covers 0..64 */
    tbuf b = gguf_build(3, NULL, 0, ts, 2, 32, 96);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "overlaps tensor 'a'");
    tb_free(&b);
    gt same[] = {{"a", 1, {8}, 0, 0}, {"b", 1, {8}, 0, 0}};
    b = gguf_build(3, NULL, 0, same, 2, 32, 32);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "overlaps");
    tb_free(&b);
}

SL_TEST(io_gguf_duplicate_tensor) {
    gt ts[] = {{"a", 1, {8}, 0, 0}, {"a", 1, {8}, 0, 32}};
    tbuf b = gguf_build(3, NULL, 0, ts, 2, 32, 64);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "tensor 'a' appears twice");
    tb_free(&b);
    gt empty[] = {{"", 1, {8}, 0, 0}};
    b = gguf_build(3, NULL, 0, empty, 1, 32, 32);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "empty name");
    tb_free(&b);
}

static void kv_i32s(tbuf *k, const char *key, uint32_t type, int n, const int64_t *v) {
    tb_gstr(k, key);
    tb_u32(k, SL_GGUF_ARRAY);
    tb_u32(k, type);
    tb_u64(k, (uint64_t)n);
    int sz = type == SL_GGUF_I64 ? 8 : 4;
    for (int i = 0; i < n; i++)
        tb_le(k, (uint64_t)v[i], sz);
}

SL_TEST(io_gguf_orig_shape) {
    /* F32 stored as ne = [12, 2] (PyTorch [2, 12]); the original shape is [2, 3, 4] */
    tbuf k = {0};
    kv_i32s(&k, "comfy.gguf.orig_shape.w", SL_GGUF_I32, 3, (int64_t[]){2, 3, 4});
    kv_i32s(&k, "comfy.gguf.orig_shape.not_a_tensor", SL_GGUF_I32, 1, (int64_t[]){5});
    kv_i32s(&k, "comfy.gguf.orig_shape.q", SL_GGUF_I64, 2, (int64_t[]){4, 32});
    gt ts[] = {{"w", 2, {12, 2}, 0, 0}, {"q", 2, {64, 2}, 8, 96}};
    tbuf b = gguf_build(3, &k, 3, ts, 2, 32, 96 + 136);
    sl_gguf_file f;
    sl_err err = {0};
    sl_status st = parse_buf(&b, &f, &err);
    if (st) tb_free(&b), tb_free(&k);
    REQUIRE_OK(st, &err);
    CHECK(f.tensors[0].ndim == 3 && f.tensors[0].ne[0] == 2 && f.tensors[0].ne[1] == 3 &&
          f.tensors[0].ne[2] == 4 && f.tensors[0].ne[3] == 1 && f.tensors[0].nbytes == 96);
    CHECK(f.tensors[1].ndim == 2 && f.tensors[1].ne[0] == 4 && f.tensors[1].ne[1] == 32);
    const sl_gguf_kv *kv = sl_gguf_find_kv(&f, "comfy.gguf.orig_shape.q");
    CHECK(kv && sl_gguf_arr_int(b.p, kv, 0) == 4 && sl_gguf_arr_int(b.p, kv, 1) == 32);
    kv = sl_gguf_find_kv(&f, "comfy.gguf.orig_shape.w");
    CHECK(kv && kv->arr_type == SL_GGUF_I32 && sl_gguf_arr_int(b.p, kv, 2) == 4);
    sl_gguf_file_free(&f);
    tb_free(&b);
    tb_free(&k);

    /* element count mismatch */
    kv_i32s(&k, "comfy.gguf.orig_shape.w", SL_GGUF_I32, 2, (int64_t[]){5, 5});
    b = gguf_build(3, &k, 1, ts, 1, 32, 96);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT,
                     "comfy.gguf.orig_shape.w has 25 elements but tensor 'w' has 24");
    tb_free(&b);
    tb_free(&k);
    /* negative dimension */
    kv_i32s(&k, "comfy.gguf.orig_shape.w", SL_GGUF_I32, 2, (int64_t[]){-2, -12});
    b = gguf_build(3, &k, 1, ts, 1, 32, 96);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "is negative");
    tb_free(&b);
    tb_free(&k);
    /* more than 4 dimensions */
    kv_i32s(&k, "comfy.gguf.orig_shape.w", SL_GGUF_I32, 5, (int64_t[]){1, 2, 3, 4, 1});
    b = gguf_build(3, &k, 1, ts, 1, 32, 96);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "'w' has original shape of 5 dimensions");
    tb_free(&b);
    tb_free(&k);
    /* not an integer array */
    tb_gstr(&k, "comfy.gguf.orig_shape.w");
    tb_u32(&k, SL_GGUF_STRING);
    tb_gstr(&k, "[2, 12]");
    b = gguf_build(3, &k, 1, ts, 1, 32, 96);
    EXPECT_GGUF_FAIL(&b, SL_ERR_FORMAT, "is not an array of integers");
    tb_free(&b);
    tb_free(&k);
    /* block rows would straddle the original rows */
    kv_i32s(&k, "comfy.gguf.orig_shape.q", SL_GGUF_I32, 2, (int64_t[]){8, 16});
    gt q0[] = {{"q", 2, {64, 2}, 8, 0}};
    b = gguf_build(3, &k, 1, q0, 1, 32, 136);
    EXPECT_GGUF_FAIL(&b, SL_ERR_UNSUPPORTED, "innermost dimension 16 is not a multiple");
    tb_free(&b);
    tb_free(&k);
}
