/* bench_*: smoke tests of the benchmark (src/bench/, `sluice bench`) on the CPU backend with the
 * tiny synthetic model. They check that every row carries sane, self-consistent numbers (units,
 * bytes, budgets, peaks, ratios) and that the JSON holds the same rows — never a timing
 * threshold: CI machines are shared and slow. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "test.h"

static void tiny_opts(sl_bench_opts *o, const char *path) {
    sl_bench_opts_init(o);
    o->model_path = path;
    o->backend = "cpu-device";
    o->threads = 2;
    o->width = 64;
    o->height = 48;
    o->cap_tokens = 20;
    o->passes = 1;
    o->warmup = 1;
}

static int tiny_model(char *path, size_t n, sl_err *err) {
    return sl_bench_synth("zimage", "tiny", "bf16", "official", sl_test_tmpdir(), path, n, err) ==
           SL_OK;
}

SL_TEST(bench_dit_tiny_rows_sane) {
    sl_err err = {0};
    char path[1024];
    REQUIREF(tiny_model(path, sizeof path, &err), "%s", err.msg);
    sl_bench_opts o;
    tiny_opts(&o, path);
    o.budgets = "min,0.000001,all";
    sl_bench_result r;
    REQUIRE_OK(sl_bench_dit(&o, &r, &err), &err);
    REQUIRE(r.n_rows == 4);
    CHECK(!strcmp(r.kind, "dit") && !strcmp(r.dtype, "bf16") && r.date[0] && r.device[0]);
    CHECK(r.link_gbps > 0 && r.gemm_tflops > 0 && r.model_bytes > 0);
    CHECK(!strcmp(r.compute_ref, "resident") && r.compute_ms > 0);

    const sl_bench_row *res = &r.rows[0], *mn = &r.rows[1], *tiny = &r.rows[2], *all = &r.rows[3];
    /* resident: nothing moves, it is its own reference */
    REQUIREF(res->ok, "%s", res->error);
    CHECK(!strcmp(res->mode, "none") && res->units_streamed == 0 && res->units_resident == 7);
    CHECK(res->bytes_per_pass == 0 && res->pass_ms > 0 && res->passes == 1);
    CHECK_NEAR(res->ratio_resident, 1.0, 1e-9);
    CHECK_NEAR(res->ratio_bound, 1.0, 1e-9);
    CHECK(res->plan_bytes == r.model_bytes);
    /* min: everything but the held globals streams, within the budget it found */
    REQUIREF(mn->ok, "%s", mn->error);
    CHECK(!strcmp(mn->budget, "min") && strstr(mn->setting, "min ("));
    CHECK(mn->units_streamed == 6 && mn->units_resident == 1);
    CHECK(mn->bytes_per_pass > 0 && mn->bytes_per_pass < r.model_bytes);
    CHECK(mn->plan_bytes <= mn->budget_bytes && mn->budget_bytes < r.model_bytes);
    CHECK(mn->copy_ms >= 0 && mn->stall_ms >= 0 && mn->achieved_gbps > 0);
    CHECK(mn->bound_ms >= r.compute_ms && mn->ratio_bound > 0 && mn->ratio_resident > 0);
    /* a budget below the minimum is a failed row with the planner's message, not a failed run */
    CHECK(!tiny->ok && tiny->error[0]);
    /* all: the whole free device, so nothing streams */
    REQUIREF(all->ok, "%s", all->error);
    CHECK(all->units_streamed == 0 && all->bytes_per_pass == 0);
    for (int i = 0; i < r.n_rows; i++) {
        const sl_bench_row *w = &r.rows[i];
        if (!w->ok) continue;
        CHECK(w->units_resident + w->units_streamed == 7);
        CHECK(w->arena_bytes > 0 && w->peak_accounted == w->plan_bytes + w->arena_bytes);
        CHECK(w->peak_vram >= w->peak_accounted && w->peak_vram >= w->peak_measured);
        /* cpu-as-device accounts every allocation exactly: the probe sees what the plan says */
        CHECKF(w->peak_measured >= w->peak_accounted, "%s: measured %zu < accounted %zu",
               w->setting, w->peak_measured, w->peak_accounted);
        CHECK(w->pass_ms_min <= w->pass_ms && w->pass_ms <= w->pass_ms_max);
    }

    /* the JSON holds the same rows */
    char jp[1200];
    snprintf(jp, sizeof jp, "%s/bench.json", sl_test_tmpdir());
    REQUIRE_OK(sl_bench_write_json(&r, jp, &err), &err);
    FILE *f = fopen(jp, "rb");
    REQUIRE(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    REQUIRE(root);
    CHECK(!strcmp(cJSON_GetObjectItem(root, "schema")->valuestring, SL_BENCH_SCHEMA));
    const cJSON *rows = cJSON_GetObjectItem(root, "rows");
    CHECK(cJSON_GetArraySize(rows) == 4);
    const cJSON *j1 = cJSON_GetArrayItem(rows, 1);
    CHECK(cJSON_GetObjectItem(j1, "bytes_per_pass")->valuedouble == (double)mn->bytes_per_pass);
    CHECK(!strcmp(cJSON_GetObjectItem(j1, "system")->valuestring, "sluice"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "achieved_gbps")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 2), "ok")));
    cJSON_Delete(root);

    FILE *tf = tmpfile();
    REQUIRE(tf);
    sl_bench_print(tf, &r);
    long len = ftell(tf);
    fclose(tf);
    CHECK(len > 200);
    sl_bench_result_free(&r);
}

