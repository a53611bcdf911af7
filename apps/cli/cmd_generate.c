/* sluice generate — txt2img with stable-diffusion.cpp's command line (specs/cli-server.md §1).
 *
 * Argument parsing, console output and files only; the work is include/sluice.h. Parsing rules
 * are sd.cpp's: every option is its own token and its value is the next token; an unknown option
 * prints `error: unknown argument: X`, the usage and exits 1; a missing value prints `error:
 * invalid parameter for argument: X`; a bad value or a failed check after parsing prints the
 * error and the usage and exits 1; -h prints the usage and exits 0. sluice's memory flags are
 * --[no-]name pairs. Exit 0 when every image was written, 1 otherwise with the library's message.
 *
 * Console (§1.11): log lines `[LEVEL] sluice - message` (INFO/WARN on stdout, ERROR on stderr,
 * DEBUG with -v; all on stderr with --json, whose object is the only thing on stdout), the
 * sampling progress bar on stderr. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "io/image.h"
#include "pipeline/pipeline.h"
#include "samplers/sampler.h"
#include "sluice.h"

typedef struct opts {
    sluice_engine_params ep;
    sluice_gen_params gp;
    const char *output;
    int output_begin;
    bool verbose, json, no_metadata;
    bool seed_given;
    const char *sched_name; /* the scheduler's canonical id ("normal" → "discrete") */
} opts;

static void usage(FILE *f, const char *argv0) {
    fprintf(
        f,
        "usage: %s [options]   (also: sluice generate [options])\n"
        "\n"
        "CLI Options:\n"
        "  -o, --output <string>              path to write the result image to; %%d or %%0Nd "
        "is replaced\n"
        "                                     by the image index (default: ./output.png)\n"
        "  --output-begin-idx <int>           first index for %%d and _N names (default: 0)\n"
        "  -v, --verbose                      print debug log lines\n"
        "  --json                             print timings per stage and the files as JSON "
        "on stdout\n"
        "  --profile                          print the residency profile line of every pass "
        "(also SLUICE_PROFILE=1)\n"
        "  --disable-image-metadata           do not write the parameters text chunk\n"
        "  -h, --help                         show this help message and exit\n"
        "\n"
        "Context Options:\n"
        "  -m, --model <string>               path to the model: a diffusers folder "
        "(transformer/, text_encoder/,\n"
        "                                     vae/, tokenizer/) or a single file\n"
        "  --diffusion-model <string>         path to the standalone diffusion model "
        "(safetensors or gguf)\n"
        "  --llm <string>                     path to the Qwen3 text encoder (safetensors or "
        "gguf)\n"
        "  --vae <string>                     path to the standalone VAE\n"
        "  --tokenizer <string>               path to a tokenizer.json (default: the model "
        "folder's, else built in)\n"
        "  -t, --threads <int>                CPU threads (default: -1, all cores)\n"
        "  --backend <string>                 cpu | cuda | auto (default: auto)\n"
        "  --max-vram <float>                 VRAM budget in GiB (0: free VRAM decides; "
        "negative: keep that many GiB free)\n"
        "  --offload-mode <string>            none | cond_only | cond_diffusion | aggressive |\n"
        "                                     layer_streaming | auto (default: auto)\n"
        "  --offload-cond-stage, --no-offload-cond-stage\n"
        "                                     park the text encoder after conditioning (or "
        "not)\n"
        "  --offload-diffusion, --no-offload-diffusion\n"
        "                                     park the diffusion model after sampling (or "
        "not)\n"
        "  --reload-cond-stage, --no-reload-cond-stage\n"
        "                                     load a parked text encoder back after the "
        "request (or not)\n"
        "  --reload-diffusion, --no-reload-diffusion\n"
        "                                     load a parked diffusion model back after the "
        "request (or not)\n"
        "  --offload-log, --no-offload-log    log every stage transition and plan\n"
        "  --vram-estimation <string>         dryrun | formula: how activation memory is "
        "sized (default: dryrun)\n"
        "  --streaming-prefetch <int>         units uploaded ahead when streaming (default: "
        "1)\n"
        "  --streaming-min-vram <int>         MB of VRAM left free for others (default: "
        "512)\n"
        "\n"
        "Generation Options:\n"
        "  -M, --mode <string>                img_gen (the only mode)\n"
        "  -p, --prompt <string>              the prompt to render\n"
        "  -n, --negative-prompt <string>     the negative prompt (used when cfg-scale > 1)\n"
        "  -W, --width <int>                  image width in pixels, a multiple of 16 "
        "(default: 512)\n"
        "  -H, --height <int>                 image height in pixels, a multiple of 16 "
        "(default: 512)\n"
        "  --steps <int>                      number of sample steps (default: 8)\n"
        "  --cfg-scale <float>                classifier-free guidance scale (default: 1.0, "
        "no guidance)\n"
        "  -s, --seed <int>                   RNG seed; < 0 for a random seed (default: 42)\n"
        "  -b, --batch-count <int>            number of images, seeds seed, seed+1, ... "
        "(default: 1)\n"
        "  --sampling-method <string>         euler (default: euler)\n"
        "  --scheduler <string>               auto | simple | discrete | karras | exponential "
        "| sgm_uniform | lcm\n"
        "                                     (default: auto, the model's reference "
        "schedule)\n"
        "  --flow-shift <float>               shift of the flow schedule (default: 3.0)\n",
        argv0);
}

