/* synth_cli_*: the `sluice synth` command, run as a process (the sluice binary next to
 * sluice-tests in the build directory; SKIP when it is not there). Exit status 2 with the usage
 * for bad flags, 0 and a readable file for good ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "test.h"

/* Path of the sluice binary beside this test binary, or 0. */
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

/* Run `sluice synth <args>`; returns the exit status, stdout and stderr in out/err (malloc'd). */
static int run_synth(const char *args, char **out, char **err) {
    char bin[4200], cmd[9000], po[700], pe[700];
    if (!sluice_bin(bin, sizeof bin)) return -1;
    snprintf(po, sizeof po, "%s/stdout.txt", sl_test_tmpdir());
    snprintf(pe, sizeof pe, "%s/stderr.txt", sl_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' synth %s >'%s' 2>'%s'", bin, args, po, pe);
    int st = system(cmd);
    const char *paths[2] = {po, pe};
    char **dst[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "rb");
        char *b = calloc(1, 1 << 20);
        if (f) {
            size_t got = fread(b, 1, (1 << 20) - 1, f);
            b[got] = 0;
            fclose(f);
        }
        *dst[i] = b;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

SL_TEST(synth_cli_usage_errors) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    const char *tmp = sl_test_tmpdir();
    char o[800];
    snprintf(o, sizeof o, "-o '%s/x.out'", tmp);
    struct {
        const char *args, *needle;
    } cases[] = {
        {"", "--arch is required"},
        {"--arch", "needs a value"},
        {"--arch nosuch --list", "unknown --arch 'nosuch'"},
        {"--arch zimage", "-o PATH is required"},
        {"--arch zimage --list --size huge", "unknown --size 'huge'"},
        {"--arch zimage --list --layout weird", "unknown layout 'weird'"},
        {"--arch flux-vae --list --layout weird", "unknown layout 'weird'"},
        {"--arch zimage --list --dtype q9_9", "--dtype 'q9_9'"},
        {"--arch zimage --list --dtype i32", "--dtype 'i32'"},
        {"--arch zimage --list --format onnx", "unknown --format 'onnx'"},
        {"--arch zimage --list --seed -1", "--seed '-1'"},
        {"--arch zimage --list --seed 12x", "--seed '12x'"},
        {"--arch zimage --list --bogus", "unknown argument '--bogus'"},
        {"--arch zimage --list --dtype q4_k --format safetensors", "use --format gguf"},
        {"--arch zimage --list --dtype fp8 --format gguf", "GGUF has no fp8"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char args[1200], *out, *err;
        snprintf(args, sizeof args, "%s", cases[i].args);
        int rc = run_synth(args, &out, &err);
        CHECKF(rc == 2, "'%s': exit %d, want 2", cases[i].args, rc);
        CHECKF(strstr(err, cases[i].needle) != NULL, "'%s': stderr lacks '%s': %s", cases[i].args,
               cases[i].needle, err);
        CHECKF(strstr(err, "usage: sluice synth") != NULL, "'%s': no usage on stderr", cases[i].args);
        free(out);
        free(err);
    }
    /* a usage error writes nothing */
    char args[1200], *out, *err, path[800];
    snprintf(args, sizeof args, "--arch zimage --dtype q4_k --format safetensors %s", o);
    CHECK(run_synth(args, &out, &err) == 2);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/x.out", tmp);
    struct stat sb;
    CHECK(stat(path, &sb) != 0);
    /* --help: usage on stdout, exit 0 */
    CHECK(run_synth("--help", &out, &err) == 0);
    CHECK(strstr(out, "usage: sluice synth") && strstr(out, "--dtype"));
    free(out);
    free(err);
}

SL_TEST(synth_cli_writes_and_lists) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    char *out, *err;
    const char *lists[][2] = {{"--arch zimage --list", "zimage (tiny, official):"},
                              {"--arch zimage --size full --layout comfy --list", "zimage (full, comfy):"},
                              {"--arch qwen3 --list", "qwen3 (tiny, official):"},
                              {"--arch qwen3 --layout gguf --list", "qwen3 (tiny, gguf):"},
                              {"--arch flux-vae --list", "flux-vae (tiny, official):"}};
    for (size_t i = 0; i < SL_ARRAY_LEN(lists); i++) {
        int rc = run_synth(lists[i][0], &out, &err);
        CHECKF(rc == 0, "'%s': exit %d: %s", lists[i][0], rc, err);
        CHECKF(strstr(out, lists[i][1]) && strstr(out, "tensors"), "'%s': %s", lists[i][0], out);
        free(out);
        free(err);
    }
    int rc;

    /* default format from the extension (.gguf), a block dtype, comfy layout, --flag=value */
    char path[800], args[1200];
    snprintf(path, sizeof path, "%s/z.gguf", sl_test_tmpdir());
    snprintf(args, sizeof args, "--arch zimage --dtype=q8_0 --layout comfy --seed 5 -o '%s'", path);
    rc = run_synth(args, &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(strstr(out, "wrote") != NULL);
    free(out);
    free(err);
    sl_mapfile m;
    sl_err e = {0};
    REQUIRE_OK(sl_mapfile_open(&m, path, &e), &e);
    sl_gguf_file g;
    sl_status st = sl_gguf_parse(m.data, m.size, path, &g, &e);
    if (st == SL_OK) {
        const sl_gguf_kv *kv = sl_gguf_find_kv(&g, "general.architecture");
        CHECK(kv && kv->str && !strcmp(kv->str, "zimage"));
        int q8 = 0;
        for (int i = 0; i < g.n_tensors; i++) q8 += g.tensors[i].dtype == SL_DTYPE_Q8_0;
        CHECKF(q8 > 0, "no q8_0 tensor among %d", g.n_tensors);
        sl_gguf_file_free(&g);
    }
    CHECKF(st == SL_OK, "%s", e.msg);
    sl_mapfile_close(&m);

    /* defaults: bf16 safetensors */
    snprintf(path, sizeof path, "%s/z.safetensors", sl_test_tmpdir());
    snprintf(args, sizeof args, "--arch zimage -o '%s'", path);
    rc = run_synth(args, &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    free(out);
    free(err);
    REQUIRE_OK(sl_mapfile_open(&m, path, &e), &e);
    sl_st_file sf;
    st = sl_st_parse(m.data, m.size, path, &sf, &e);
    if (st == SL_OK) {
        int bf = 0;
        for (int i = 0; i < sf.n_tensors; i++) bf += sf.tensors[i].dtype == SL_DTYPE_BF16;
        CHECKF(bf == sf.n_tensors, "%d of %d tensors bf16", bf, sf.n_tensors);
        sl_st_file_free(&sf);
    }
    CHECKF(st == SL_OK, "%s", e.msg);
    sl_mapfile_close(&m);
}
