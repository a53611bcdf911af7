/* bench/bench.h — the measurements behind `sluice bench` and docs/BENCHMARKS.md.
 *
 * Two benchmarks, one row format:
 *
 *   sl_bench_dit       the Z-Image DiT alone: one model file, one input shape (latent, caption
 *                      tokens, t), a list of residency configurations (mode × weight budget), each
 *                      run for `warmup` untimed and `passes` timed passes. The fully resident
 *                      configuration runs first: its median pass is the compute-only pass that the
 *                      ratios of every other row refer to.
 *   sl_bench_pipeline  whole generations (text encoder, sampling steps, VAE decode) through the
 *                      public API (include/sluice.h), one engine per --max-vram setting, with the
 *                      per-stage times of sluice_last_timings.
 *
 * Every number of a row is measured in the same process and run:
 *   pass_ms       median of the timed passes: compute-queue events recorded between passes (no
 *                 host synchronisation inside the loop, as in a sampling loop)
 *   stall_ms, copy_ms, bytes_per_pass
 *                 the residency engine's counters of the last timed pass (sl_res_last_stats)
 *   achieved_gbps bytes_per_pass / copy_ms (the rate the copy queue reached while copying)
 *   link_gbps     sl_res_measure_link at start-up (pinned host → device)
 *   bound_ms      max(compute-only pass, bytes_per_pass / link_gbps); the compute-only pass is
 *                 the resident row's median (or, when the model does not fit, the smallest
 *                 compute time the engine measured in a streamed row)
 *   peak_vram     max(accounted, measured): accounted = the plan's device bytes + the activation
 *                 arena + the inputs/outputs; measured = the largest drop of the backend's free
 *                 device memory (mem_info, sampled every 5 ms by a thread during the
 *                 configuration) below the level right after the backend was created (the CUDA
 *                 context and the backend's own cuBLAS workspace are not counted).
 *
 * Budgets are weight budgets in GB (1e9 bytes): device bytes for resident units plus streaming
 * slots, as sl_res_plan_opts.budget; activations come on top. "min" is the smallest budget the
 * planner accepts (found by bisection), "all" the weight budget of the whole free device.
 *
 * Library code: nothing here prints except through core/log and the explicit FILE* of
 * sl_bench_print. */
#ifndef SL_BENCH_BENCH_H
#define SL_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#define SL_BENCH_SCHEMA "sluice-bench/1"

/* One configuration's numbers. Fields that do not apply stay at their "absent" value: -1 for
 * counts and times, 0 for byte counts of peak VRAM that could not be measured. */
typedef struct sl_bench_row {
    char system[16];     /* "sluice" */
    char kind[12];       /* "dit" or "pipeline" */
    char mode[24];       /* "none", "layer_streaming" (dit); an offload mode name (pipeline) */
    char budget[16];     /* "all", "min", "8" (GB) for dit; "12", "unlimited" for pipeline */
    char setting[64];    /* human label: "layer_streaming min" */
    char dtype[16];      /* weight dtype of the DiT file ("bf16", "f8_e4m3", "q8_0") */
    size_t budget_bytes; /* the budget in bytes (SIZE_MAX: no limit) */
    int width, height, cap_tokens;
    int passes; /* timed passes (dit) or generations (pipeline) */
    int units_resident, units_streamed;
    size_t bytes_per_pass;                    /* weights uploaded in one pass */
    double pass_ms, pass_ms_min, pass_ms_max; /* median, fastest, slowest timed pass */
    double stall_ms, copy_ms, compute_ms;     /* residency counters of the last timed pass */
    double achieved_gbps;
    double predicted_ms; /* the planner's prediction for the placement */
    size_t plan_bytes;   /* device bytes of the plan (resident units + slots) */
    size_t arena_bytes;  /* activation arena + inputs/outputs */
    size_t peak_vram, peak_accounted, peak_measured;
    double bound_ms, ratio_bound, ratio_resident;
    /* pipeline rows (seconds; -1 when absent) */
    int steps;
    char mode_used[24];
    double load_s, cond_s, sampling_s, decode_s, transfer_s, total_s, per_step_s, pred_s;
    bool ok;
    char error[512];
} sl_bench_row;

