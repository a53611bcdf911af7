/* cli_*: `sluice generate` (apps/cli/cmd_generate.c) run as a process on the tiny synthetic set,
 * plus the pieces it is built from (pipeline/pipeline.h: output naming, the parameters string;
 * io/image.h: PNG). What is compared: exit statuses and messages of sd.cpp's parsing rules
 * (specs/cli-server.md §1.1), file names of §1.7, the PNG text chunk read back with libpng
 * against §1.12's exact layout, the --json object's shape. SKIP when the sluice binary is not
 * beside the test binary. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/image.h"
#include "models/synth.h"
#include "pipeline/pipeline.h"
#include "test.h"

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

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *b = calloc(1, 1 << 20);
    if (f) {
        size_t got = fread(b, 1, (1 << 20) - 1, f);
        b[got] = 0;
        fclose(f);
    }
    return b;
}

/* Run `sluice <args>` in the test's scratch directory; exit status, stdout, stderr. */
static int run(const char *args, char **out, char **err) {
    char bin[4200], cmd[12000], po[700], pe[700];
    if (!sluice_bin(bin, sizeof bin)) return -1;
    snprintf(po, sizeof po, "%s/stdout.txt", sl_test_tmpdir());
    snprintf(pe, sizeof pe, "%s/stderr.txt", sl_test_tmpdir());
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", sl_test_tmpdir(), bin, args, po,
             pe);
    int st = system(cmd);
    *out = slurp(po);
    *err = slurp(pe);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

