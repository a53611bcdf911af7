/* Sigma schedules, name tables and step rules (see sampler.h). */
#include "samplers/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMESTEPS 1000

static const char *const method_names[SL_SAMPLE_COUNT] = {
    [SL_SAMPLE_EULER] = "euler",
    [SL_SAMPLE_EULER_A] = "euler_a",
    [SL_SAMPLE_HEUN] = "heun",
    [SL_SAMPLE_DPM2] = "dpm2",
    [SL_SAMPLE_DPMPP2S_A] = "dpm++2s_a",
    [SL_SAMPLE_DPMPP2M] = "dpm++2m",
    [SL_SAMPLE_DPMPP2MV2] = "dpm++2mv2",
    [SL_SAMPLE_IPNDM] = "ipndm",
    [SL_SAMPLE_IPNDM_V] = "ipndm_v",
    [SL_SAMPLE_LCM] = "lcm",
    [SL_SAMPLE_DDIM_TRAILING] = "ddim_trailing",
    [SL_SAMPLE_TCD] = "tcd",
    [SL_SAMPLE_RES_MULTISTEP] = "res_multistep",
    [SL_SAMPLE_RES_2S] = "res_2s",
    [SL_SAMPLE_ER_SDE] = "er_sde",
    [SL_SAMPLE_EULER_CFG_PP] = "euler_cfg_pp",
    [SL_SAMPLE_EULER_A_CFG_PP] = "euler_a_cfg_pp",
    [SL_SAMPLE_EULER_GE] = "euler_ge",
    [SL_SAMPLE_DPMPP2M_SDE] = "dpm++2m_sde",
    [SL_SAMPLE_DPMPP2M_SDE_BT] = "dpm++2m_sde_bt",
    [SL_SAMPLE_LMS] = "lms",
};

static const char *const sched_names[SL_SCHED_COUNT] = {
    [SL_SCHED_DISCRETE] = "discrete",
    [SL_SCHED_KARRAS] = "karras",
    [SL_SCHED_EXPONENTIAL] = "exponential",
    [SL_SCHED_AYS] = "ays",
    [SL_SCHED_GITS] = "gits",
    [SL_SCHED_SGM_UNIFORM] = "sgm_uniform",
    [SL_SCHED_SIMPLE] = "simple",
    [SL_SCHED_SMOOTHSTEP] = "smoothstep",
    [SL_SCHED_KL_OPTIMAL] = "kl_optimal",
    [SL_SCHED_LCM] = "lcm",
    [SL_SCHED_BONG_TANGENT] = "bong_tangent",
    [SL_SCHED_LTX2] = "ltx2",
    [SL_SCHED_LOGIT_NORMAL] = "logit_normal",
    [SL_SCHED_FLUX2] = "flux2",
    [SL_SCHED_FLUX] = "flux",
    [SL_SCHED_BETA] = "beta",
    [SL_SCHED_AUTO] = "auto",
};

const char *sl_sampler_method_name(sl_sample_method m) {
    return m >= 0 && m < SL_SAMPLE_COUNT ? method_names[m] : "?";
}
const char *sl_sampler_scheduler_name(sl_scheduler s) {
    return s >= 0 && s < SL_SCHED_COUNT ? sched_names[s] : "?";
}

bool sl_sampler_method_supported(sl_sample_method m) {
    return m == SL_SAMPLE_EULER;
}

bool sl_sampler_scheduler_supported(sl_scheduler s) {
    switch (s) {
    case SL_SCHED_DISCRETE:
    case SL_SCHED_SIMPLE:
    case SL_SCHED_SGM_UNIFORM:
    case SL_SCHED_KARRAS:
    case SL_SCHED_EXPONENTIAL:
    case SL_SCHED_LCM:
    case SL_SCHED_AUTO:
        return true;
    default:
        return false;
    }
}

/* "a, b, c" of the names whose `supported` flag equals want. */
static void list_names(const char *const *names, int n, bool (*ok)(int), bool want, char *buf,
                       size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o < cap; i++)
        if (!ok || ok(i) == want)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", names[i]);
}
static bool method_ok(int i) {
    return sl_sampler_method_supported((sl_sample_method)i);
}
static bool sched_ok(int i) {
    return sl_sampler_scheduler_supported((sl_scheduler)i);
}

sl_status sl_sampler_parse_method(const char *s, sl_sample_method *out, sl_err *err) {
    char list[512];
    if (!s || !*s || !strcmp(s, "auto")) {
        *out = SL_SAMPLE_EULER;
        return SL_OK;
    }
    for (int i = 0; i < SL_SAMPLE_COUNT; i++) {
        if (strcmp(s, method_names[i])) continue;
        if (!method_ok(i)) {
            list_names(method_names, SL_SAMPLE_COUNT, method_ok, true, list, sizeof list);
            return sl_err_set(
                err, SL_ERR_UNSUPPORTED,
                "sampling method '%s' is not implemented in sluice yet; available: %s", s, list);
        }
        *out = (sl_sample_method)i;
        return SL_OK;
    }
    list_names(method_names, SL_SAMPLE_COUNT, NULL, true, list, sizeof list);
    return sl_err_set(err, SL_ERR_INVALID_ARG, "unknown sampling method '%s'; valid: %s", s, list);
}