/* A run: the header of the table and its rows. */
typedef struct sl_bench_result {
    char kind[12];    /* "dit" or "pipeline" */
    char backend[16]; /* backend name */
    char device[128]; /* backend info.device */
    char date[40];    /* ISO 8601, local time with offset */
    char model[512];  /* DiT file */
    char dtype[16];
    size_t model_bytes;   /* bytes of the DiT's weights as the engine packs them */
    double link_gbps;     /* measured pinned host→device rate (0: not measured) */
    double gemm_tflops;   /* measured GEMM rate at the DiT's FFN shape (0: not measured) */
    char gemm_shape[48];  /* "M=4352 N=10240 K=3840 bf16" */
    double compute_ms;    /* the compute-only pass the ratios use (-1: none) */
    char compute_ref[24]; /* "resident" or "streamed compute" */
    int width, height, cap_tokens, warmup, prefetch;
    sl_bench_row *rows;
    int n_rows, cap_rows;
} sl_bench_result;

void sl_bench_result_free(sl_bench_result *r); /* frees rows; NULL is fine */

typedef struct sl_bench_opts {
    const char *model_path; /* the DiT (safetensors / GGUF) */
    /* "auto" (cuda when built with it, else cpu), "cuda", "cpu", or "cpu-device[:BYTES]" (the
     * CPU backend presenting itself as a device with BYTES of memory, default 64 GiB, and an
     * asynchronous copy queue: streaming runs exactly as on a GPU) */
    const char *backend;
    int threads;       /* CPU threads (<= 0: all) */
    int width, height; /* image size (multiples of 16) */
    int cap_tokens;    /* caption tokens (random cap_feats) */
    int passes, warmup, prefetch;
    const char *modes;   /* comma list of none, layer_streaming */
    const char *budgets; /* comma list of min, all, or GB numbers */
    double tflops;       /* planner's compute-rate guess before measuring (<= 0: 100) */
    uint64_t seed;       /* inputs */
    bool skip_gemm;      /* do not measure the GEMM rate */
} sl_bench_opts;

void sl_bench_opts_init(sl_bench_opts *o); /* the defaults of `sluice bench` */

/* Run the DiT benchmark. Configurations that fail (a budget below the minimum, out of memory)
 * become rows with ok = false and the message, and the run goes on; a failure to open the model
 * or the backend returns the status. */
sl_status sl_bench_dit(const sl_bench_opts *o, sl_bench_result *out, sl_err *err);

typedef struct sl_bench_pipe_opts {
    const char *diffusion_model, *llm, *vae; /* component files */
    const char *backend;                     /* as sluice_engine_params.backend */
    int threads;
    int width, height, steps;
    const char *prompt;
    const char *max_vram; /* comma list of GB values; 0 or "unlimited": no cap */
    const char *modes;    /* comma list of offload modes ("auto", "layer_streaming", ...) */
    int runs, warmup;     /* timed and untimed generations per configuration */
    int64_t seed;
    const char *dtype; /* label of the DiT's weight dtype for the rows (NULL: "-") */
} sl_bench_pipe_opts;

void sl_bench_pipe_opts_init(sl_bench_pipe_opts *o);

/* Whole generations: a row per (mode, --max-vram) pair; a configuration that fails (does not
 * fit, say) is a row with ok = false and the engine's message. */
sl_status sl_bench_pipeline(const sl_bench_pipe_opts *o, sl_bench_result *out, sl_err *err);

/* Write a synthetic model (models/synth.h) for the benchmark unless the file is there already:
 * `dir`/<arch>-<size>-<layout>-<dtype>.<safetensors|gguf> (GGUF for block dtypes). The path is
 * written to path_out. Writes through P.partial and a rename, so a file that exists is whole. */
sl_status sl_bench_synth(const char *arch, const char *size, const char *dtype, const char *layout,
                         const char *dir, char *path_out, size_t n, sl_err *err);

/* The table (one line per row, header naming device and date) for a terminal. */
void sl_bench_print(FILE *f, const sl_bench_result *r);
/* The run as JSON (schema SL_BENCH_SCHEMA; bench/README.md documents the fields). */
sl_status sl_bench_write_json(const sl_bench_result *r, const char *path, sl_err *err);

/* Median of n values (the array is sorted in place); -1 when n == 0. */
double sl_bench_median(double *v, int n);
/* Parse a budget token: "min" → *is_min, "all" → SIZE_MAX, a GB number → bytes. */
sl_status sl_bench_parse_budget(const char *tok, size_t *bytes, bool *is_min, sl_err *err);

#endif