static int exists(const char *dir, const char *name) {
    char p[1200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* The tiny model set in the scratch directory as dit.safetensors, te.safetensors, vae.safetensors.
 */
static int write_set(void) {
    typedef sl_status (*fn)(const char *, const char *, sl_synth_list *, sl_err *);
    const fn fns[3] = {sl_zimage_synth_list, sl_qwen3_synth_list, sl_fluxvae_synth_list};
    const char *names[3] = {"dit.safetensors", "te.safetensors", "vae.safetensors"};
    for (int i = 0; i < 3; i++) {
        sl_synth_list l = {0};
        sl_err err = {0};
        char path[800];
        snprintf(path, sizeof path, "%s/%s", sl_test_tmpdir(), names[i]);
        sl_synth_opts o = {.dtype = SL_DTYPE_BF16, .format = SL_SYNTH_SAFETENSORS, .seed = 1};
        sl_status st = fns[i]("tiny", "official", &l, &err);
        if (st == SL_OK) st = sl_synth_write(&l, &o, path, &err);
        sl_synth_list_free(&l);
        if (st != SL_OK) {
            fprintf(stderr, "    %s: %s\n", names[i], err.msg);
            return 0;
        }
    }
    return 1;
}

#define MODELS "--diffusion-model dit.safetensors --llm te.safetensors --vae vae.safetensors"

SL_TEST(cli_usage_and_argument_errors) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    char *out, *err;
    /* -h: usage on stdout with every option name visible, exit 0 */
    CHECK(run("generate -h", &out, &err) == 0);
    const char *names[] = {"--model",
                           "--diffusion-model",
                           "--vae",
                           "--llm",
                           "--prompt",
                           "--negative-prompt",
                           "--width",
                           "--height",
                           "--steps",
                           "--cfg-scale",
                           "--seed",
                           "--batch-count",
                           "--output",
                           "--sampling-method",
                           "--scheduler",
                           "--flow-shift",
                           "--threads",
                           "--verbose",
                           "--backend",
                           "--max-vram",
                           "--offload-mode",
                           "--offload-cond-stage",
                           "--no-offload-diffusion",
                           "--reload-cond-stage",
                           "--reload-diffusion",
                           "--offload-log",
                           "--vram-estimation",
                           "--streaming-prefetch",
                           "--streaming-min-vram",
                           "--profile",
                           "--json",
                           "--disable-image-metadata",
                           "CLI Options",
                           "Context Options",
                           "Generation Options"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        CHECKF(strstr(out, names[i]) != NULL, "usage lacks %s", names[i]);
    free(out), free(err);
    /* sd.cpp's messages and exit status 1, usage after the error */
    struct {
        const char *args, *needle;
    } bad[] = {
        {"generate -m x --bogus", "error: unknown argument: --bogus"},
        {"-m x -p", "error: invalid parameter for argument: -p"},
        {"-m x --steps abc", "invalid value 'abc' for argument: --steps"},
        {"-m x --cfg-scale 1.5x", "for argument: --cfg-scale"},
        {"-m x --offload-mode sometimes", "invalid offload mode 'sometimes'"},
        {"-m x --vram-estimation guess", "--vram-estimation"},
        {"-m x --backend vulkan", "invalid backend"},
        {"-m x --sampling-method nope", "nope"},
        {"-m x --sampling-method euler_a", "euler_a"},
        {"-m x --scheduler nope", "nope"},
        {"-m x -W 100", "multiples of 16"},
        {"-m x -H 520", "multiples of 16"},
        {"-m x --steps 0", "steps"},
        {"-m x -b 0", "batch count"},
        {"-m x --streaming-prefetch 0", "--streaming-prefetch"},
        {"-m x -o out.jpg", "only PNG"},
        {"-p cat", "-m/--model or --diffusion-model"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int rc = run(bad[i].args, &out, &err);
        CHECKF(rc == 1, "'%s': exit %d", bad[i].args, rc);
        CHECKF(strstr(err, bad[i].needle) != NULL, "'%s': stderr lacks '%s':\n%.400s", bad[i].args,
               bad[i].needle, err);
        CHECKF(strstr(err, "Generation Options") != NULL, "'%s': no usage after the error",
               bad[i].args);
        free(out), free(err);
    }
    /* -M other than img_gen: its own error, no usage, exit 1 */
    CHECK(run("-M vid_gen -m x", &out, &err) == 1);
    CHECK(strstr(err, "vid_gen") && !strstr(err, "Generation Options"));
    free(out), free(err);
    /* a missing model file: the library's message, exit 1 */
    CHECK(run("-m does-not-exist.safetensors -p cat", &out, &err) == 1);
    CHECKF(strstr(err, "does-not-exist.safetensors") != NULL, "%s", err);
    free(out), free(err);
}

SL_TEST(cli_size_not_multiple_of_16) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    REQUIRE(write_set());
    char *out, *err;
    CHECK(run(MODELS " -p cat -W 72 -H 64 -o x.png", &out, &err) == 1);
    CHECKF(strstr(err, "72x64") && strstr(err, "multiples of 16"), "%s", err);
    CHECK(!exists(sl_test_tmpdir(), "x.png"));
    free(out), free(err);
}

SL_TEST(cli_output_naming) {
    /* the rules, directly */
    struct {
        const char *pat;
        int i, n, start;
        const char *want;
    } cases[] = {
        {"output.png", 0, 1, 0, "output.png"}, {"out.PNG", 0, 1, 0, "out.PNG"},
        {"out.png", 0, 2, 0, "out_0.png"},     {"out.png", 1, 2, 0, "out_1.png"},
        {"out.png", 1, 2, 5, "out_6.png"},     {"dir/img", 0, 1, 0, "dir/img.png"},
        {"out.foo", 0, 1, 0, "out.foo.png"},   {"out.foo", 1, 3, 0, "out.foo_1.png"},
        {"a.b/c", 0, 1, 0, "a.b/c.png"},       {"img_%d.png", 2, 3, 0, "img_2.png"},
        {"img_%d.png", 0, 1, 0, "img_0.png"},  {"img_%03d.png", 7, 9, 1, "img_008.png"},
        {"img_%03d", 0, 2, 0, "img_000.png"},  {"100%%_%d.png", 1, 2, 0, "100%_1.png"},
        {"", 0, 1, 0, "output.png"},
    };
    for (size_t k = 0; k < SL_ARRAY_LEN(cases); k++) {
        char got[256];
        sl_err err = {0};
        sl_status st = sl_pipe_output_path(cases[k].pat, cases[k].i, cases[k].n, cases[k].start,
                                           got, sizeof got, &err);
        CHECKF(st == SL_OK && !strcmp(got, cases[k].want), "'%s' %d/%d: '%s', want '%s' (%s)",
               cases[k].pat, cases[k].i, cases[k].n, got, cases[k].want, err.msg);
    }
    const char *unsupported[] = {"x.jpg", "x.JPEG", "x.jpe", "x.webp"};
    for (size_t k = 0; k < SL_ARRAY_LEN(unsupported); k++) {
        char got[256];
        sl_err err = {0};
        CHECK(sl_pipe_output_path(unsupported[k], 0, 1, 0, got, sizeof got, &err) ==
              SL_ERR_UNSUPPORTED);
    }
    /* and through the binary: parents created, batch suffixes, %d */
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    REQUIRE(write_set());
    char *out, *err;
    int rc = run(MODELS " -p cat -W 32 -H 32 --steps 1 -b 2 -o a/b/pic.png", &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(exists(sl_test_tmpdir(), "a/b/pic_0.png") && exists(sl_test_tmpdir(), "a/b/pic_1.png"));
    CHECK(!exists(sl_test_tmpdir(), "a/b/pic.png"));
    free(out), free(err);
    rc = run(MODELS " -p cat -W 32 -H 32 --steps 1 -b 2 --output-begin-idx 3 -o 'f_%02d.png'", &out,
             &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(exists(sl_test_tmpdir(), "f_03.png") && exists(sl_test_tmpdir(), "f_04.png"));
    free(out), free(err);
    rc = run(MODELS " -p cat -W 32 -H 32 --steps 1 -o single", &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(exists(sl_test_tmpdir(), "single.png"));
    free(out), free(err);
    rc = run(MODELS " -p cat -W 32 -H 32 --steps 1", &out, &err);
    CHECK(rc == 0 && exists(sl_test_tmpdir(), "output.png"));
    free(out), free(err);
}

SL_TEST(cli_parameters_string_layout) {
    /* §1.12's exact shape: prompt line, Negative prompt line only when non-empty, pairs joined
     * by ", ", floats with 6 decimals, Eta inf when unset, Model empty without -m, TE/Unet/VAE
     * by basename, the literal Version, then the compact JSON with sorted keys */
    sl_pipe_infotext it = {.prompt = "a lovely cat",
                           .negative_prompt = "blurry",
                           .steps = 8,
                           .cfg_scale = 2.5f,
                           .guidance = 3.5f,
                           .flow_shift = 3.0f,
                           .seed = 42,
                           .width = 512,
                           .height = 768,
                           .llm_path = "/m/qwen_3_4b.safetensors",
                           .diffusion_model_path = "/m/z_image_turbo_bf16.safetensors",
                           .vae_path = "ae.safetensors",
                           .rng = "philox",
                           .sampler = "euler",
                           .scheduler = "simple",
                           .version = "0.1.0"};
    char buf[4096];
    size_t n = sl_pipe_infotext_format(&it, buf, sizeof buf);
    CHECK(n == strlen(buf));
    const char *want_head =
        "a lovely cat\nNegative prompt: blurry\nSteps: 8, CFG scale: 2.500000, Guidance: 3.500000, "
        "Eta: inf, Seed: 42, Size: 512x768, Model: , RNG: philox, Sampler: euler simple, TE: "
        "qwen_3_4b.safetensors, Unet: z_image_turbo_bf16.safetensors, VAE: ae.safetensors, "
        "Version: "
        "stable-diffusion.cpp, SDCPP: {";
    CHECKF(!strncmp(buf, want_head, strlen(want_head)), "got:\n%s", buf);
    CHECK(buf[n - 1] == '}' && !strchr(buf + strlen(want_head), '\n'));
    /* the JSON parses and holds the request */
    cJSON *j = cJSON_Parse(strstr(buf, "SDCPP: ") + 7);
    REQUIRE(j);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "seed")->valuedouble == 42);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(j, "schema")->valuestring,
                  "sdcpp.image.params/v1"));
    cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(pr, "positive")->valuestring, "a lovely cat"));
    cJSON *sm = cJSON_GetObjectItemCaseSensitive(j, "sampling");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(sm, "eta")));
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sm, "guidance"),
                                           "txt_cfg")
              ->valuedouble == 2.5);
    cJSON *gen = cJSON_GetObjectItemCaseSensitive(j, "generator");
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(gen, "name")->valuestring, "sluice"));
    /* keys sorted at every level */
    cJSON *stack[16] = {j};
    int sp = 1;
    while (sp) {
        cJSON *o = stack[--sp];
        const char *prev = "";
        for (cJSON *c = o->child; c; c = c->next) {
            if (cJSON_IsObject(o)) {
                CHECKF(strcmp(prev, c->string) < 0, "key '%s' after '%s'", c->string, prev);
                prev = c->string;
            }
            if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && sp < 16) stack[sp++] = c;
        }
    }
    cJSON_Delete(j);
    /* no negative prompt: no line; -m given: its basename; the prompt's own newlines stay */
    it.negative_prompt = "";
    it.model_path = "/models/zimage.safetensors";
    it.llm_path = it.diffusion_model_path = it.vae_path = NULL;
    it.prompt = "two\nlines";
    sl_pipe_infotext_format(&it, buf, sizeof buf);
    CHECKF(!strncmp(buf, "two\nlines\nSteps: 8, ", 20), "%s", buf);
    CHECK(strstr(buf, "Model: zimage.safetensors, RNG") && !strstr(buf, "Negative prompt:") &&
          !strstr(buf, "TE: ") && !strstr(buf, "Unet: "));
    CHECK(strstr(buf, "\"models\":{\"model\":\"zimage.safetensors\"}"));
    /* a small buffer: truncated, NUL-terminated, full length returned */
    char small[16];
    size_t full = sl_pipe_infotext_format(&it, small, sizeof small);
    CHECK(full == strlen(buf) && strlen(small) == sizeof small - 1);
}

