/* safetensors parser (formats.md §1): valid files from hand-written headers, and one test per
 * malformed case. Every error must name the file and the offending tensor/offset. */
#include "io/safetensors.h"
#include "test.h"
#include "test_io_util.h"

/* Parses header + data_len bytes; returns the status, keeps the message in *err. */
static sl_status parse_hdr(const char *header, size_t data_len, sl_st_file *f, sl_err *err) {
    tbuf b = st_bytes(header, data_len);
    sl_err_clear(err);
    sl_status st = sl_st_parse(b.p, b.n, "t.safetensors", f, err);
    tb_free(&b);
    return st;
}

/* Expects failure with `status`, the file name and `needle` in the message. */
#define EXPECT_ST_FAIL(header, data_len, status, needle)                                           \
    do {                                                                                           \
        sl_st_file f_;                                                                             \
        sl_err e_ = {0};                                                                           \
        sl_status s_ = parse_hdr((header), (data_len), &f_, &e_);                                  \
        CHECKF(s_ == (status), "status %s, want %s (%s)", sl_status_str(s_),                       \
               sl_status_str(status), e_.msg);                                                     \
        CHECKF(strstr(e_.msg, "t.safetensors") && strstr(e_.msg, (needle)),                        \
               "message lacks '%s': %s", (needle), e_.msg);                                        \
        CHECK(f_.n_tensors == 0 && f_.tensors == NULL && f_.meta == NULL);                         \
        if (s_ == SL_OK) sl_st_file_free(&f_);                                                     \
    } while (0)

SL_TEST(io_st_valid_header) {
    /* whitespace on both sides, metadata with a non-string value (skipped), an unknown member,
     * JSON order different from data order, a scalar and an empty tensor */
    const char *h =
        " \n\t{\"b\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[8,20],\"x\":1},"
        "\"__metadata__\":{\"format\":\"pt\",\"n\":5,\"arch\":\"zimage\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]},"
        "\"e\":{\"dtype\":\"BF16\",\"shape\":[0,7],\"data_offsets\":[0,0]},"
        "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}   \r\n";
    sl_st_file f;
    sl_err err = {0};
    REQUIRE_OK(parse_hdr(h, 20, &f, &err), &err);
    CHECK(f.data_start == 8 + strlen(h));
    REQUIRE(f.n_tensors == 4);
    CHECK(!strcmp(f.tensors[0].name, "b") && f.tensors[0].dtype == SL_DTYPE_F16);
    CHECK(f.tensors[0].ndim == 2 && f.tensors[0].ne[0] == 2 && f.tensors[0].ne[1] == 3);
    CHECK(f.tensors[0].ne[2] == 1 && f.tensors[0].ne[3] == 1);
    CHECK(f.tensors[0].offset == f.data_start + 8 && f.tensors[0].nbytes == 12);
    CHECK(!strcmp(f.tensors[1].name, "a") && f.tensors[1].ndim == 0 && f.tensors[1].nbytes == 4);
    CHECK(f.tensors[2].nbytes == 0 && f.tensors[2].ne[0] == 0);
    CHECK(f.tensors[3].dtype == SL_DTYPE_I32 && f.tensors[3].offset == f.data_start);
    REQUIRE(f.n_meta == 2);
    CHECK(!strcmp(f.meta[0].key, "format") && !strcmp(f.meta[0].value, "pt"));
    CHECK(!strcmp(f.meta[1].key, "arch") && !strcmp(f.meta[1].value, "zimage"));
    sl_st_file_free(&f);
    sl_st_file_free(&f); /* idempotent on a freed struct */
    sl_st_file_free(NULL);

    /* no tensors at all, empty data section */
    REQUIRE_OK(parse_hdr("{}", 0, &f, &err), &err);
    CHECK(f.n_tensors == 0 && f.data_start == 10);
    sl_st_file_free(&f);
}

SL_TEST(io_st_all_dtype_strings) {
    static const struct {
        const char *s;
        sl_dtype dt;
        int bytes;
    } ok[] = {{"F64", SL_DTYPE_F64, 8},         {"F32", SL_DTYPE_F32, 4},
              {"F16", SL_DTYPE_F16, 2},         {"BF16", SL_DTYPE_BF16, 2},
              {"F8_E4M3", SL_DTYPE_F8_E4M3, 1}, {"F8_E5M2", SL_DTYPE_F8_E5M2, 1},
              {"I64", SL_DTYPE_I64, 8},         {"I32", SL_DTYPE_I32, 4},
              {"I16", SL_DTYPE_I16, 2},         {"I8", SL_DTYPE_I8, 1},
              {"U8", SL_DTYPE_U8, 1},           {"BOOL", SL_DTYPE_BOOL, 1}};
    for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
        char h[200];
        snprintf(h, sizeof h, "{\"w\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%d]}}",
                 ok[i].s, 3 * ok[i].bytes);
        sl_st_file f;
        sl_err err = {0};
        REQUIRE_OK(parse_hdr(h, (size_t)(3 * ok[i].bytes), &f, &err), &err);
        CHECK(f.tensors[0].dtype == ok[i].dt);
        CHECK(!strcmp(sl_st_dtype_string(ok[i].dt), ok[i].s));
        sl_st_file_free(&f);
    }
    CHECK(sl_st_dtype_string(SL_DTYPE_Q8_0) == NULL);
}

