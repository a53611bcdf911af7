/* Mapped files and the weight directory: single files of both formats, prefix-tolerant lookup,
 * sharded indexes (by path and by folder), duplicate names across files, error messages. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "io/wdir.h"
#include "test.h"
#include "test_io_util.h"

/* Writes a safetensors file with F32 [2] tensors named names[i] holding {i, -i}. */
static int write_st(const char *path, const char *const *names, int n, const char *meta_key,
                    const char *meta_val) {
    sl_err err = {0};
    sl_st_writer *w;
    if (sl_st_writer_open(&w, path, &err)) return 0;
    if (meta_key && sl_st_writer_meta(w, meta_key, meta_val, &err)) goto fail;
    for (int i = 0; i < n; i++)
        if (sl_st_writer_add(w, names[i], SL_DTYPE_F32, 1, (int64_t[]){2}, &err)) goto fail;
    if (sl_st_writer_begin_data(w, &err)) goto fail;
    for (int i = 0; i < n; i++) {
        float v[2] = {(float)i, -(float)i};
        if (sl_st_writer_write(w, v, sizeof v, &err)) goto fail;
    }
    return sl_st_writer_close(w, &err) == SL_OK;
fail:
    sl_st_writer_abort(w);
    return 0;
}

static float entry_f32(const sl_wentry *e, int i) {
    float v;
    memcpy(&v, (const uint8_t *)e->data + 4 * i, 4);
    return v;
}

SL_TEST(io_map_errors_and_empty) {
    char path[600];
    sl_mapfile m;
    sl_err err = {0};
    CHECK(sl_mapfile_open(&m, tmp_path(path, sizeof path, "missing.bin"), &err) == SL_ERR_IO);
    CHECK(strstr(err.msg, path) && strstr(err.msg, strerror(ENOENT)));
    CHECK(m.data == NULL && m.fd == -1);
    sl_mapfile_close(&m);
    sl_err_clear(&err);
    CHECK(sl_mapfile_open(&m, sl_test_tmpdir(), &err) == SL_ERR_IO);
    CHECK(strstr(err.msg, "is a directory"));
    sl_err_clear(&err);

    REQUIRE(write_file(tmp_path(path, sizeof path, "empty.bin"), "", 0));
    REQUIRE_OK(sl_mapfile_open(&m, path, &err), &err);
    CHECK(m.size == 0 && m.data == NULL && m.fd >= 0 && !strcmp(m.path, path));
    sl_mapfile_close(&m);
    CHECK(m.fd == -1 && m.path == NULL);
    sl_mapfile_close(&m); /* twice is fine */

    REQUIRE(write_file(tmp_path(path, sizeof path, "five.bin"), "hello", 5));
    REQUIRE_OK(sl_mapfile_open(&m, path, &err), &err);
    CHECK(m.size == 5 && !memcmp(m.data, "hello", 5));
    char c = 0;
    CHECK(pread(m.fd, &c, 1, 4) == 1 && c == 'o'); /* fd stays usable for pread */
    sl_mapfile_close(&m);

    /* an empty file is not a model */
    sl_wdir *d = NULL;
    tmp_path(path, sizeof path, "empty.bin");
    const char *p = path;
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "too short"));
    CHECK(d == NULL);
}

