/* bench/bench_out.c — rows, the terminal table, JSON, synthetic model files and small helpers
 * shared by the benchmarks (bench.h, bench_impl.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench.h"
#include "bench/bench_impl.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/quant.h"
#include "models/synth.h"

void sl_bench_result_free(sl_bench_result *r) {
    if (!r) return;
    free(r->rows);
    r->rows = NULL;
    r->n_rows = r->cap_rows = 0;
}

void sl_bench_row_init(sl_bench_row *row, const char *system, const char *kind) {
    memset(row, 0, sizeof *row);
    snprintf(row->system, sizeof row->system, "%s", system);
    snprintf(row->kind, sizeof row->kind, "%s", kind);
    row->units_resident = row->units_streamed = -1;
    row->pass_ms = row->pass_ms_min = row->pass_ms_max = -1;
    row->stall_ms = row->copy_ms = row->compute_ms = -1;
    row->achieved_gbps = row->predicted_ms = -1;
    row->bound_ms = row->ratio_bound = row->ratio_resident = -1;
    row->load_s = row->cond_s = row->sampling_s = row->decode_s = -1;
    row->transfer_s = row->total_s = row->per_step_s = row->pred_s = -1;
    row->steps = -1;
}

sl_bench_row *sl_bench_add_row(sl_bench_result *out) {
    if (out->n_rows == out->cap_rows) {
        int cap = out->cap_rows ? 2 * out->cap_rows : 8;
        sl_bench_row *r = realloc(out->rows, (size_t)cap * sizeof *r);
        if (!r) return NULL;
        out->rows = r;
        out->cap_rows = cap;
    }
    sl_bench_row *row = &out->rows[out->n_rows++];
    memset(row, 0, sizeof *row);
    return row;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sl_bench_median(double *v, int n) {
    if (n <= 0) return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

sl_status sl_bench_parse_budget(const char *tok, size_t *bytes, bool *is_min, sl_err *err) {
    *is_min = false;
    *bytes = 0;
    if (!strcmp(tok, "min")) {
        *is_min = true;
        return SL_OK;
    }
    if (!strcmp(tok, "all")) {
        *bytes = SIZE_MAX;
        return SL_OK;
    }
    char *end = NULL;
    errno = 0;
    double gb = strtod(tok, &end);
    if (errno || end == tok || *end || !(gb > 0) || gb > 1e6)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: budget '%s' is not min, all or a positive number of GB", tok);
    *bytes = (size_t)(gb * 1e9);
    return SL_OK;
}

void sl_bench_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

sl_status sl_bench_open_backend(const char *spec, int threads, sl_backend **out, sl_err *err) {
    *out = NULL;
    if (!spec) spec = "auto";
    if (strncmp(spec, "cpu-device", 10) != 0) return sl_backend_create(spec, threads, out, err);
    size_t bytes = (size_t)64 << 30;
    if (spec[10] == ':') {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(spec + 11, &end, 10);
        int shift = 0;
        if (end && (*end == 'K' || *end == 'k'))
            shift = 10, end++;
        else if (end && (*end == 'M' || *end == 'm'))
            shift = 20, end++;
        else if (end && (*end == 'G' || *end == 'g'))
            shift = 30, end++;
        if (errno || end == spec + 11 || *end || v == 0 || v > (SIZE_MAX >> shift))
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "bench: backend '%s': expected cpu-device:BYTES (e.g. "
                              "cpu-device:8G)",
                              spec);
        bytes = (size_t)v << shift;
    } else if (spec[10]) {
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: unknown backend '%s' (use auto, cuda, cpu or cpu-device[:BYTES])",
                          spec);
    }
    sl_cpu_options o = {.threads = threads, .as_device = true, .device_budget = bytes};
    return sl_backend_cpu_create(&o, out, err);
}

/* ---- synthetic files ---- */