SL_TEST(io_st_too_short) {
    sl_st_file f;
    sl_err err = {0};
    uint8_t b[5] = {1, 0, 0, 0, 0};
    CHECK(sl_st_parse(b, 5, "t.safetensors", &f, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, "t.safetensors") && strstr(err.msg, "too short"));
    sl_err_clear(&err);
    CHECK(sl_st_parse(NULL, 0, "t.safetensors", &f, &err) == SL_ERR_FORMAT);
}

SL_TEST(io_st_header_too_large) {
    tbuf b = {0};
    tb_u64(&b, 100000001ull);
    tb_put(&b, "{}", 2);
    sl_st_file f;
    sl_err err = {0};
    CHECK(sl_st_parse(b.p, b.n, "t.safetensors", &f, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, "t.safetensors") && strstr(err.msg, "100000000"));
    tb_free(&b);
}

SL_TEST(io_st_header_past_end) {
    /* truncated header: N says 60 bytes, only 20 present */
    tbuf b = {0};
    tb_u64(&b, 60);
    tb_put(&b, "{\"a\":{\"dtype\":\"F32\",", 20);
    sl_st_file f;
    sl_err err = {0};
    CHECK(sl_st_parse(b.p, b.n, "t.safetensors", &f, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, "t.safetensors") && strstr(err.msg, "past the end") &&
          strstr(err.msg, "offset 0"));
    tb_free(&b);
}

SL_TEST(io_st_bad_json) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],}", 0, SL_ERR_FORMAT, "not valid JSON");
    EXPECT_ST_FAIL("{\"a\":", 0, SL_ERR_FORMAT, "not valid JSON");
}

SL_TEST(io_st_not_an_object) {
    EXPECT_ST_FAIL("[1,2,3]", 0, SL_ERR_FORMAT, "not a JSON object");
    EXPECT_ST_FAIL("   ", 0, SL_ERR_FORMAT, "not a JSON object");
    EXPECT_ST_FAIL("", 0, SL_ERR_FORMAT, "not a JSON object");
}

SL_TEST(io_st_bytes_after_json) {
    EXPECT_ST_FAIL("{}  x", 0, SL_ERR_FORMAT, "extra bytes after the JSON object");
    EXPECT_ST_FAIL("{}{}", 0, SL_ERR_FORMAT, "extra bytes");
}

SL_TEST(io_st_invalid_utf8) {
    EXPECT_ST_FAIL("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_FORMAT, "UTF-8");
    EXPECT_ST_FAIL("{\"\xc0\xaf\":1}", 0, SL_ERR_FORMAT, "UTF-8");     /* overlong */
    EXPECT_ST_FAIL("{\"\xed\xa0\x80\":1}", 0, SL_ERR_FORMAT, "UTF-8"); /* surrogate */
}

SL_TEST(io_st_nul_in_header) {
    tbuf b = {0};
    tb_u64(&b, 4);
    tb_put(&b, "{}\0 ", 4);
    sl_st_file f;
    sl_err err = {0};
    CHECK(sl_st_parse(b.p, b.n, "t.safetensors", &f, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, "NUL byte at file offset 10"));
    tb_free(&b);
}

SL_TEST(io_st_duplicate_names) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, SL_ERR_FORMAT, "'a' twice");
}

SL_TEST(io_st_unknown_dtype) {
    EXPECT_ST_FAIL("{\"blk.0.w\":{\"dtype\":\"Q9_Z\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                   SL_ERR_UNSUPPORTED, "'blk.0.w' has unknown dtype \"Q9_Z\"");
}

SL_TEST(io_st_unsupported_dtype) {
    EXPECT_ST_FAIL("{\"c\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                   SL_ERR_UNSUPPORTED, "'c' has dtype C64");
    EXPECT_ST_FAIL("{\"u\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_UNSUPPORTED, "'u' has dtype U32");
    EXPECT_ST_FAIL("{\"f\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                   SL_ERR_UNSUPPORTED, "F4");
}

SL_TEST(io_st_overlapping_data) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, SL_ERR_FORMAT, "'b': data_offsets [4, 12] overlap");
}

SL_TEST(io_st_gap_in_data) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   12, SL_ERR_FORMAT, "'b': data_offsets [8, 12] leave a gap");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                   SL_ERR_FORMAT, "expected it to begin at 0");
}