/* ---- console ---- */

static bool g_verbose, g_json;

static void log_sink(int level, const char *msg, void *user) {
    (void)user;
    static const char *const tag[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level == 0 && !g_verbose) return;
    FILE *f = level >= 3 || g_json ? stderr : stdout;
    fprintf(f, "[%s] sluice - %s\n", tag[level >= 0 && level <= 3 ? level : 3], msg);
    fflush(f);
}

typedef struct bar {
    int last_image;
} bar;

/* sd.cpp's bar: "\r  |====>    | i/N - X.XXs/it" (it/s when faster), erase to end of line, a
 * newline after the last step; sluice adds the ETA. */
static int on_progress(void *user, const sluice_progress *p) {
    bar *b = user;
    if (strcmp(p->stage, "sampling")) return 0;
    b->last_image = p->image;
    const int W = 50;
    int pos = p->steps ? W * p->step / p->steps : W;
    char cells[64];
    for (int i = 0; i < W; i++)
        cells[i] = i < pos ? '=' : i == pos ? '>' : ' ';
    cells[W] = 0;
    double per = p->step ? p->stage_elapsed_s / p->step : 0;
    double eta = per * (p->steps - p->step);
    char rate[48];
    if (per >= 1.0 || per == 0)
        snprintf(rate, sizeof rate, "%.2fs/it", per);
    else
        snprintf(rate, sizeof rate, "%.2fit/s", 1.0 / per);
    fprintf(stderr, "\r  |%s| %d/%d - %s, ETA %.0fs\033[K", cells, p->step, p->steps, rate, eta);
    if (p->step == p->steps) fprintf(stderr, "\n");
    fflush(stderr);
    return 0;
}

/* ---- parsing ---- */

static int fail_usage(const char *argv0, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail_usage(const char *argv0, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr, argv0);
    return 1;
}

static bool parse_i64(const char *s, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, int *out) {
    long long v;
    if (!parse_i64(s, &v) || v < -2147483647LL || v > 2147483647LL) return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = (float)v;
    return true;
}

enum { T_STR, T_INT, T_I64, T_FLOAT, T_FLAG };

typedef struct flag {
    const char *s, *l;
    int type;
    void *dst;
    int set_to; /* T_FLAG: value stored (int) */
} flag;