sl_status sl_bench_synth(const char *arch, const char *size, const char *dtype, const char *layout,
                         const char *dir, char *path_out, size_t n, sl_err *err) {
    int dt = sl_dtype_from_name(dtype);
    if (dt < 0 || !sl_dtype_get((sl_dtype)dt)->is_float || !sl_quant_supported((sl_dtype)dt))
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: cannot write synthetic weights as '%s' (use bf16, f16, fp8, "
                          "q8_0, q4_0, q4_k)",
                          dtype);
    bool gguf = sl_dtype_get((sl_dtype)dt)->is_quant;
    const char *dn = sl_dtype_name((sl_dtype)dt);
    int k = snprintf(path_out, n, "%s/%s-%s-%s-%s.%s", dir, arch, size, layout, dn,
                     gguf ? "gguf" : "safetensors");
    if (k < 0 || (size_t)k >= n)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "bench: work directory path too long");
    struct stat sb;
    if (stat(path_out, &sb) == 0 && sb.st_size > 0) {
        SL_INFO("bench: reusing %s", path_out);
        return SL_OK;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sl_err_set(err, SL_ERR_IO, "bench: cannot create %s: %s", dir, strerror(errno));
    sl_status (*list_fn)(const char *, const char *, sl_synth_list *, sl_err *) =
        !strcmp(arch, "zimage")     ? sl_zimage_synth_list
        : !strcmp(arch, "qwen3")    ? sl_qwen3_synth_list
        : !strcmp(arch, "flux-vae") ? sl_fluxvae_synth_list
                                    : NULL;
    if (!list_fn)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "bench: no synthetic list for '%s'", arch);
    sl_synth_list l = {0};
    sl_status st = list_fn(size, layout, &l, err);
    if (st == SL_OK) {
        SL_INFO("bench: writing synthetic %s (%s, %s, %s) to %s", arch, size, layout, dn, path_out);
        sl_synth_opts so = {(sl_dtype)dt, gguf ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS, 0};
        st = sl_synth_write(&l, &so, path_out, err);
    }
    sl_synth_list_free(&l);
    return st;
}

/* ---- the terminal table ---- */

static void fmt_gb(char *b, size_t n, size_t bytes) {
    if (bytes == SIZE_MAX)
        snprintf(b, n, "all");
    else
        snprintf(b, n, "%.2f", (double)bytes / 1e9);
}

static void fmt_num(char *b, size_t n, double v, const char *f) {
    if (v < 0)
        snprintf(b, n, "-");
    else
        snprintf(b, n, f, v);
}