SL_TEST(io_wdir_safetensors_lookup) {
    char path[600];
    const char *names[] = {
        "model.diffusion_model.x_embedder.weight",
        "first_stage_model.decoder.conv_in.weight",
        "text_encoders.qwen3_4b.transformer.model.layers.0.mlp.weight",
        "plain.weight",
    };
    REQUIRE(
        write_st(tmp_path(path, sizeof path, "m.safetensors"), names, 4, "sluice.arch", "zimage"));
    sl_wdir *d = NULL;
    sl_err err = {0};
    const char *p = path;
    REQUIRE_OK(sl_wdir_open(&d, &p, 1, &err), &err);
    CHECK(sl_wdir_count(d) == 4 && sl_wdir_file_count(d) == 1);
    CHECK(!strcmp(sl_wdir_file_path(d, 0), path));
    CHECK(sl_wdir_file_format(d, 0) == SL_FORMAT_SAFETENSORS);
    CHECK(sl_wdir_meta(d, "sluice.arch") && !strcmp(sl_wdir_meta(d, "sluice.arch"), "zimage"));
    CHECK(sl_wdir_meta(d, "nope") == NULL);
    CHECK(sl_wdir_meta_count(d) == 1);

    static const struct {
        const char *ask;
        int want; /* index into names, -1 = absent */
    } cases[] = {
        {"model.diffusion_model.x_embedder.weight", 0}, /* exact */
        {"x_embedder.weight", 0},                       /* stored name has a prefix */
        {"diffusion_model.x_embedder.weight", 0},       /* other prefix */
        {"model.x_embedder.weight", 0},
        {"decoder.conv_in.weight", 1},
        {"vae.decoder.conv_in.weight", 1},
        {"model.layers.0.mlp.weight", 2},
        {"model.diffusion_model.plain.weight", 3}, /* asked with a prefix, stored without */
        {"first_stage_model.plain.weight", 3},
        {"x_embedder.bias", -1},
        {"", -1},
        {"model.", -1},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        const sl_wentry *e = sl_wdir_find(d, cases[i].ask);
        if (cases[i].want < 0)
            CHECKF(e == NULL, "'%s' found %s", cases[i].ask, e ? e->name : "");
        else {
            CHECKF(e && !strcmp(e->name, names[cases[i].want]), "'%s' -> %s", cases[i].ask,
                   e ? e->name : "NULL");
            if (e) CHECK(entry_f32(e, 0) == (float)cases[i].want);
        }
    }
    const sl_wentry *e = sl_wdir_find(d, "plain.weight");
    REQUIRE(e);
    CHECK(e->dtype == SL_DTYPE_F32 && e->ndim == 1 && e->ne[0] == 2 && e->nbytes == 8);
    CHECK(e->file == 0 && entry_f32(e, 1) == -3.0f);
    sl_tensor t = sl_wentry_tensor(e);
    CHECK(t.data == e->data && t.dtype == SL_DTYPE_F32 && t.ndim == 1 && t.ne[0] == 2 &&
          !strcmp(t.name, "plain.weight"));
    CHECK(sl_wdir_at(d, 3) == e);
    sl_wdir_free(d);
    sl_wdir_free(NULL);
}