/* Returns -1 to continue, or the exit status. */
static int parse(int argc, char **argv, opts *o) {
    const char *argv0 = "sluice";
    sluice_engine_params_init(&o->ep);
    sluice_gen_params_init(&o->gp);
    o->output = "output.png";
    int threads = -1, prefetch = 1, min_vram = 512, help = 0;
    int offload_log = 0, profile = 0, verbose = 0, json = 0, no_meta = 0;
    long long seed = 42;
    float max_vram = 0;
    const char *backend = "auto", *mode = NULL, *vram_est = "dryrun", *run_mode = "img_gen";
    const flag flags[] = {
        {"-m", "--model", T_STR, &o->ep.model_path, 0},
        {NULL, "--diffusion-model", T_STR, &o->ep.diffusion_model_path, 0},
        {NULL, "--vae", T_STR, &o->ep.vae_path, 0},
        {NULL, "--llm", T_STR, &o->ep.llm_path, 0},
        {NULL, "--tokenizer", T_STR, &o->ep.tokenizer_path, 0},
        {"-p", "--prompt", T_STR, &o->gp.prompt, 0},
        {"-n", "--negative-prompt", T_STR, &o->gp.negative_prompt, 0},
        {"-W", "--width", T_INT, &o->gp.width, 0},
        {"-H", "--height", T_INT, &o->gp.height, 0},
        {NULL, "--steps", T_INT, &o->gp.steps, 0},
        {NULL, "--cfg-scale", T_FLOAT, &o->gp.cfg_scale, 0},
        {"-s", "--seed", T_I64, &seed, 0},
        {"-b", "--batch-count", T_INT, &o->gp.batch_count, 0},
        {"-o", "--output", T_STR, &o->output, 0},
        {NULL, "--output-begin-idx", T_INT, &o->output_begin, 0},
        {NULL, "--sampling-method", T_STR, &o->gp.sampling_method, 0},
        {NULL, "--scheduler", T_STR, &o->gp.scheduler, 0},
        {NULL, "--flow-shift", T_FLOAT, &o->gp.flow_shift, 0},
        {"-t", "--threads", T_INT, &threads, 0},
        {"-v", "--verbose", T_FLAG, &verbose, 1},
        {"-M", "--mode", T_STR, &run_mode, 0},
        {NULL, "--backend", T_STR, &backend, 0},
        {NULL, "--max-vram", T_FLOAT, &max_vram, 0},
        {NULL, "--offload-mode", T_STR, &mode, 0},
        {NULL, "--offload-cond-stage", T_FLAG, &o->ep.offload_cond_stage, 1},
        {NULL, "--no-offload-cond-stage", T_FLAG, &o->ep.offload_cond_stage, 0},
        {NULL, "--offload-diffusion", T_FLAG, &o->ep.offload_diffusion, 1},
        {NULL, "--no-offload-diffusion", T_FLAG, &o->ep.offload_diffusion, 0},
        {NULL, "--reload-cond-stage", T_FLAG, &o->ep.reload_cond_stage, 1},
        {NULL, "--no-reload-cond-stage", T_FLAG, &o->ep.reload_cond_stage, 0},
        {NULL, "--reload-diffusion", T_FLAG, &o->ep.reload_diffusion, 1},
        {NULL, "--no-reload-diffusion", T_FLAG, &o->ep.reload_diffusion, 0},
        {NULL, "--offload-log", T_FLAG, &offload_log, 1},
        {NULL, "--no-offload-log", T_FLAG, &offload_log, 0},
        {NULL, "--vram-estimation", T_STR, &vram_est, 0},
        {NULL, "--streaming-prefetch", T_INT, &prefetch, 0},
        {NULL, "--streaming-min-vram", T_INT, &min_vram, 0},
        {NULL, "--profile", T_FLAG, &profile, 1},
        {NULL, "--json", T_FLAG, &json, 1},
        {NULL, "--disable-image-metadata", T_FLAG, &no_meta, 1},
        {"-h", "--help", T_FLAG, &help, 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const flag *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof *flags && !f; k++)
            if ((flags[k].s && !strcmp(a, flags[k].s)) || !strcmp(a, flags[k].l)) f = &flags[k];
        if (!f) return fail_usage(argv0, "unknown argument: %s", a);
        if (f->type == T_FLAG) {
            *(int *)f->dst = f->set_to;
            if (f->dst == &help) {
                usage(stdout, argv0);
                return 0;
            }
            continue;
        }
        if (i + 1 >= argc) return fail_usage(argv0, "invalid parameter for argument: %s", a);
        const char *v = argv[++i];
        bool ok = true;
        switch (f->type) {
        case T_STR:
            *(const char **)f->dst = v;
            break;
        case T_INT:
            ok = parse_int(v, f->dst);
            break;
        case T_I64:
            ok = parse_i64(v, f->dst);
            break;
        case T_FLOAT:
            ok = parse_float(v, f->dst);
            break;
        }
        if (!ok) return fail_usage(argv0, "invalid value '%s' for argument: %s", v, a);
        if (f->dst == &seed) o->seed_given = true;
    }
    /* enumerations and checks after parsing */
    if (strcmp(run_mode, "img_gen")) {
        fprintf(stderr, "error: mode '%s' is not supported (sluice runs img_gen: text to image)\n",
                run_mode);
        return 1;
    }
    if (mode) {
        int m = sluice_offload_mode_parse(mode);
        if (m < 0)
            return fail_usage(argv0,
                              "invalid offload mode '%s' (none, cond_only, cond_diffusion, "
                              "aggressive, layer_streaming, auto)",
                              mode);
        o->ep.offload_mode = (sluice_offload_mode)m;
    }
    if (strcmp(vram_est, "dryrun") && strcmp(vram_est, "formula"))
        return fail_usage(argv0, "invalid --vram-estimation '%s' (dryrun or formula)", vram_est);
    o->ep.vram_estimation_formula = !strcmp(vram_est, "formula");
    if (strcmp(backend, "cpu") && strcmp(backend, "cuda") && strcmp(backend, "auto") &&
        strncmp(backend, "cpu-device", 10))
        return fail_usage(argv0, "invalid backend '%s' (cpu, cuda or auto)", backend);
    sl_err er = {0};
    sl_sample_method sm;
    sl_scheduler sc;
    if (sl_sampler_parse_method(o->gp.sampling_method, &sm, &er) != SL_OK)
        return fail_usage(argv0, "%s", er.msg);
    if (sm != SL_SAMPLE_EULER)
        return fail_usage(argv0, "sampling method '%s' is not implemented yet (use euler)",
                          o->gp.sampling_method);
    sl_err_clear(&er);
    if (sl_sampler_parse_scheduler(o->gp.scheduler, &sc, &er) != SL_OK)
        return fail_usage(argv0, "%s", er.msg);
    o->sched_name = sl_sampler_scheduler_name(sc);
    if (o->gp.width <= 0 || o->gp.height <= 0 || o->gp.width % 16 || o->gp.height % 16)
        return fail_usage(argv0, "width and height must be positive multiples of 16, got %dx%d",
                          o->gp.width, o->gp.height);
    if (o->gp.steps <= 0) return fail_usage(argv0, "steps must be > 0, got %d", o->gp.steps);
    if (o->gp.batch_count <= 0)
        return fail_usage(argv0, "batch count must be > 0, got %d", o->gp.batch_count);
    if (o->gp.cfg_scale < 0) return fail_usage(argv0, "cfg-scale must be >= 0");
    if (prefetch < 1 || prefetch > 16)
        return fail_usage(argv0, "--streaming-prefetch must be 1..16, got %d", prefetch);
    if (min_vram < 0) return fail_usage(argv0, "--streaming-min-vram must be >= 0 MB");
    if (!o->ep.model_path && !o->ep.diffusion_model_path)
        return fail_usage(argv0, "the following arguments are required: -m/--model or "
                                 "--diffusion-model");
    char probe[4096];
    sl_err_clear(&er);
    if (sl_pipe_output_path(o->output, 0, o->gp.batch_count, o->output_begin, probe, sizeof probe,
                            &er) != SL_OK)
        return fail_usage(argv0, "%s", er.msg);
    o->gp.seed = seed;
    o->ep.backend = backend;
    o->ep.threads = threads;
    o->ep.streaming_prefetch = prefetch;
    o->ep.streaming_min_vram_mb = min_vram;
    if (max_vram < 0) {
        /* sd.cpp: negative = auto-detect free VRAM keeping that many GiB spare */
        o->ep.streaming_min_vram_mb = (int)(-max_vram * 1024.0f);
        o->ep.max_vram_gb = 0;
    } else {
        o->ep.max_vram_gb = max_vram;
    }
    o->ep.offload_log = offload_log;
    o->ep.profile = profile;
    o->verbose = verbose;
    o->json = json;
    o->no_metadata = no_meta;
    return -1;
}

