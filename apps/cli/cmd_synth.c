/* sluice synth — write a random-weight model file (tests, benchmarks, demos).
 *
 * Argument parsing only: the tensor lists come from each architecture (models/<arch>/), the
 * writing from models/synth.c. The list functions are plain (strong) references: a weak one
 * would not pull its object out of libsluice.a, and every architecture's list exists. A new
 * architecture that is still being written may start as `#pragma weak` with a NULL check, but
 * only until its list lands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmds.h"
#include "core/log.h"
#include "core/quant.h"
#include "models/synth.h"

typedef sl_status (*list_fn)(const char *, const char *, sl_synth_list *, sl_err *);

typedef struct arch_entry {
    const char *name, *alias;
    list_fn fn;
} arch_entry;

static void usage(FILE *f) {
    fprintf(f,
            "usage: sluice synth --arch ARCH [options] -o PATH\n"
            "       sluice synth --arch ARCH [--size S] [--layout L] --list\n"
            "\n"
            "Write a model file with random weights in the real tensor names, shapes and dtypes.\n"
            "\n"
            "  --arch ARCH      zimage | qwen3 | flux-vae (required)\n"
            "  --size S         tiny (small dims, every tensor name; default) | full (the release)\n"
            "  --dtype T        weight dtype: bf16 (default) | f16 | f32 | fp8 (= f8_e4m3) |\n"
            "                   f8_e5m2 | q8_0 | q4_0 | q4_k (also q4_1 q5_0 q5_1 q5_k q6_k)\n"
            "  --format F       safetensors | gguf (default: gguf when PATH ends in .gguf or the\n"
            "                   dtype is a block type, else safetensors)\n"
            "  --layout L       official (diffusers/HF names; default) | comfy (ComfyUI/BFL names)\n"
            "                   | gguf (qwen3 only: llama.cpp names)\n"
            "  --seed N         random seed, 0 .. 2^64-1 (default 0); same seed -> same bytes\n"
            "  -o, --output P   file to write (written to P.partial, renamed when complete)\n"
            "  --list           print the tensors (name, shape, init) instead of writing\n"
            "  -h, --help       this text\n"
            "\n"
            "Norms, biases, 1-D tensors and rows that are not whole blocks stay f32 (GGUF) or bf16\n"
            "(safetensors with fp8) as real quantised releases do. Block types need --format gguf;\n"
            "fp8 needs safetensors.\n");
}

/* A usage error: the message, then the usage text, on stderr; exit status 2. */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice synth: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return 0;
    *out = (uint64_t)v;
    return 1;
}