SL_TEST(io_wdir_gguf) {
    char path[600];
    tmp_path(path, sizeof path, "m.gguf");
    sl_err err = {0};
    sl_gguf_writer *w;
    REQUIRE_OK(sl_gguf_writer_open(&w, path, &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_str(w, "general.architecture", "lumina2", &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_f32(w, "x.eps", 0.5f, &err), &err);
    REQUIRE_OK(sl_gguf_writer_kv_i32_array(w, "x.arr", (int32_t[]){1}, 1, &err), &err);
    REQUIRE_OK(
        sl_gguf_writer_add(w, "diffusion_model.w", SL_DTYPE_Q8_0, 2, (int64_t[]){3, 32}, &err),
        &err);
    REQUIRE_OK(sl_gguf_writer_add(w, "b", SL_DTYPE_F32, 1, (int64_t[]){3}, &err), &err);
    REQUIRE_OK(sl_gguf_writer_begin_data(w, &err), &err);
    uint8_t q[3 * 34];
    for (int i = 0; i < (int)sizeof q; i++)
        q[i] = (uint8_t)i;
    REQUIRE_OK(sl_gguf_writer_write(w, q, sizeof q, &err), &err);
    float b[3] = {1, 2, 3};
    REQUIRE_OK(sl_gguf_writer_write(w, b, sizeof b, &err), &err);
    REQUIRE_OK(sl_gguf_writer_close(w, &err), &err);

    sl_wdir *d = NULL;
    const char *p = path;
    REQUIRE_OK(sl_wdir_open(&d, &p, 1, &err), &err);
    CHECK(sl_wdir_file_format(d, 0) == SL_FORMAT_GGUF && sl_wdir_count(d) == 2);
    CHECK(!strcmp(sl_wdir_meta(d, "general.architecture"), "lumina2"));
    CHECK(!strcmp(sl_wdir_meta(d, "general.quantization_version"), "2"));
    CHECK(!strcmp(sl_wdir_meta(d, "x.eps"), "0.5"));
    CHECK(sl_wdir_meta(d, "x.arr") == NULL); /* arrays are left out */
    const sl_wentry *e = sl_wdir_find(d, "model.diffusion_model.w");
    REQUIRE(e);
    CHECK(e->dtype == SL_DTYPE_Q8_0 && e->ne[0] == 3 && e->ne[1] == 32 && e->nbytes == 102);
    CHECK(e->offset % 32 == 0 && !memcmp(e->data, q, sizeof q));
    e = sl_wdir_find(d, "b");
    REQUIRE(e);
    CHECK(entry_f32(e, 2) == 3.0f);
    sl_wdir_free(d);
}

/* Two shards and an index in dir; returns the index path in buf. */
static int make_sharded(const char *dir, char *buf, size_t n, const char *extra_name) {
    char p[700];
    const char *a[] = {"blocks.0.w", "blocks.1.w"};
    const char *b[] = {"final.w"};
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model-00001-of-00002.safetensors", dir);
    if (!write_st(p, a, 2, "format", "pt")) return 0;
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model-00002-of-00002.safetensors", dir);
    if (!write_st(p, b, 1, NULL, NULL)) return 0;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
             "\"blocks.0.w\":\"diffusion_pytorch_model-00001-of-00002.safetensors\","
             "\"final.w\":\"diffusion_pytorch_model-00002-of-00002.safetensors\","
             "\"blocks.1.w\":\"diffusion_pytorch_model-00001-of-00002.safetensors\"%s%s%s}}",
             extra_name ? ",\"" : "", extra_name ? extra_name : "",
             extra_name ? "\":\"diffusion_pytorch_model-00002-of-00002.safetensors\"" : "");
    snprintf(buf, n, "%s/diffusion_pytorch_model.safetensors.index.json", dir);
    return write_file(buf, json, strlen(json));
}

SL_TEST(io_wdir_sharded_index) {
    char dir[600], index[700];
    snprintf(dir, sizeof dir, "%s/transformer", sl_test_tmpdir());
    REQUIRE(mkdir(dir, 0700) == 0);
    REQUIRE(make_sharded(dir, index, sizeof index, NULL));
    sl_err err = {0};
    for (int by_dir = 0; by_dir < 2; by_dir++) {
        sl_wdir *d = NULL;
        const char *p = by_dir ? dir : index;
        REQUIRE_OK(sl_wdir_open(&d, &p, 1, &err), &err);
        CHECK(sl_wdir_count(d) == 3 && sl_wdir_file_count(d) == 2);
        const sl_wentry *e = sl_wdir_find(d, "final.w");
        REQUIRE(e);
        CHECK(strstr(sl_wdir_file_path(d, e->file), "00002-of-00002") != NULL);
        CHECK(entry_f32(e, 1) == -0.0f);
        e = sl_wdir_find(d, "blocks.1.w");
        REQUIRE(e);
        CHECK(e->file == 0 && entry_f32(e, 0) == 1.0f);
        CHECK(sl_wdir_find(d, "model.diffusion_model.blocks.0.w") != NULL);
        CHECK(!strcmp(sl_wdir_meta(d, "format"), "pt"));
        sl_wdir_free(d);
    }
}

SL_TEST(io_wdir_index_errors) {
    char dir[600], index[700];
    snprintf(dir, sizeof dir, "%s/t", sl_test_tmpdir());
    REQUIRE(mkdir(dir, 0700) == 0);
    /* the index names a tensor its shard does not hold */
    REQUIRE(make_sharded(dir, index, sizeof index, "ghost.w"));
    sl_wdir *d = NULL;
    sl_err err = {0};
    const char *p = index;
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_FORMAT && d == NULL);
    CHECK(strstr(err.msg, index) && strstr(err.msg, "'ghost.w'") &&
          strstr(err.msg, "00002-of-00002.safetensors"));
    /* a shard is missing */
    char shard[700];
    snprintf(shard, sizeof shard, "%s/diffusion_pytorch_model-00002-of-00002.safetensors", dir);
    REQUIRE(unlink(shard) == 0);
    sl_err_clear(&err);
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_IO);
    CHECK(strstr(err.msg, shard) && strstr(err.msg, index) && strstr(err.msg, strerror(ENOENT)));
    /* bad index JSON */
    REQUIRE(write_file(index, "{\"weight_map\":", 14));
    sl_err_clear(&err);
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, index) && strstr(err.msg, "not valid JSON"));
}