/* ---- output ---- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void print_json(const opts *o, sluice_engine *e, char paths[][4096], const sluice_image *im,
                       int n, double wall_s) {
    sluice_timings t;
    sluice_last_timings(e, &t);
    FILE *f = stdout;
    fprintf(f, "{\"backend\":");
    json_str(f, sluice_engine_backend(e));
    fprintf(f, ",\"device\":");
    json_str(f, sluice_engine_device(e));
    fprintf(f, ",\"mode\":");
    json_str(f, sluice_offload_mode_name(t.mode));
    fprintf(f, ",\"predicted_s\":%.6f,\"width\":%d,\"height\":%d,\"steps\":%d,\"images\":[",
            t.predicted_s, o->gp.width, o->gp.height, t.steps);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{\"path\":", i ? "," : "");
        json_str(f, paths[i]);
        fprintf(f, ",\"seed\":%lld}", (long long)im[i].seed);
    }
    fprintf(f,
            "],\"timings\":{\"load_s\":%.6f,\"conditioning_s\":%.6f,\"sampling_s\":%.6f,"
            "\"decoding_s\":%.6f,\"transfer_s\":%.6f,\"total_s\":%.6f,\"per_step_s\":%.6f,"
            "\"wall_s\":%.6f}}\n",
            t.load_s, t.conditioning_s, t.sampling_s, t.decoding_s, t.transfer_s, t.total_s,
            t.per_step_s, wall_s);
    fflush(f);
}

/* A failure: the message on stderr, and with --json an {"error": ...} object on stdout. */
static void fail_json(const opts *o, const char *msg) {
    fprintf(stderr, "[ERROR] sluice - %s\n", msg);
    if (!o->json) return;
    fprintf(stdout, "{\"error\":");
    json_str(stdout, msg);
    fprintf(stdout, "}\n");
    fflush(stdout);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sl_cmd_generate(int argc, char **argv) {
    double t0 = now_s();
    opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    g_verbose = o.verbose;
    g_json = o.json;
    sluice_set_log(log_sink, NULL, o.verbose ? 0 : 1);

    char err[2048];
    sluice_engine *e = NULL;
    if (sluice_engine_open(&o.ep, &e, err, sizeof err) != 0) {
        fail_json(&o, err);
        sluice_set_log(NULL, NULL, 1);
        return 1;
    }
    bar b = {0};
    sluice_image *im = NULL;
    int n = 0;
    if (sluice_generate(e, &o.gp, on_progress, &b, &im, &n, err, sizeof err) != 0) {
        fail_json(&o, err);
        sluice_engine_close(e);
        sluice_set_log(NULL, NULL, 1);
        return 1;
    }
    char(*paths)[4096] = calloc((size_t)n, sizeof *paths);
    rc = paths ? 0 : 1;
    const char *sched = o.sched_name;
    for (int i = 0; i < n && rc == 0; i++) {
        sl_err er = {0};
        if (sl_pipe_output_path(o.output, i, n, o.output_begin, paths[i], sizeof paths[i], &er) ||
            sl_mkdirs_for(paths[i], &er)) {
            fprintf(stderr, "[ERROR] sluice - %s\n", er.msg);
            rc = 1;
            break;
        }
        char *params = NULL;
        sl_image_text txt = {"parameters", ""};
        if (!o.no_metadata) {
            sl_pipe_infotext it = {.prompt = o.gp.prompt,
                                   .negative_prompt = o.gp.negative_prompt,
                                   .steps = o.gp.steps,
                                   .cfg_scale = o.gp.cfg_scale,
                                   .guidance = 3.5f,
                                   .flow_shift = o.gp.flow_shift > 0 ? o.gp.flow_shift : 3.0f,
                                   .seed = im[i].seed,
                                   .width = im[i].width,
                                   .height = im[i].height,
                                   .model_path = o.ep.model_path,
                                   .llm_path = o.ep.llm_path,
                                   .diffusion_model_path = o.ep.diffusion_model_path,
                                   .vae_path = o.ep.vae_path,
                                   .rng = "philox",
                                   .sampler = "euler",
                                   .scheduler = sched,
                                   .version = SLUICE_VERSION};
            size_t len = sl_pipe_infotext_format(&it, NULL, 0);
            params = malloc(len + 1);
            if (params) sl_pipe_infotext_format(&it, params, len + 1);
            txt.value = params ? params : "";
        }
        if (sl_png_write(paths[i], im[i].data, im[i].width, im[i].height, &txt,
                         o.no_metadata ? 0 : 1, &er) != SL_OK) {
            fprintf(stderr, "[ERROR] sluice - %s\n", er.msg);
            rc = 1;
        } else {
            char line[4200];
            snprintf(line, sizeof line, "save result image %d to '%s'", i, paths[i]);
            log_sink(1, line, NULL);
        }
        free(params);
    }
    if (rc == 0 && o.json) print_json(&o, e, paths, im, n, now_s() - t0);
    free(paths);
    sluice_images_free(im, n);
    sluice_engine_close(e);
    sluice_set_log(NULL, NULL, 1);
    return rc;
}