static void fmt_bytes(char *buf, size_t n, double b) {
    if (b >= 1e9)
        snprintf(buf, n, "%.2f GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(buf, n, "%.1f MB", b / 1e6);
    else
        snprintf(buf, n, "%.0f bytes", b);
}

static void print_list(const sl_synth_list *l, const char *arch, const char *size,
                       const char *layout) {
    double params = 0;
    for (int i = 0; i < l->n; i++) {
        const sl_synth_tensor *t = &l->t[i];
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[");
        double n = 1;
        for (int d = 0; d < t->ndim; d++) {
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "",
                          (long long)t->ne[d]);
            n *= (double)t->ne[d];
        }
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        params += n;
        char init[64];
        if (t->init == SL_INIT_CONST)
            snprintf(init, sizeof init, "const %g", t->mean);
        else
            snprintf(init, sizeof init, "normal(%g, %g)", t->mean, t->std);
        printf("%-64s %-24s %-22s%s\n", t->name, shape, init, t->keep_float ? " keep-float" : "");
    }
    printf("%s (%s, %s): %d tensors, %.0f parameters\n", arch, size, layout, l->n, params);
}

int sl_cmd_synth(int argc, char **argv) {
    const arch_entry archs[] = {
        {"zimage", "z-image", sl_zimage_synth_list},
        {"qwen3", "qwen3-4b", sl_qwen3_synth_list},
        {"flux-vae", "flux_vae", sl_fluxvae_synth_list},
    };
    const char *arch = NULL, *size = "tiny", *dtype_s = "bf16", *format_s = NULL,
               *layout = "official", *out = NULL;
    uint64_t seed = 0;
    int list = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char key[64];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof key) { /* --flag=value */
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = 0;
            a = key;
            val = eq + 1;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            if (val) return bad_usage("--list takes no value");
            list = 1;
            continue;
        }
        const char **dst = !strcmp(a, "--arch")                       ? &arch
                           : !strcmp(a, "--size")                     ? &size
                           : !strcmp(a, "--dtype") || !strcmp(a, "--type") ? &dtype_s
                           : !strcmp(a, "--format")                   ? &format_s
                           : !strcmp(a, "--layout")                   ? &layout
                           : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out
                                                                      : NULL;
        int is_seed = !strcmp(a, "--seed") || !strcmp(a, "-s");
        if (!dst && !is_seed) return bad_usage("unknown argument '%s'", argv[i]);
        if (!val) {
            if (i + 1 >= argc) return bad_usage("%s needs a value", a);
            val = argv[++i];
        }
        if (is_seed) {
            if (!parse_u64(val, &seed))
                return bad_usage("--seed '%s' is not an integer in 0 .. 2^64-1", val);
        } else {
            *dst = val;
        }
    }

    if (!arch) return bad_usage("--arch is required (zimage, qwen3 or flux-vae)");
    const arch_entry *ae = NULL;
    for (size_t k = 0; k < sizeof archs / sizeof archs[0]; k++)
        if (!strcmp(arch, archs[k].name) || !strcmp(arch, archs[k].alias)) ae = &archs[k];
    if (!ae) return bad_usage("unknown --arch '%s' (use zimage, qwen3 or flux-vae)", arch);
    if (strcmp(size, "tiny") && strcmp(size, "full"))
        return bad_usage("unknown --size '%s' (use tiny or full)", size);
    int dt = sl_dtype_from_name(dtype_s);
    if (dt < 0 || !sl_dtype_get((sl_dtype)dt)->is_float || !sl_quant_supported((sl_dtype)dt))
        return bad_usage("unknown or unwritable --dtype '%s' (use bf16, f16, f32, fp8, q8_0, q4_0 "
                         "or q4_k)",
                         dtype_s);
    const int is_block = sl_dtype_get((sl_dtype)dt)->is_quant;
    sl_synth_format fmt;
    if (format_s) {
        if (!strcmp(format_s, "safetensors"))
            fmt = SL_SYNTH_SAFETENSORS;
        else if (!strcmp(format_s, "gguf"))
            fmt = SL_SYNTH_GGUF;
        else
            return bad_usage("unknown --format '%s' (use safetensors or gguf)", format_s);
    } else {
        fmt = (out && ends_with(out, ".gguf")) || is_block ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS;
    }
    if (is_block && fmt != SL_SYNTH_GGUF)
        return bad_usage("--dtype %s is a GGUF block type; use --format gguf", dtype_s);
    if ((dt == SL_DTYPE_F8_E4M3 || dt == SL_DTYPE_F8_E5M2) && fmt != SL_SYNTH_SAFETENSORS)
        return bad_usage("--dtype %s needs --format safetensors (GGUF has no fp8 type)", dtype_s);
    if (!list && !out) return bad_usage("-o PATH is required (or --list to only print)");

    sl_err err = {0};
    sl_synth_list l = {0};
    sl_status st = ae->fn(size, layout, &l, &err);
    if (st) {
        sl_synth_list_free(&l);
        if (st == SL_ERR_INVALID_ARG) return bad_usage("%s", err.msg); /* e.g. an unknown layout */
        fprintf(stderr, "sluice synth: %s\n", err.msg);
        return 1;
    }
    if (list) {
        print_list(&l, ae->name, size, layout);
        sl_synth_list_free(&l);
        return 0;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sl_synth_opts o = {(sl_dtype)dt, fmt, seed};
    st = sl_synth_write(&l, &o, out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st) {
        fprintf(stderr, "sluice synth: %s\n", err.msg);
        sl_synth_list_free(&l);
        return 1;
    }
    double params = 0;
    for (int i = 0; i < l.n; i++) {
        double n = 1;
        for (int d = 0; d < l.t[i].ndim; d++) n *= (double)l.t[i].ne[d];
        params += n;
    }
    struct stat sb;
    char bytes[32] = "?";
    if (stat(out, &sb) == 0) fmt_bytes(bytes, sizeof bytes, (double)sb.st_size);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("wrote %s: %s %s %s (%s), %d tensors, %.0f parameters, %s, seed %llu, %.2f s\n", out,
           ae->name, size, sl_dtype_name((sl_dtype)dt), fmt == SL_SYNTH_GGUF ? "gguf" : "safetensors",
           l.n, params, bytes, (unsigned long long)seed, secs);
    sl_synth_list_free(&l);
    return 0;
}