sl_status sl_sampler_parse_scheduler(const char *s, sl_scheduler *out, sl_err *err) {
    char list[512];
    if (!s || !*s || !strcmp(s, "auto")) {
        *out = SL_SCHED_AUTO;
        return SL_OK;
    }
    if (!strcmp(s, "normal")) s = "discrete";
    for (int i = 0; i < SL_SCHED_COUNT; i++) {
        if (strcmp(s, sched_names[i])) continue;
        if (!sched_ok(i)) {
            list_names(sched_names, SL_SCHED_COUNT, sched_ok, true, list, sizeof list);
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "scheduler '%s' is not implemented in sluice yet; available: %s", s,
                              list);
        }
        *out = (sl_scheduler)i;
        return SL_OK;
    }
    list_names(sched_names, SL_SCHED_COUNT, NULL, true, list, sizeof list);
    return sl_err_set(err, SL_ERR_INVALID_ARG, "unknown scheduler '%s'; valid: %s, normal", s,
                      list);
}

float sl_sampler_flow_sigma(float shift, float t) {
    float s = (t + 1.0f) / 1000.0f;
    if (shift == 1.0f) return s;
    return shift * s / (1.0f + (shift - 1.0f) * s);
}

sl_status sl_sampler_sigmas(sl_scheduler s, int steps, float shift, float *out, sl_err *err) {
    if (steps < 1)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "steps must be at least 1 (got %d)", steps);
    if (!(shift > 0.0f) || !isfinite(shift))
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flow shift must be positive (got %g)",
                          (double)shift);
    if (!sl_sampler_scheduler_supported(s)) {
        char list[512];
        list_names(sched_names, SL_SCHED_COUNT, sched_ok, true, list, sizeof list);
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "scheduler '%s' is not implemented in sluice yet; available: %s",
                          sl_sampler_scheduler_name(s), list);
    }
    const int n = steps, t_max = TIMESTEPS - 1;
    const float smin = sl_sampler_flow_sigma(shift, 0.0f),
                smax = sl_sampler_flow_sigma(shift, (float)t_max);
    switch (s) {
    case SL_SCHED_DISCRETE:
        if (n == 1) {
            out[0] = smax;
        } else {
            float step = (float)t_max / (float)(n - 1);
            for (int i = 0; i < n; i++)
                out[i] = sl_sampler_flow_sigma(shift, (float)t_max - step * (float)i);
        }
        break;
    case SL_SCHED_SIMPLE: {
        float f = (float)TIMESTEPS / (float)n;
        for (int i = 0; i < n; i++) {
            int ti = TIMESTEPS - 1 - (int)((float)i * f);
            out[i] = sl_sampler_flow_sigma(shift, (float)(ti < 0 ? 0 : ti));
        }
        break;
    }
    case SL_SCHED_SGM_UNIFORM:
        /* linspace(t_max, 0, n + 1) computed as start + i·step like sd.cpp's linear_space */
        for (int i = 0; i < n; i++) {
            float step = (0.0f - (float)t_max) / (float)n;
            out[i] = sl_sampler_flow_sigma(shift, (float)t_max + step * (float)i);
        }
        break;
    case SL_SCHED_KARRAS: {
        const float rho = 7.0f;
        float lo = smin <= 1e-6f ? 1e-6f : smin;
        float mi = powf(lo, 1.0f / rho), ma = powf(smax, 1.0f / rho);
        for (int i = 0; i < n; i++) {
            float r = n == 1 ? 0.0f : (float)i / ((float)n - 1.0f);
            out[i] = powf(ma + r * (mi - ma), rho);
        }
        break;
    }
    case SL_SCHED_EXPONENTIAL: {
        float lmin = logf(smin), lmax = logf(smax);
        float step = n == 1 ? 0.0f : (lmax - lmin) / (float)(n - 1);
        for (int i = 0; i < n; i++)
            out[i] = expf(lmax - step * (float)i);
        break;
    }
    case SL_SCHED_LCM: {
        const int orig = 50, k = TIMESTEPS / orig;
        for (int i = 0; i < n; i++) {
            int index = (int)(((long long)i * orig) / n);
            out[i] = sl_sampler_flow_sigma(shift, (float)((orig - index) * k - 1));
        }
        break;
    }
    case SL_SCHED_AUTO:
        sl_sampler_zimage_reference_sigmas(n, shift, out);
        break;
    default:
        SL_ASSERT(0 && "unreachable");
    }
    out[n] = 0.0f;
    return SL_OK;
}

void sl_sampler_zimage_reference_sigmas(int steps, float shift, float *out) {
    SL_ASSERT(steps >= 1);
    const int n = steps;
    const float end = 1.0f / (float)n;
    /* torch.linspace(1, 1/n, n) in f32: start + i·step for the first half, end − (n−1−i)·step
     * for the second */
    float step = n > 1 ? (end - 1.0f) / (float)(n - 1) : 0.0f;
    for (int i = 0; i < n; i++) {
        float b = i < n / 2 ? 1.0f + step * (float)i : end - step * (float)(n - 1 - i);
        out[i] = shift * b / (1.0f + (shift - 1.0f) * b);
    }
    out[n] = 0.0f;
}