void sl_bench_print(FILE *f, const sl_bench_result *r) {
    fprintf(f, "sluice bench %s — %s (%s), %s\n", r->kind, r->device, r->backend, r->date);
    if (!strcmp(r->kind, "dit")) {
        char gemm[96] = "GEMM not measured";
        if (r->gemm_tflops > 0)
            snprintf(gemm, sizeof gemm, "GEMM %.1f TFLOP/s (%s)", r->gemm_tflops, r->gemm_shape);
        fprintf(f,
                "model %s (%s, %.2f GB), %dx%d, %d caption tokens, warm-up %d, prefetch %d\n"
                "pinned link %.1f GB/s; %s; compute-only pass %.1f ms (%s)\n\n",
                r->model, r->dtype, (double)r->model_bytes / 1e9, r->width, r->height,
                r->cap_tokens, r->warmup, r->prefetch, r->link_gbps, gemm, r->compute_ms,
                r->compute_ref);
        fprintf(f, "%-30s %7s %9s %8s %9s %8s %7s %8s %8s %7s %7s\n", "config", "budget", "res/str",
                "GB/pass", "ms/pass", "stall", "GB/s", "peak GB", "bound", "xbound", "xresid");
        for (int i = 0; i < r->n_rows; i++) {
            const sl_bench_row *w = &r->rows[i];
            char bud[16], us[24], gb[16], ms[16], st[16], rate[16], pk[16], bd[16], rb[16], rr[16];
            fmt_gb(bud, sizeof bud, w->budget_bytes);
            if (!w->ok) {
                fprintf(f, "%-30s %7s  failed: %s\n", w->setting, bud, w->error);
                continue;
            }
            snprintf(us, sizeof us, "%d/%d", w->units_resident, w->units_streamed);
            snprintf(gb, sizeof gb, "%.2f", (double)w->bytes_per_pass / 1e9);
            fmt_num(ms, sizeof ms, w->pass_ms, "%.1f");
            fmt_num(st, sizeof st, w->stall_ms, "%.1f");
            fmt_num(rate, sizeof rate, w->bytes_per_pass ? w->achieved_gbps : -1, "%.1f");
            if (w->peak_vram)
                snprintf(pk, sizeof pk, "%.2f", (double)w->peak_vram / 1e9);
            else
                snprintf(pk, sizeof pk, "-");
            fmt_num(bd, sizeof bd, w->bound_ms, "%.1f");
            fmt_num(rb, sizeof rb, w->ratio_bound, "%.3f");
            fmt_num(rr, sizeof rr, w->ratio_resident, "%.3f");
            fprintf(f, "%-30s %7s %9s %8s %9s %8s %7s %8s %8s %7s %7s\n", w->setting, bud, us, gb,
                    ms, st, rate, pk, bd, rb, rr);
        }
        fprintf(f,
                "\nbudget: weight budget in GB (1e9 B); res/str: resident/streamed units; ms/pass: "
                "median of %d\npasses; stall: compute waiting for uploads (last pass); GB/s: bytes "
                "/ copy time; peak GB:\nmax(plan + arena, measured drop of free device memory); "
                "bound: max(compute-only pass,\nbytes / link); xbound, xresid: ms/pass over the "
                "bound and over the resident pass.\n",
                r->n_rows ? r->rows[0].passes : 0);
        return;
    }
    fprintf(f, "model %s (%s), %dx%d\n\n", r->model, r->dtype, r->width, r->height);
    fprintf(f, "%-34s %-16s %7s %7s %8s %7s %8s %8s %7s %8s\n", "config", "mode used", "load s",
            "cond s", "sample s", "step s", "decode s", "xfer s", "total s", "peak GB");
    for (int i = 0; i < r->n_rows; i++) {
        const sl_bench_row *w = &r->rows[i];
        if (!w->ok) {
            fprintf(f, "%-34s failed: %s\n", w->setting, w->error);
            continue;
        }
        char v[8][16];
        fmt_num(v[0], 16, w->load_s, "%.2f");
        fmt_num(v[1], 16, w->cond_s, "%.3f");
        fmt_num(v[2], 16, w->sampling_s, "%.3f");
        fmt_num(v[3], 16, w->per_step_s, "%.3f");
        fmt_num(v[4], 16, w->decode_s, "%.3f");
        fmt_num(v[5], 16, w->transfer_s, "%.3f");
        fmt_num(v[6], 16, w->total_s, "%.3f");
        if (w->peak_vram)
            snprintf(v[7], 16, "%.2f", (double)w->peak_vram / 1e9);
        else
            snprintf(v[7], 16, "-");
        fprintf(f, "%-34s %-16s %7s %7s %8s %7s %8s %8s %7s %8s\n", w->setting, w->mode_used, v[0],
                v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }
    fprintf(f,
            "\ntimes: medians of %d generations after %d warm-up; peak GB: measured drop of "
            "free device memory.\n",
            r->n_rows ? r->rows[0].passes : 0, r->warmup);
}

/* ---- JSON ---- */

/* Absent numbers (negative times, counts) are written as null. */
static void put_num(cJSON *o, const char *k, double v) {
    if (v < 0 || !isfinite(v))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, v);
}

static void put_bytes(cJSON *o, const char *k, size_t v, bool zero_is_null) {
    if (v == SIZE_MAX || (zero_is_null && v == 0))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, (double)v);
}