SL_TEST(io_st_data_out_of_range) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10,
                   SL_ERR_FORMAT, "'a': data_offsets [0, 16] run past the end");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,"
                   "9007199254740992]}}",
                   16, SL_ERR_FORMAT, "run past the end");
}

SL_TEST(io_st_end_before_begin) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
                   SL_ERR_FORMAT, "end before they begin");
}

SL_TEST(io_st_size_mismatch) {
    EXPECT_ST_FAIL("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,20]}}", 20,
                   SL_ERR_FORMAT,
                   "'w': bf16[3, 4] needs 24 bytes but data_offsets [0, 20] hold 20");
}

SL_TEST(io_st_trailing_bytes) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5,
                   SL_ERR_FORMAT, "1 trailing bytes");
    EXPECT_ST_FAIL("{}", 3, SL_ERR_FORMAT, "3 trailing bytes");
}

SL_TEST(io_st_shape_overflow) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                   "\"data_offsets\":[0,4]}}",
                   4, SL_ERR_FORMAT, "overflows");
    /* numel fits but numel * 64 bits does not */
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,268435456],"
                   "\"data_offsets\":[0,4]}}",
                   4, SL_ERR_FORMAT, "overflows");
}

SL_TEST(io_st_bad_shape_values) {
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_FORMAT, "shape[0] is not a non-negative integer");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_FORMAT, "shape[0]");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_FORMAT, "shape[0]");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
                   SL_ERR_FORMAT, "shape[0]");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
                   SL_ERR_FORMAT, "data_offsets are not non-negative integers");
}

SL_TEST(io_st_too_many_dims) {
    EXPECT_ST_FAIL("{\"v\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
                   SL_ERR_UNSUPPORTED, "'v' has 5 dimensions");
}

SL_TEST(io_st_missing_fields) {
    EXPECT_ST_FAIL("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SL_ERR_FORMAT,
                   "'a': missing or non-string \"dtype\"");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, SL_ERR_FORMAT,
                   "'a': missing or non-array \"shape\"");
    EXPECT_ST_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                   SL_ERR_FORMAT, "data_offsets\" must be an array of 2");
    EXPECT_ST_FAIL("{\"a\":[1,2]}", 0, SL_ERR_FORMAT, "'a': entry is not a JSON object");
}

SL_TEST(io_st_metadata_not_object) {
    EXPECT_ST_FAIL("{\"__metadata__\":\"x\"}", 0, SL_ERR_FORMAT,
                   "__metadata__ is not a JSON object");
    EXPECT_ST_FAIL("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, SL_ERR_FORMAT,
                   "__metadata__ has the key 'k' twice");
}

SL_TEST(io_st_index_parse) {
    const char *j = "{\"metadata\":{\"total_size\":123},\"weight_map\":{"
                    "\"a.weight\":\"m-00001-of-00002.safetensors\","
                    "\"b.weight\":\"m-00002-of-00002.safetensors\","
                    "\"c.weight\":\"m-00001-of-00002.safetensors\"}}";
    sl_st_index ix;
    sl_err err = {0};
    REQUIRE_OK(sl_st_parse_index((const uint8_t *)j, strlen(j), "i.json", &ix, &err), &err);
    CHECK(ix.n_shards == 2 && ix.n_names == 3);
    if (ix.n_shards == 2 && ix.n_names == 3) {
        CHECK(!strcmp(ix.shards[0], "m-00001-of-00002.safetensors"));
        CHECK(!strcmp(ix.shards[1], "m-00002-of-00002.safetensors"));
        CHECK(!strcmp(ix.names[1], "b.weight") && ix.shard_of[1] == 1);
        CHECK(ix.shard_of[0] == 0 && ix.shard_of[2] == 0);
    }
    sl_st_index_free(&ix);
    sl_st_index_free(&ix);

    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"metadata\":{}}", "no \"weight_map\""},
        {"{\"weight_map\":{\"a\":1}}", "'a' is not a non-empty file name"},
        {"{\"weight_map\":{\"a\":\"\"}}", "'a' is not a non-empty file name"},
        {"{\"weight_map\":{\"a\":\"x.st\",\"a\":\"y.st\"}}", "'a' twice"},
        {"{\"weight_map\":{\"a\":\"/etc/x.st\"}}", "absolute path"},
        {"{\"weight_map\":{\"a\":\"x.st\"}", "not valid JSON"},
        {"{\"weight_map\":{},\"weight_map\":{}}", "'weight_map' twice"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_err_clear(&err);
        CHECK(sl_st_parse_index((const uint8_t *)bad[i].json, strlen(bad[i].json), "i.json", &ix,
                                &err) == SL_ERR_FORMAT);
        CHECKF(strstr(err.msg, "i.json") && strstr(err.msg, bad[i].needle), "case %zu: %s", i,
               err.msg);
        CHECK(ix.n_names == 0 && ix.names == NULL);
    }
}
