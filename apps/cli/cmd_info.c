/* sluice info — describe model files: format, tensor count, dtypes and bytes, metadata.
 *
 * Argument parsing and printing only; every file is opened and fully validated by the weight
 * directory (io/wdir.h), so a file `info` accepts is one the engine can map. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "io/wdir.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: sluice info [--tensors] [--meta] FILE...\n"
           "\n"
           "Validate and describe model files: format, tensor count, tensors and bytes per dtype,\n"
           "total bytes, architecture and metadata. FILE is a .safetensors or .gguf file, a\n"
           "*.safetensors.index.json (all its shards), or a folder holding one of those.\n"
           "\n"
           "  --tensors    list every tensor: name, dtype, shape, bytes\n"
           "  --meta       print every metadata key with its full value\n"
           "  -h, --help   this text\n"
           "\n"
           "Exit status: 0 when every file is valid, 1 when one is not (the error says why),\n"
           "2 on a usage error.\n");
}

static const char *human(unsigned long long b, char *buf, size_t n) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024.0 && u < 4)
        v /= 1024.0, u++;
    if (u == 0)
        snprintf(buf, n, "%llu B", b);
    else
        snprintf(buf, n, "%.2f %s", v, unit[u]);
    return buf;
}

/* Prints value on one line, control characters shown as spaces, cut at max bytes (0: all). */
static void print_value(const char *v, size_t max) {
    size_t n = strlen(v);
    size_t k = max && n > max ? max : n;
    for (size_t i = 0; i < k; i++)
        putchar((unsigned char)v[i] < 0x20 ? ' ' : v[i]);
    if (k < n) printf("... (%zu bytes)", n);
}

static const char *const g_arch_keys[] = {"general.architecture", "sluice.arch",
                                          "modelspec.architecture"};

static int describe(const char *path, int tensors, int all_meta) {
    sl_wdir *d = NULL;
    sl_err err = {0};
    if (sl_wdir_open(&d, &path, 1, &err)) {
        fprintf(stderr, "sluice info: %s\n", err.msg);
        return 1;
    }
    int nf = sl_wdir_file_count(d), n = sl_wdir_count(d);
    sl_file_format fmt = sl_wdir_file_format(d, 0);
    int mixed = 0;
    for (int i = 1; i < nf; i++)
        mixed |= sl_wdir_file_format(d, i) != fmt;
    const char *fname = mixed ? "mixed" : fmt == SL_FORMAT_GGUF ? "gguf" : "safetensors";

    unsigned long long total = 0, bytes[SL_DTYPE_COUNT] = {0};
    int count[SL_DTYPE_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        const sl_wentry *e = sl_wdir_at(d, i);
        count[e->dtype]++;
        bytes[e->dtype] += e->nbytes;
        total += e->nbytes;
    }
    char h[32];
    printf("%s\n", path);
    printf("  format:   %s", fname);
    if (nf > 1) printf(" (%d files)", nf);
    printf("\n");
    if (nf > 1)
        for (int i = 0; i < nf; i++)
            printf("    %s\n", sl_wdir_file_path(d, i));
    printf("  tensors:  %d\n", n);
    printf("  bytes:    %llu (%s)\n", total, human(total, h, sizeof h));
    const char *arch = NULL;
    for (size_t i = 0; i < sizeof g_arch_keys / sizeof g_arch_keys[0] && !arch; i++)
        arch = sl_wdir_meta(d, g_arch_keys[i]);
    printf("  arch:     %s\n", arch ? arch : "(not recorded)");
    printf("  dtypes:\n");
    for (int t = 0; t < SL_DTYPE_COUNT; t++)
        if (count[t])
            printf("    %-8s %6d tensors %16llu bytes (%s)\n", sl_dtype_name((sl_dtype)t), count[t],
                   bytes[t], human(bytes[t], h, sizeof h));
    int nm = sl_wdir_meta_count(d);
    printf("  metadata: %d key%s\n", nm, nm == 1 ? "" : "s");
    int show = all_meta ? nm : (nm < 16 ? nm : 16);
    for (int i = 0; i < show; i++) {
        const char *k, *v;
        sl_wdir_meta_at(d, i, &k, &v);
        printf("    %s = ", k);
        print_value(v, all_meta ? 0 : 72);
        printf("\n");
    }
    if (show < nm) printf("    ... %d more (--meta shows all)\n", nm - show);
    if (tensors) {
        printf("  %-60s %-8s %-24s %s\n", "name", "dtype", "shape", "bytes");
        for (int i = 0; i < n; i++) {
            const sl_wentry *e = sl_wdir_at(d, i);
            char shape[96] = "[";
            for (int k = 0; k < e->ndim; k++) {
                size_t l = strlen(shape);
                snprintf(shape + l, sizeof shape - l, "%s%lld", k ? ", " : "", (long long)e->ne[k]);
            }
            strncat(shape, "]", sizeof shape - strlen(shape) - 1);
            printf("  %-60s %-8s %-24s %llu", e->name, sl_dtype_name(e->dtype), shape,
                   (unsigned long long)e->nbytes);
            if (nf > 1) printf("  (file %d)", e->file);
            printf("\n");
        }
    }
    sl_wdir_free(d);
    return 0;
}

int sl_cmd_info(int argc, char **argv) {
    int tensors = 0, all_meta = 0, n_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tensors"))
            tensors = 1;
        else if (!strcmp(a, "--meta"))
            all_meta = 1;
        else if (!strcmp(a, "--")) {
            n_files += argc - i - 1;
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sluice info: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else
            n_files++;
    }
    if (!n_files) {
        fprintf(stderr, "sluice info: no FILE given\n\n");
        usage(stderr);
        return 2;
    }
    int rc = 0, files_only = 0, first = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!files_only && !strcmp(a, "--")) {
            files_only = 1;
            continue;
        }
        if (!files_only && a[0] == '-' && a[1]) continue;
        if (!first) printf("\n");
        first = 0;
        fflush(stdout);
        if (describe(a, tensors, all_meta)) rc = 1;
    }
    return rc;
}