static cJSON *row_json(const sl_bench_result *r, const sl_bench_row *w) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "system", w->system);
    cJSON_AddStringToObject(o, "kind", w->kind);
    cJSON_AddStringToObject(o, "setting", w->setting);
    cJSON_AddStringToObject(o, "mode", w->mode);
    cJSON_AddStringToObject(o, "budget", w->budget);
    put_bytes(o, "budget_bytes", w->budget_bytes, false);
    cJSON_AddStringToObject(o, "dtype", w->dtype);
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddNumberToObject(o, "width", w->width);
    cJSON_AddNumberToObject(o, "height", w->height);
    put_num(o, "cap_tokens", w->cap_tokens > 0 ? w->cap_tokens : -1);
    cJSON_AddBoolToObject(o, "ok", w->ok);
    if (!w->ok) cJSON_AddStringToObject(o, "error", w->error);
    put_num(o, "passes", w->passes);
    put_num(o, "units_resident", w->units_resident);
    put_num(o, "units_streamed", w->units_streamed);
    put_bytes(o, "bytes_per_pass", w->bytes_per_pass, !w->ok);
    put_num(o, "pass_ms", w->pass_ms);
    put_num(o, "pass_ms_min", w->pass_ms_min);
    put_num(o, "pass_ms_max", w->pass_ms_max);
    put_num(o, "stall_ms", w->stall_ms);
    put_num(o, "copy_ms", w->copy_ms);
    put_num(o, "compute_ms", w->compute_ms);
    put_num(o, "achieved_gbps", w->bytes_per_pass ? w->achieved_gbps : -1);
    put_num(o, "predicted_ms", w->predicted_ms);
    put_bytes(o, "plan_bytes", w->plan_bytes, !w->ok);
    put_bytes(o, "arena_bytes", w->arena_bytes, true);
    put_bytes(o, "peak_vram_bytes", w->peak_vram, true);
    put_bytes(o, "peak_vram_accounted", w->peak_accounted, true);
    put_bytes(o, "peak_vram_measured", w->peak_measured, true);
    cJSON_AddStringToObject(o, "peak_vram_source",
                            w->peak_vram
                                ? (!strcmp(w->kind, "dit") ? "max(plan + arena, mem_info drop)"
                                                           : "mem_info drop (sampled)")
                                : "not measured");
    put_num(o, "link_gbps", r->link_gbps > 0 ? r->link_gbps : -1);
    put_num(o, "bound_ms", w->bound_ms);
    put_num(o, "ratio_bound", w->ratio_bound);
    put_num(o, "ratio_resident", w->ratio_resident);
    if (!strcmp(w->kind, "pipeline")) {
        put_num(o, "steps", w->steps);
        cJSON_AddStringToObject(o, "mode_used", w->mode_used);
        put_num(o, "load_s", w->load_s);
        put_num(o, "cond_s", w->cond_s);
        put_num(o, "sampling_s", w->sampling_s);
        put_num(o, "per_step_s", w->per_step_s);
        put_num(o, "decode_s", w->decode_s);
        put_num(o, "transfer_s", w->transfer_s);
        put_num(o, "total_s", w->total_s);
        put_num(o, "predicted_s", w->pred_s);
    }
    return o;
}

sl_status sl_bench_write_json(const sl_bench_result *r, const char *path, sl_err *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return sl_err_set(err, SL_ERR_OOM_HOST, "bench: out of memory writing JSON");
    cJSON_AddStringToObject(root, "schema", SL_BENCH_SCHEMA);
    cJSON_AddStringToObject(root, "system", "sluice");
    cJSON_AddStringToObject(root, "kind", r->kind);
    cJSON_AddStringToObject(root, "backend", r->backend);
    cJSON_AddStringToObject(root, "device", r->device);
    cJSON_AddStringToObject(root, "date", r->date);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "dtype", r->dtype);
    put_bytes(root, "model_bytes", r->model_bytes, true);
    put_num(root, "link_gbps", r->link_gbps > 0 ? r->link_gbps : -1);
    put_num(root, "gemm_tflops", r->gemm_tflops > 0 ? r->gemm_tflops : -1);
    cJSON_AddStringToObject(root, "gemm_shape", r->gemm_shape);
    put_num(root, "compute_ms", r->compute_ms);
    cJSON_AddStringToObject(root, "compute_ref", r->compute_ref);
    cJSON_AddNumberToObject(root, "width", r->width);
    cJSON_AddNumberToObject(root, "height", r->height);
    put_num(root, "cap_tokens", r->cap_tokens > 0 ? r->cap_tokens : -1);
    cJSON_AddNumberToObject(root, "warmup", r->warmup);
    put_num(root, "prefetch", r->prefetch > 0 ? r->prefetch : -1);
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    for (int i = 0; i < r->n_rows; i++)
        cJSON_AddItemToArray(rows, row_json(r, &r->rows[i]));
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return sl_err_set(err, SL_ERR_OOM_HOST, "bench: out of memory writing JSON");
    sl_status st = SL_OK;
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = sl_err_set(err, SL_ERR_IO, "bench: cannot write %s: %s", path, strerror(errno));
    } else {
        size_t n = strlen(txt);
        if (fwrite(txt, 1, n, f) != n || fputc('\n', f) == EOF)
            st = sl_err_set(err, SL_ERR_IO, "bench: writing %s failed", path);
        if (fclose(f) != 0 && st == SL_OK)
            st = sl_err_set(err, SL_ERR_IO, "bench: closing %s failed", path);
    }
    cJSON_free(txt);
    return st;
}