sl_status sl_sampler_parse_sigmas(const char *s, float *out, int max, int *n, sl_err *err) {
    *n = 0;
    if (!s) return sl_err_set(err, SL_ERR_INVALID_ARG, "--sigmas: empty list");
    const char *p = s;
    while (*p == ' ' || *p == '\t')
        p++;
    bool bracket = *p == '[';
    if (bracket) p++;
    int k = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (bracket && *p == ']' && k == 0) break;
        errno = 0;
        char *end;
        float v = strtof(p, &end);
        if (end == p || errno == ERANGE)
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "--sigmas '%s': expected a number at offset %d", s, (int)(p - s));
        if (!isfinite(v) || v < 0.0f)
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "--sigmas '%s': value %g must be finite and >= 0", s, (double)v);
        if (k >= max)
            return sl_err_set(err, SL_ERR_INVALID_ARG, "--sigmas: more than %d values", max);
        out[k++] = v;
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (bracket) {
        if (*p != ']') return sl_err_set(err, SL_ERR_INVALID_ARG, "--sigmas '%s': missing ']'", s);
        p++;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "--sigmas '%s': unexpected '%c' at offset %d", s,
                          *p, (int)(p - s));
    if (k == 0) return sl_err_set(err, SL_ERR_INVALID_ARG, "--sigmas: empty list");
    *n = k;
    return SL_OK;
}

int sl_sampler_finish_sigmas(float *out, int n) {
    SL_ASSERT(n >= 1);
    if (out[n - 1] != 0.0f) {
        out[n] = 0.0f;
        return n;
    }
    return n - 1;
}

float sl_sampler_zimage_time(float sigma) {
    float t = sigma * 1000.0f; /* the scheduler's f32 timestep */
    return (1000.0f - t) / 1000.0f;
}

void sl_sampler_euler_step(sl_ctx *ctx, sl_tensor *x, sl_tensor *v, float dt) {
    SL_ASSERT(x->dtype == SL_DTYPE_F32 && v->dtype == SL_DTYPE_F32 && sl_tensor_same_shape(x, v));
    sl_op_scale(ctx, v, v, dt, 0.0f);
    sl_op_add(ctx, x, x, v);
}

void sl_sampler_euler_step_host(float *x, const float *v, long long n, float dt) {
    for (long long i = 0; i < n; i++)
        x[i] = x[i] + dt * v[i];
}

static float norm_factor(const float *pos, const float *pred, long long n, float norm_k) {
    double a = 0, b = 0;
    for (long long i = 0; i < n; i++) {
        a += (double)pos[i] * pos[i];
        b += (double)pred[i] * pred[i];
    }
    double maxn = sqrt(a) * norm_k, nn = sqrt(b);
    return nn > maxn ? (float)(maxn / nn) : 1.0f;
}

void sl_sampler_cfg_host(float *pred, const float *pos, const float *neg, long long n, float w,
                         float norm_k) {
    for (long long i = 0; i < n; i++)
        pred[i] = pos[i] + w * (pos[i] - neg[i]);
    if (norm_k > 0.0f) {
        float f = norm_factor(pos, pred, n, norm_k);
        if (f != 1.0f)
            for (long long i = 0; i < n; i++)
                pred[i] *= f;
    }
}

void sl_sampler_cfg(sl_ctx *ctx, sl_tensor *pos, sl_tensor *neg, float w, float norm_k) {
    SL_ASSERT(pos->dtype == SL_DTYPE_F32 && neg->dtype == SL_DTYPE_F32 &&
              sl_tensor_same_shape(pos, neg));
    long long n = (long long)sl_tensor_numel(pos);
    float *hp = NULL, *hq = NULL;
    if (norm_k > 0.0f) {
        hp = malloc((size_t)n * sizeof *hp);
        hq = malloc((size_t)n * sizeof *hq);
        if (!hp || !hq) {
            free(hp);
            free(hq);
            sl_ctx_fail(ctx, SL_ERR_OOM_HOST, "CFG normalisation: no host memory for %lld floats",
                        n);
            return;
        }
        sl_download(ctx, hp, pos);
    }
    /* neg ← (pos − neg)·w; pos ← pos + neg */
    sl_op_sub(ctx, neg, pos, neg);
    sl_op_scale(ctx, neg, neg, w, 0.0f);
    sl_op_add(ctx, pos, pos, neg);
    if (norm_k > 0.0f) {
        sl_download(ctx, hq, pos);
        if (ctx->status == SL_OK) {
            float f = norm_factor(hp, hq, n, norm_k);
            if (f != 1.0f) sl_op_scale(ctx, pos, pos, f, 0.0f);
        }
        free(hp);
        free(hq);
    }
}

bool sl_sampler_cfg_active(float w, float cfg_truncation, float sigma) {
    if (!(w > 0.0f)) return false;
    return !(sl_sampler_zimage_time(sigma) > cfg_truncation);
}