SL_TEST(io_wdir_duplicate_across_files) {
    char a[600], b[600];
    const char *n1[] = {"x.w", "shared.w"}, *n2[] = {"shared.w"};
    REQUIRE(write_st(tmp_path(a, sizeof a, "a.safetensors"), n1, 2, NULL, NULL));
    REQUIRE(write_st(tmp_path(b, sizeof b, "b.safetensors"), n2, 1, NULL, NULL));
    const char *paths[] = {a, b};
    sl_wdir *d = NULL;
    sl_err err = {0};
    CHECK(sl_wdir_open(&d, paths, 2, &err) == SL_ERR_FORMAT && d == NULL);
    CHECK(strstr(err.msg, "'shared.w'") && strstr(err.msg, a) && strstr(err.msg, b));
    /* two files with distinct names combine */
    const char *n3[] = {"y.w"};
    REQUIRE(write_st(b, n3, 1, NULL, NULL));
    sl_err_clear(&err);
    REQUIRE_OK(sl_wdir_open(&d, paths, 2, &err), &err);
    CHECK(sl_wdir_count(d) == 3 && sl_wdir_file_count(d) == 2);
    CHECK(sl_wdir_find(d, "y.w")->file == 1);
    sl_wdir_free(d);
    sl_err_clear(&err);
    CHECK(sl_wdir_open(&d, paths, 0, &err) == SL_ERR_INVALID_ARG);
}

SL_TEST(io_wdir_folder_rules) {
    char dir[600], p1[700], p2[700];
    snprintf(dir, sizeof dir, "%s/f", sl_test_tmpdir());
    REQUIRE(mkdir(dir, 0700) == 0);
    sl_wdir *d = NULL;
    sl_err err = {0};
    const char *p = dir;
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, dir) && strstr(err.msg, "no .safetensors"));
    const char *n[] = {"a.w"};
    snprintf(p1, sizeof p1, "%s/one.safetensors", dir);
    REQUIRE(write_st(p1, n, 1, NULL, NULL));
    REQUIRE(write_file(strcat(strcpy(p2, dir), "/notes.txt"), "x", 1));
    sl_err_clear(&err);
    REQUIRE_OK(sl_wdir_open(&d, &p, 1, &err), &err);
    CHECK(sl_wdir_count(d) == 1 && !strcmp(sl_wdir_file_path(d, 0), p1));
    sl_wdir_free(d);
    snprintf(p2, sizeof p2, "%s/two.safetensors", dir);
    REQUIRE(write_st(p2, n, 1, NULL, NULL));
    sl_err_clear(&err);
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_INVALID_ARG);
    CHECK(strstr(err.msg, "2 model files") && strstr(err.msg, "one.safetensors") &&
          strstr(err.msg, "two.safetensors"));
    sl_err_clear(&err);
    p = "/nonexistent-sluice-path/x.safetensors";
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_IO && strstr(err.msg, p));
}

SL_TEST(io_wdir_bad_file_named) {
    char path[600];
    tbuf b = st_bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12);
    REQUIRE(write_file(tmp_path(path, sizeof path, "trunc.safetensors"), b.p, b.n));
    tb_free(&b);
    sl_wdir *d = NULL;
    sl_err err = {0};
    const char *p = path;
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_FORMAT);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "'w'") && strstr(err.msg, "past the end"));
    REQUIRE(write_file(path, "GGUF\x01\0\0\0", 8));
    sl_err_clear(&err);
    CHECK(sl_wdir_open(&d, &p, 1, &err) == SL_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "version 1"));
}

SL_TEST(io_wdir_many_tensors) {
    enum { N = 5000 };
    char path[600];
    char(*names)[32] = malloc(sizeof(char[32]) * N);
    const char **ptrs = malloc(sizeof *ptrs * N);
    REQUIRE(names && ptrs);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 32, "layers.%d.w", i);
        ptrs[i] = names[i];
    }
    int ok = write_st(tmp_path(path, sizeof path, "big.safetensors"), ptrs, N, NULL, NULL);
    free(ptrs);
    if (!ok) free(names);
    REQUIRE(ok);
    sl_wdir *d = NULL;
    sl_err err = {0};
    const char *p = path;
    sl_status st = sl_wdir_open(&d, &p, 1, &err);
    if (st) free(names);
    REQUIRE_OK(st, &err);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const sl_wentry *e = sl_wdir_find(d, names[i]);
        if (!e || entry_f32(e, 0) != (float)i) bad++;
        char pre[64];
        snprintf(pre, sizeof pre, "model.diffusion_model.%s", names[i]);
        if (sl_wdir_find(d, pre) != e) bad++;
    }
    CHECK(bad == 0);
    CHECK(sl_wdir_find(d, "layers.5000.w") == NULL);
    sl_wdir_free(d);
    free(names);
}