SL_TEST(cli_png_metadata_roundtrip) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    REQUIRE(write_set());
    char *out, *err;
    int rc =
        run(MODELS " -p 'a red fox' -n 'blurry' --cfg-scale 2 -W 48 -H 32 --steps 2 -s 5 -o m.png",
            &out, &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    free(out), free(err);
    char path[800];
    snprintf(path, sizeof path, "%s/m.png", sl_test_tmpdir());
    char *params = NULL;
    sl_err e = {0};
    REQUIRE_OK(sl_png_read_text(path, "parameters", &params, &e), &e);
    sl_pipe_infotext it = {.prompt = "a red fox",
                           .negative_prompt = "blurry",
                           .steps = 2,
                           .cfg_scale = 2.0f,
                           .guidance = 3.5f,
                           .flow_shift = 3.0f,
                           .seed = 5,
                           .width = 48,
                           .height = 32,
                           .llm_path = "te.safetensors",
                           .diffusion_model_path = "dit.safetensors",
                           .vae_path = "vae.safetensors",
                           .rng = "philox",
                           .sampler = "euler",
                           .scheduler = "auto",
                           .version = SLUICE_VERSION};
    char want[4096];
    sl_pipe_infotext_format(&it, want, sizeof want);
    CHECKF(!strcmp(params, want), "read back:\n%s\nwant:\n%s", params, want);
    CHECK(!strncmp(params, "a red fox\nNegative prompt: blurry\nSteps: 2, CFG scale: 2.000000, ",
                   63));
    free(params);
    /* the pixels read back as 48x32 RGB */
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    REQUIRE_OK(sl_png_read(path, &rgb, &w, &h, &e), &e);
    CHECK(w == 48 && h == 32);
    free(rgb);
    /* the tEXt chunk sits right after IHDR */
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    unsigned char hdr[8 + 25 + 8];
    REQUIRE(fread(hdr, 1, sizeof hdr, f) == sizeof hdr);
    fclose(f);
    CHECK(!memcmp(hdr + 12, "IHDR", 4) && !memcmp(hdr + 8 + 25 + 4, "tEXt", 4));
    /* --disable-image-metadata: no chunk */
    rc = run(MODELS " -p 'a red fox' -W 48 -H 32 --steps 1 --disable-image-metadata -o n.png", &out,
             &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/n.png", sl_test_tmpdir());
    sl_err_clear(&e);
    CHECK(sl_png_read_text(path, "parameters", &params, &e) == SL_ERR_NOT_FOUND);
}

SL_TEST(cli_json_output) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    REQUIRE(write_set());
    char *out, *err;
    int rc = run(MODELS " -p cat -W 32 -H 48 --steps 2 -b 2 -s 9 --json -o j.png", &out, &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    /* stdout holds exactly one JSON object (the log went to stderr) */
    cJSON *j = cJSON_Parse(out);
    REQUIREF(j, "stdout is not JSON:\n%s", out);
    CHECK(strstr(err, "generate_image completed") != NULL);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "timings");
    const char *keys[] = {"load_s",     "conditioning_s", "sampling_s", "decoding_s",
                          "transfer_s", "total_s",        "per_step_s", "wall_s"};
    for (size_t k = 0; k < SL_ARRAY_LEN(keys); k++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(t, keys[k]);
        CHECKF(cJSON_IsNumber(v) && v->valuedouble >= 0, "timings.%s", keys[k]);
    }
    CHECK(cJSON_GetObjectItemCaseSensitive(t, "sampling_s")->valuedouble > 0);
    cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "images");
    REQUIRE(cJSON_IsArray(im) && cJSON_GetArraySize(im) == 2);
    for (int i = 0; i < 2; i++) {
        cJSON *x = cJSON_GetArrayItem(im, i);
        char want[32];
        snprintf(want, sizeof want, "j_%d.png", i);
        CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(x, "path")->valuestring, want));
        CHECK(cJSON_GetObjectItemCaseSensitive(x, "seed")->valuedouble == 9 + i);
    }
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "mode")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "backend")));
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "steps")->valuedouble == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "width")->valuedouble == 32);
    cJSON_Delete(j);
    free(out), free(err);
    /* a failure is an {"error": ...} object */
    rc = run(MODELS " -p cat -W 32 -H 48 --json --backend cpu-device:4096 --streaming-min-vram 0",
             &out, &err);
    CHECK(rc == 1);
    j = cJSON_Parse(out);
    REQUIREF(j, "stdout is not JSON:\n%s", out);
    cJSON *em = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECKF(cJSON_IsString(em) && strstr(em->valuestring, "GB"), "%s", out);
    cJSON_Delete(j);
    free(out), free(err);
}