/* Only the layer_streaming configurations asked for run (after the resident reference), and the
 * host backend, whose weights stay in the mapped file, reports no device peak. */
SL_TEST(bench_dit_modes_and_host_backend) {
    sl_err err = {0};
    char path[1024];
    REQUIREF(tiny_model(path, sizeof path, &err), "%s", err.msg);
    sl_bench_opts o;
    tiny_opts(&o, path);
    o.backend = "cpu";
    o.modes = "none";
    o.skip_gemm = true;
    sl_bench_result r;
    REQUIRE_OK(sl_bench_dit(&o, &r, &err), &err);
    REQUIRE(r.n_rows == 1);
    REQUIREF(r.rows[0].ok, "%s", r.rows[0].error);
    CHECK(r.rows[0].peak_vram == 0 && r.gemm_tflops == 0);
    sl_bench_result_free(&r);

    o.modes = "layer_streaming,bogus";
    CHECK(sl_bench_dit(&o, &r, &err) == SL_ERR_INVALID_ARG && strstr(err.msg, "bogus"));
    sl_err_clear(&err);
    o.modes = "none";
    o.width = 60;
    CHECK(sl_bench_dit(&o, &r, &err) == SL_ERR_INVALID_ARG);
}

SL_TEST(bench_budget_and_median) {
    sl_err err = {0};
    size_t b = 0;
    bool is_min = false;
    CHECK(sl_bench_parse_budget("min", &b, &is_min, &err) == SL_OK && is_min);
    CHECK(sl_bench_parse_budget("all", &b, &is_min, &err) == SL_OK && !is_min && b == SIZE_MAX);
    CHECK(sl_bench_parse_budget("8", &b, &is_min, &err) == SL_OK && b == 8000000000ull);
    CHECK(sl_bench_parse_budget("0.5", &b, &is_min, &err) == SL_OK && b == 500000000ull);
    CHECK(sl_bench_parse_budget("-1", &b, &is_min, &err) == SL_ERR_INVALID_ARG);
    CHECK(sl_bench_parse_budget("8GB", &b, &is_min, &err) == SL_ERR_INVALID_ARG);
    double v[] = {5, 1, 4, 2, 3};
    CHECK(sl_bench_median(v, 5) == 3);
    double w[] = {4, 1, 3, 2};
    CHECK(sl_bench_median(w, 4) == 2.5);
    CHECK(sl_bench_median(w, 0) == -1);
}

/* Whole generations through the public API on the CPU backend presenting itself as a device. */
SL_TEST(bench_pipeline_tiny) {
    sl_err err = {0};
    char dit[1024], llm[1024], vae[1024];
    const char *tmp = sl_test_tmpdir();
    REQUIRE_OK(sl_bench_synth("zimage", "tiny", "bf16", "official", tmp, dit, sizeof dit, &err),
               &err);
    REQUIRE_OK(sl_bench_synth("qwen3", "tiny", "bf16", "official", tmp, llm, sizeof llm, &err),
               &err);
    REQUIRE_OK(sl_bench_synth("flux-vae", "tiny", "bf16", "official", tmp, vae, sizeof vae, &err),
               &err);
    sl_bench_pipe_opts o;
    sl_bench_pipe_opts_init(&o);
    o.diffusion_model = dit;
    o.llm = llm;
    o.vae = vae;
    o.backend = "cpu-device:0";
    o.threads = 2;
    o.width = o.height = 64;
    o.steps = 2;
    o.runs = 1;
    o.warmup = 0;
    o.max_vram = "0,0.04";
    o.prompt = "a cat";
    sl_bench_result r;
    REQUIRE_OK(sl_bench_pipeline(&o, &r, &err), &err);
    REQUIRE(r.n_rows == 2);
    for (int i = 0; i < 2; i++) {
        const sl_bench_row *w = &r.rows[i];
        REQUIREF(w->ok, "%s: %s", w->setting, w->error);
        CHECK(w->total_s > 0 && w->sampling_s > 0 && w->sampling_s <= w->total_s);
        CHECK(w->cond_s >= 0 && w->decode_s >= 0 && w->steps == 2 && w->mode_used[0]);
        CHECK(w->peak_vram == 0); /* no device to measure on the CPU backend */
    }
    CHECK(r.rows[0].budget_bytes == SIZE_MAX &&
          r.rows[1].budget_bytes == (size_t)(0.04 * 1073741824.0));
    sl_bench_result_free(&r);
}

