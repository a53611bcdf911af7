/* sluice bench — the DiT under offload configurations, or whole generations (--pipeline).
 *
 * Argument parsing only: the measurements live in src/bench/ (bench/bench.h), which documents
 * what every number means. bench/README.md shows how the GPU run assembles the published table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cmds.h"
#include "core/log.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: sluice bench [options]              the Z-Image DiT under offload configurations\n"
        "       sluice bench --pipeline [options]   whole generations through the public API\n"
        "\n"
        "Model (one of):\n"
        "  --diffusion-model PATH  Z-Image DiT (.safetensors or .gguf)\n"
        "  --synth DTYPE           write a synthetic Z-Image first (bf16, fp8, q8_0, q4_0, ...;\n"
        "                          --pipeline also writes a bf16 Qwen3 and a bf16 FLUX VAE), kept\n"
        "                          in --workdir and reused when present\n"
        "  --synth-size S          full (default) | tiny\n"
        "  --workdir DIR           where --synth writes (default /tmp/sluice-bench)\n"
        "\n"
        "DiT mode (default):\n"
        "  -W, --width N, -H, --height N   image size (default 1024 x 1024)\n"
        "  --cap-tokens N          caption tokens, random features (default 256)\n"
        "  --passes N              timed passes per configuration, median reported (default 5)\n"
        "  --warmup N              untimed passes first (default 2)\n"
        "  --modes LIST            none,layer_streaming (default both; the resident run always\n"
        "                          comes first: it is the compute-only reference)\n"
        "  --budgets LIST          weight budgets for layer_streaming: min, all, or GB (1e9 B)\n"
        "                          (default min,8,12,all)\n"
        "  --prefetch N            streaming prefetch depth (default 1)\n"
        "  --tflops X              the planner's compute-rate guess before the first measured\n"
        "                          pass (default 100)\n"
        "  --no-gemm               skip the GEMM rate measurement\n"
        "\n"
        "Pipeline mode (--pipeline):\n"
        "  --llm PATH, --vae PATH  Qwen3 text encoder and FLUX VAE (or --synth)\n"
        "  --max-vram LIST         caps in GiB as the engine counts them, 0 = unlimited\n"
        "                          (default 12,8,0)\n"
        "  --offload-modes LIST    offload modes (default auto)\n"
        "  --steps N               sampling steps (default 8)\n"
        "  --runs N                timed generations per configuration (default 2)\n"
        "  --warmup N              untimed generations first (default 1)\n"
        "  -W, --width, -H, --height, -p, --prompt TEXT, --seed N\n"
        "\n"
        "Common:\n"
        "  --backend B             auto (default) | cuda | cpu | cpu-device[:BYTES]\n"
        "  -t, --threads N         CPU threads (default: all)\n"
        "  --json FILE             also write the rows as JSON (bench/README.md: the schema)\n"
        "  -h, --help              this text\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static int parse_int(const char *s, int lo, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > 1 << 30) return 0;
    *out = (int)v;
    return 1;
}

int sl_cmd_bench(int argc, char **argv) {
    sl_bench_opts o;
    sl_bench_opts_init(&o);
    sl_bench_pipe_opts po;
    sl_bench_pipe_opts_init(&po);
    const char *synth = NULL, *synth_size = "full", *workdir = "/tmp/sluice-bench", *json = NULL;
    const char *width = NULL, *height = NULL, *warmup = NULL, *seed = NULL, *tflops = NULL;
    const char *passes = NULL, *cap_tokens = NULL, *prefetch = NULL, *threads = NULL;
    const char *steps = NULL, *runs = NULL;
    int pipeline = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char key[64];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof key) {
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = 0;
            a = key;
            val = eq + 1;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--pipeline") || !strcmp(a, "--no-gemm")) {
            if (val) return bad_usage("%s takes no value", a);
            if (!strcmp(a, "--pipeline"))
                pipeline = 1;
            else
                o.skip_gemm = true;
            continue;
        }
        const char **dst = !strcmp(a, "--diffusion-model")               ? &o.model_path
                           : !strcmp(a, "--synth")                       ? &synth
                           : !strcmp(a, "--synth-size")                  ? &synth_size
                           : !strcmp(a, "--workdir")                     ? &workdir
                           : !strcmp(a, "-W") || !strcmp(a, "--width")   ? &width
                           : !strcmp(a, "-H") || !strcmp(a, "--height")  ? &height
                           : !strcmp(a, "--cap-tokens")                  ? &cap_tokens
                           : !strcmp(a, "--passes")                      ? &passes
                           : !strcmp(a, "--warmup")                      ? &warmup
                           : !strcmp(a, "--modes")                       ? &o.modes
                           : !strcmp(a, "--budgets")                     ? &o.budgets
                           : !strcmp(a, "--prefetch")                    ? &prefetch
                           : !strcmp(a, "--tflops")                      ? &tflops
                           : !strcmp(a, "--llm")                         ? &po.llm
                           : !strcmp(a, "--vae")                         ? &po.vae
                           : !strcmp(a, "--max-vram")                    ? &po.max_vram
                           : !strcmp(a, "--offload-modes")               ? &po.modes
                           : !strcmp(a, "--steps")                       ? &steps
                           : !strcmp(a, "--runs")                        ? &runs
                           : !strcmp(a, "-p") || !strcmp(a, "--prompt")  ? &po.prompt
                           : !strcmp(a, "--seed") || !strcmp(a, "-s")    ? &seed
                           : !strcmp(a, "--backend")                     ? &o.backend
                           : !strcmp(a, "-t") || !strcmp(a, "--threads") ? &threads
                           : !strcmp(a, "--json")                        ? &json
                                                                         : NULL;
        if (!dst) return bad_usage("unknown argument '%s'", argv[i]);
        if (!val) {
            if (i + 1 >= argc) return bad_usage("%s needs a value", a);
            val = argv[++i];
        }
        *dst = val;
    }

    int v = 0;
    if (width && !(parse_int(width, 16, &v) && v % 16 == 0))
        return bad_usage("--width '%s' must be a multiple of 16", width);
    if (width) o.width = po.width = v;
    if (height && !(parse_int(height, 16, &v) && v % 16 == 0))
        return bad_usage("--height '%s' must be a multiple of 16", height);
    if (height) o.height = po.height = v;
    if (cap_tokens && !parse_int(cap_tokens, 1, &o.cap_tokens))
        return bad_usage("--cap-tokens '%s' must be >= 1", cap_tokens);
    if (passes && !parse_int(passes, 1, &o.passes))
        return bad_usage("--passes '%s' must be >= 1", passes);
    if (warmup && !parse_int(warmup, 0, &o.warmup))
        return bad_usage("--warmup '%s' must be >= 0", warmup);
    if (warmup) po.warmup = o.warmup;
    if (prefetch && !parse_int(prefetch, 1, &o.prefetch))
        return bad_usage("--prefetch '%s' must be >= 1", prefetch);
    if (threads && !parse_int(threads, 0, &o.threads))
        return bad_usage("--threads '%s' must be >= 0", threads);
    po.threads = o.threads;
    if (steps && !parse_int(steps, 1, &po.steps))
        return bad_usage("--steps '%s' must be >= 1", steps);
    if (runs && !parse_int(runs, 1, &po.runs)) return bad_usage("--runs '%s' must be >= 1", runs);
    if (seed) {
        char *end;
        errno = 0;
        long long s = strtoll(seed, &end, 10);
        if (errno || end == seed || *end || s < 0)
            return bad_usage("--seed '%s' must be >= 0", seed);
        o.seed = (uint64_t)s;
        po.seed = s;
    }
    if (tflops) {
        char *end;
        o.tflops = strtod(tflops, &end);
        if (end == tflops || *end || !(o.tflops > 0))
            return bad_usage("--tflops '%s' must be a positive number", tflops);
    }
    if (strcmp(synth_size, "full") && strcmp(synth_size, "tiny"))
        return bad_usage("--synth-size '%s' (use full or tiny)", synth_size);
    if (synth && o.model_path) return bad_usage("give --diffusion-model or --synth, not both");
    if (!synth && !o.model_path)
        return bad_usage("a model is needed: --diffusion-model or --synth");
    po.backend = o.backend;

    sl_err err = {0};
    char dit_path[1024], llm_path[1024], vae_path[1024];
    if (synth) {
        if (sl_bench_synth("zimage", synth_size, synth, "official", workdir, dit_path,
                           sizeof dit_path, &err) != SL_OK) {
            fprintf(stderr, "sluice bench: %s\n", err.msg);
            return err.status == SL_ERR_INVALID_ARG ? 2 : 1;
        }
        o.model_path = dit_path;
        if (pipeline) {
            if ((!po.llm && sl_bench_synth("qwen3", synth_size, "bf16", "official", workdir,
                                           llm_path, sizeof llm_path, &err) != SL_OK) ||
                (!po.vae && sl_bench_synth("flux-vae", synth_size, "bf16", "official", workdir,
                                           vae_path, sizeof vae_path, &err) != SL_OK)) {
                fprintf(stderr, "sluice bench: %s\n", err.msg);
                return 1;
            }
            if (!po.llm) po.llm = llm_path;
            if (!po.vae) po.vae = vae_path;
        }
        po.dtype = synth;
    }
    po.diffusion_model = o.model_path;

    sl_bench_result r;
    sl_status st = pipeline ? sl_bench_pipeline(&po, &r, &err) : sl_bench_dit(&o, &r, &err);
    if (st != SL_OK) {
        fprintf(stderr, "sluice bench: %s\n", err.msg);
        return st == SL_ERR_INVALID_ARG ? 2 : 1;
    }
    sl_bench_print(stdout, &r);
    fflush(stdout);
    int rc = 0;
    if (json && sl_bench_write_json(&r, json, &err) != SL_OK) {
        fprintf(stderr, "sluice bench: %s\n", err.msg);
        rc = 1;
    }
    /* a configuration that fails (a budget below the minimum) is a row; no row at all is not */
    int n_ok = 0;
    for (int i = 0; i < r.n_rows; i++)
        n_ok += r.rows[i].ok;
    if (!n_ok) rc = 1;
    sl_bench_result_free(&r);
    return rc;
}
