/* pipeline/output.c — result file names (sd.cpp's -o rules) and the PNG `parameters` string
 * (sd.cpp's layout, specs/cli-server.md §1.7 and §1.12). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pipeline/pipeline.h"

/* ---- output naming ---- */

/* Position of the printf index (%d or %0Nd, N ≤ 3 digits) in s and its width (0: none); -1 when
 * there is none. %% is skipped. */
static int find_index(const char *s, int *width, int *len) {
    for (int i = 0; s[i]; i++) {
        if (s[i] != '%') continue;
        if (s[i + 1] == '%') {
            i++;
            continue;
        }
        int j = i + 1, wd = 0;
        if (s[j] == '0') {
            j++;
            int k = 0;
            while (isdigit((unsigned char)s[j]) && k < 3)
                wd = wd * 10 + (s[j++] - '0'), k++;
            if (k == 0) continue;
        }
        if (s[j] == 'd') {
            *width = wd;
            *len = j + 1 - i;
            return i;
        }
    }
    return -1;
}

/* Append src to out at *o (bounded), turning %% into % when unescape. */
static void put(char *out, size_t n, size_t *o, const char *src, size_t len, bool unescape) {
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (unescape && ch == '%' && i + 1 < len && src[i + 1] == '%') i++;
        if (*o + 1 < n) out[*o] = ch;
        (*o)++;
    }
    if (n) out[*o < n ? *o : n - 1] = 0;
}

sl_status sl_pipe_output_path(const char *pattern, int i, int n, int start, char *out,
                              size_t out_len, sl_err *err) {
    if (!pattern || !*pattern) pattern = "output.png";
    size_t L = strlen(pattern);
    const char *slash = strrchr(pattern, '/');
    const char *base = slash ? slash + 1 : pattern;
    const char *dot = strrchr(base, '.');
    bool add_png = true;
    if (dot && dot != base) {
        const char *ext = dot + 1;
        if (!strcasecmp(ext, "png")) add_png = false;
        if (!strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "jpe") ||
            !strcasecmp(ext, "webp"))
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "output '%s': only PNG output is supported (use a .png name)",
                              pattern);
    }
    int width = 0, ilen = 0;
    int at = find_index(pattern, &width, &ilen);
    size_t o = 0;
    out[0] = 0;
    char num[32];
    if (at >= 0) {
        snprintf(num, sizeof num, "%0*d", width, start + i);
        put(out, out_len, &o, pattern, (size_t)at, true);
        put(out, out_len, &o, num, strlen(num), false);
        put(out, out_len, &o, pattern + at + ilen, L - (size_t)at - (size_t)ilen, true);
        if (add_png) put(out, out_len, &o, ".png", 4, false);
    } else if (n <= 1) {
        put(out, out_len, &o, pattern, L, false);
        if (add_png) put(out, out_len, &o, ".png", 4, false);
    } else {
        /* <stem>_<start+i><ext>; with no recognised extension the whole name is the stem */
        size_t stem = add_png ? L : (size_t)(dot - pattern);
        snprintf(num, sizeof num, "_%d", start + i);
        put(out, out_len, &o, pattern, stem, false);
        put(out, out_len, &o, num, strlen(num), false);
        if (add_png)
            put(out, out_len, &o, ".png", 4, false);
        else
            put(out, out_len, &o, dot, strlen(dot), false);
    }
    if (o >= out_len)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "output path '%s' is too long", pattern);
    return SL_OK;
}

/* ---- the parameters string ---- */

typedef struct sbuf {
    char *p;
    size_t n, len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->n ? b->n - b->len : 0;
    int k = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) b->len += (size_t)k;
}

static void sb_json_str(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            sb_printf(b, "\\\"");
            break;
        case '\\':
            sb_printf(b, "\\\\");
            break;
        case '\n':
            sb_printf(b, "\\n");
            break;
        case '\r':
            sb_printf(b, "\\r");
            break;
        case '\t':
            sb_printf(b, "\\t");
            break;
        case '\b':
            sb_printf(b, "\\b");
            break;
        case '\f':
            sb_printf(b, "\\f");
            break;
        default:
            if (*p < 0x20)
                sb_printf(b, "\\u%04x", *p);
            else
                sb_printf(b, "%c", *p);
        }
    }
    sb_printf(b, "\"");
}

/* A float as nlohmann::json prints a number: the shortest text that reads back as the same
 * double, with ".0" on integral values; non-finite values are null. */
static void sb_json_num(sbuf *b, double v) {
    if (!isfinite(v)) {
        sb_printf(b, "null");
        return;
    }
    char t[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v) break;
    }
    if (!strpbrk(t, ".eEn")) strcat(t, ".0");
    sb_printf(b, "%s", t);
}