/* ---- the command ---- */

static int sluice_bin(char *buf, size_t n) {
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 0;
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(buf, n, "%s/sluice", self);
    return access(buf, X_OK) == 0;
}

/* Exit status of `sluice bench <args>`; its stdout in out (static buffer). */
static int run_bench(const char *args, const char **out) {
    static char text[1 << 16];
    char bin[4200], cmd[9000], po[1200];
    if (!sluice_bin(bin, sizeof bin)) return -1;
    snprintf(po, sizeof po, "%s/bench_stdout.txt", sl_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' bench %s >'%s' 2>/dev/null", bin, args, po);
    int st = system(cmd);
    text[0] = 0;
    FILE *f = fopen(po, "rb");
    if (f) {
        size_t got = fread(text, 1, sizeof text - 1, f);
        text[got] = 0;
        fclose(f);
    }
    *out = text;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

SL_TEST(bench_cli) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    const char *out = NULL;
    CHECK(run_bench("--help", &out) == 0 && strstr(out, "--budgets"));
    CHECK(run_bench("", &out) == 2);
    CHECK(run_bench("--synth bf16 --diffusion-model x", &out) == 2);
    CHECK(run_bench("--synth bf16 --width 100", &out) == 2);
    CHECK(run_bench("--bogus", &out) == 2);
    char args[2400];
    const char *tmp = sl_test_tmpdir();
    snprintf(args, sizeof args,
             "--synth bf16 --synth-size tiny --workdir '%s' -W 64 -H 64 --cap-tokens 16 --passes 1 "
             "--warmup 0 --budgets min --backend cpu-device:1G -t 2 --no-gemm --json '%s/b.json'",
             tmp, tmp);
    int rc = run_bench(args, &out);
    CHECKF(rc == 0, "exit %d: %s", rc, out);
    CHECK(strstr(out, "layer_streaming min") && strstr(out, "none"));
    char jp[1200];
    snprintf(jp, sizeof jp, "%s/b.json", tmp);
    CHECK(access(jp, R_OK) == 0);
}

/* bench/assemble.py reads what sl_bench_write_json writes (the C and Python sides of one schema).
 * SKIP without python3. */
SL_TEST(bench_assemble_reads_json) {
    if (system("python3 -c 'import json' >/dev/null 2>&1") != 0) SKIP("no python3");
    sl_err err = {0};
    char path[1024];
    REQUIREF(tiny_model(path, sizeof path, &err), "%s", err.msg);
    sl_bench_opts o;
    tiny_opts(&o, path);
    o.budgets = "min";
    o.skip_gemm = true;
    sl_bench_result r;
    REQUIRE_OK(sl_bench_dit(&o, &r, &err), &err);
    const char *tmp = sl_test_tmpdir();
    char jp[1200], md[1200], cmd[4000];
    snprintf(jp, sizeof jp, "%s/run.json", tmp);
    snprintf(md, sizeof md, "%s/run.md", tmp);
    REQUIRE_OK(sl_bench_write_json(&r, jp, &err), &err);
    sl_bench_result_free(&r);
    snprintf(cmd, sizeof cmd, "python3 '%s/bench/assemble.py' '%s' --driver test --out '%s'",
             sl_test_root(), jp, md);
    REQUIRE(system(cmd) == 0);
    FILE *f = fopen(md, "rb");
    REQUIRE(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    CHECKF(strstr(text, "| sluice | bf16 | none | 7/0 |"), "%s", text);
    CHECK(strstr(text, "| sluice | bf16 | layer_streaming min ("));
    CHECK(strstr(text, "Resident ≤ 1.0× compiled diffusers: not yet measured"));
    CHECK(strstr(text, "<!-- bench:results:begin -->") &&
          strstr(text, "<!-- bench:results:end -->"));
}