SL_TEST(cli_modes_and_flags_run) {
    char bin[4200];
    if (!sluice_bin(bin, sizeof bin)) SKIP("no sluice binary beside the test binary");
    REQUIRE(write_set());
    char *out, *err;
    /* every mode and override flag parses and runs on the emulated device; same image bytes */
    const char *extra[] = {
        "--offload-mode none",
        "--offload-mode cond_only --no-offload-cond-stage",
        "--offload-mode cond_diffusion --reload-diffusion --offload-log",
        "--offload-mode aggressive --reload-cond-stage --vram-estimation formula",
        "--offload-mode layer_streaming --streaming-prefetch 2 --profile",
        "--offload-mode auto --offload-diffusion --no-reload-diffusion --no-offload-log",
    };
    uint8_t *ref = NULL;
    for (size_t k = 0; k < SL_ARRAY_LEN(extra); k++) {
        char args[1024];
        snprintf(args, sizeof args,
                 MODELS
                 " -p cat -W 32 -H 32 --steps 2 --backend cpu-device:0 --streaming-min-vram 0 "
                 "-t 2 %s -o k.png",
                 extra[k]);
        int rc = run(args, &out, &err);
        CHECKF(rc == 0, "%s: exit %d: %s", extra[k], rc, err);
        free(out), free(err);
        char path[800];
        snprintf(path, sizeof path, "%s/k.png", sl_test_tmpdir());
        uint8_t *rgb = NULL;
        int w, h;
        sl_err e = {0};
        REQUIRE_OK(sl_png_read(path, &rgb, &w, &h, &e), &e);
        if (!ref)
            ref = rgb;
        else {
            CHECKF(memcmp(ref, rgb, 32 * 32 * 3) == 0, "%s: different image", extra[k]);
            free(rgb);
        }
    }
    free(ref);
}