static const char *basename_of(const char *p) {
    if (!p) return "";
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* C++ std::to_string(float): fixed, 6 decimals; inf/nan spelled as printf does. */
static void sb_f6(sbuf *b, double v) {
    sb_printf(b, "%f", v);
}

size_t sl_pipe_infotext_format(const sl_pipe_infotext *in, char *buf, size_t n) {
    sbuf b = {buf, n, 0};
    if (n) buf[0] = 0;
    sb_printf(&b, "%s\n", in->prompt ? in->prompt : "");
    if (in->negative_prompt && *in->negative_prompt)
        sb_printf(&b, "Negative prompt: %s\n", in->negative_prompt);
    sb_printf(&b, "Steps: %d, CFG scale: ", in->steps);
    sb_f6(&b, in->cfg_scale);
    sb_printf(&b, ", Guidance: ");
    sb_f6(&b, in->guidance);
    sb_printf(&b, ", Eta: ");
    sb_f6(&b, in->eta_set ? in->eta : INFINITY);
    sb_printf(&b, ", Seed: %lld, Size: %dx%d, Model: %s, RNG: %s, Sampler: %s %s",
              (long long)in->seed, in->width, in->height,
              in->model_path ? basename_of(in->model_path) : "", in->rng ? in->rng : "philox",
              in->sampler, in->scheduler);
    if (in->llm_path) sb_printf(&b, ", TE: %s", basename_of(in->llm_path));
    if (in->diffusion_model_path)
        sb_printf(&b, ", Unet: %s", basename_of(in->diffusion_model_path));
    if (in->vae_path) sb_printf(&b, ", VAE: %s", basename_of(in->vae_path));
    sb_printf(&b, ", Version: stable-diffusion.cpp, SDCPP: ");

    /* the JSON: keys in alphabetical order at every level, compact */
    sb_printf(&b, "{\"auto_resize_ref_image\":true,\"clip_skip\":-1,\"control_strength\":");
    sb_json_num(&b, 0.9f);
    sb_printf(&b, ",\"generator\":{\"commit\":\"\",\"name\":\"sluice\",\"version\":");
    sb_json_str(&b, in->version ? in->version : SLUICE_VERSION);
    sb_printf(&b,
              "},\"height\":%d,\"increase_ref_index\":false,\"ip_adapter_strength\":", in->height);
    sb_json_num(&b, 1.0);
    sb_printf(&b, ",\"mode\":\"img_gen\",\"models\":{");
    const char *mk[4] = {"diffusion_model", "llm", "model", "vae"};
    const char *mv[4] = {in->diffusion_model_path, in->llm_path, in->model_path, in->vae_path};
    bool first = true;
    for (int i = 0; i < 4; i++) {
        if (!mv[i]) continue;
        sb_printf(&b, "%s\"%s\":", first ? "" : ",", mk[i]);
        sb_json_str(&b, basename_of(mv[i]));
        first = false;
    }
    sb_printf(&b, "},\"prompt\":{\"negative\":");
    sb_json_str(&b, in->negative_prompt);
    sb_printf(&b, ",\"positive\":");
    sb_json_str(&b, in->prompt);
    sb_printf(&b, "},\"rng\":");
    sb_json_str(&b, in->rng ? in->rng : "philox");
    sb_printf(&b, ",\"sampling\":{\"custom_sigmas\":[],\"eta\":");
    sb_json_num(&b, in->eta_set ? in->eta : INFINITY);
    sb_printf(&b, ",\"extra_sample_args\":\"\",\"flow_shift\":");
    sb_json_num(&b, in->flow_shift);
    sb_printf(&b, ",\"guidance\":{\"distilled_guidance\":");
    sb_json_num(&b, in->guidance);
    sb_printf(&b, ",\"img_cfg\":");
    sb_json_num(&b, in->cfg_scale);
    sb_printf(&b, ",\"slg\":{\"end\":");
    sb_json_num(&b, 0.2f);
    sb_printf(&b, ",\"layers\":[7,8,9],\"scale\":");
    sb_json_num(&b, 0.0);
    sb_printf(&b, ",\"start\":");
    sb_json_num(&b, 0.01f);
    sb_printf(&b, "},\"txt_cfg\":");
    sb_json_num(&b, in->cfg_scale);
    sb_printf(&b, "},\"method\":");
    sb_json_str(&b, in->sampler);
    sb_printf(&b, ",\"scheduler\":");
    sb_json_str(&b, in->scheduler);
    sb_printf(&b,
              ",\"shifted_timestep\":0,\"steps\":%d},\"schema\":\"sdcpp.image.params/v1\","
              "\"seed\":%lld,\"strength\":",
              in->steps, (long long)in->seed);
    sb_json_num(&b, 0.75f);
    sb_printf(&b, ",\"width\":%d}", in->width);
    return b.len;
}
