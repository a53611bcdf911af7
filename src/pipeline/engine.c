/* pipeline/engine.c — opening an engine: model paths, backend, weight directories, tokenizer,
 * the three models with one residency engine each and their host homes (sluice.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "pipeline/engine_impl.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sluice_engine_params_init(sluice_engine_params *p) {
    memset(p, 0, sizeof *p);
    p->backend = "auto";
    p->offload_mode = SLUICE_OFFLOAD_AUTO;
    p->offload_cond_stage = p->offload_diffusion = -1;
    p->reload_cond_stage = p->reload_diffusion = -1;
    p->streaming_prefetch = 1;
    p->streaming_min_vram_mb = 512;
}

static char *dup_or_null(const char *s) {
    return s && *s ? strdup(s) : NULL;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool exists(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0;
}

static void fill_err(char *err, size_t err_len, const sl_err *e) {
    if (err && err_len) snprintf(err, err_len, "%s", e->msg[0] ? e->msg : sl_status_str(e->status));
}

/* Open (or reuse, when the same path was opened for another component) a weight directory. */
static sl_status open_wdir(sluice_engine *e, const char *path, sl_wdir **out, sl_err *err) {
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        if (e->comp[c].path && e->comp[c].wd && !strcmp(e->comp[c].path, path)) {
            *out = e->comp[c].wd;
            return SL_OK;
        }
    const char *paths[1] = {path};
    sl_status st = sl_wdir_open(out, paths, 1, err);
    if (st != SL_OK) return st;
    e->wdirs[e->n_wdirs++] = *out;
    return SL_OK;
}

static int open_backend(sluice_engine *e, sl_err *err) {
    const char *name = e->p.backend ? e->p.backend : "auto";
    if (!strncmp(name, "cpu-device", 10)) {
        sl_cpu_options o = {.threads = e->p.threads, .as_device = true};
        if (name[10] == ':') {
            char *end;
            errno = 0;
            unsigned long long b = strtoull(name + 11, &end, 10);
            if (errno || *end || name[11] == '-' || !name[11])
                return sl_err_set(err, SL_ERR_INVALID_ARG,
                                  "backend '%s': expected cpu-device:<bytes>", name);
            o.device_budget = (size_t)b;
        } else if (name[10]) {
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "unknown backend '%s' (use auto, cpu, cuda or cpu-device:<bytes>)",
                              name);
        }
        return sl_backend_cpu_create(&o, &e->be, err);
    }
    if (strcmp(name, "auto") && strcmp(name, "cpu") && strcmp(name, "cuda"))
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "unknown backend '%s' (use auto, cpu, cuda or cpu-device:<bytes>)", name);
    return sl_backend_create(name, e->p.threads, &e->be, err);
}

/* Resolve which file provides each component (sluice.h, sluice_engine_params). */
static sl_status resolve_paths(sluice_engine *e, const char *tok_path, sl_err *err) {
    const sluice_engine_params *p = &e->p;
    char buf[4096];
    char *dit = NULL, *te = NULL, *vae = NULL, *tok = NULL;
    bool single = false;
    if (p->model_path) {
        if (!exists(p->model_path))
            return sl_err_set(err, SL_ERR_IO, "model '%s' does not exist", p->model_path);
        if (is_dir(p->model_path)) {
            static const char *const sub[3] = {"text_encoder", "transformer", "vae"};
            char **dst[3] = {&te, &dit, &vae};
            for (int c = 0; c < 3; c++) {
                snprintf(buf, sizeof buf, "%s/%s", p->model_path, sub[c]);
                if (is_dir(buf)) *dst[c] = strdup(buf);
            }
            snprintf(buf, sizeof buf, "%s/tokenizer/tokenizer.json", p->model_path);
            if (exists(buf)) tok = strdup(buf);
            if (!dit && !te && !vae) {
                /* a folder holding a single weight file (or one sharded index) */
                dit = strdup(p->model_path);
                single = true;
            }
        } else {
            dit = strdup(p->model_path);
            single = true;
        }
    }
    if (p->diffusion_model_path) free(dit), dit = strdup(p->diffusion_model_path), single = false;
    if (p->llm_path) free(te), te = strdup(p->llm_path);
    if (p->vae_path) free(vae), vae = strdup(p->vae_path);
    if (tok_path) free(tok), tok = strdup(tok_path);
    e->comp[SL_PIPE_DIT].path = dit;
    e->comp[SL_PIPE_TE].path = te;
    e->comp[SL_PIPE_VAE].path = vae;
    e->s_tok = tok;
    if (!dit)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          p->model_path ? "no diffusion model: '%s' has no transformer/ folder "
                                          "(pass --diffusion-model)"
                                        : "no diffusion model given%s (use -m MODEL or "
                                          "--diffusion-model FILE)",
                          p->model_path ? p->model_path : "");
    sl_status st = open_wdir(e, dit, &e->comp[SL_PIPE_DIT].wd, err);
    if (st != SL_OK) return st;
    /* a single checkpoint may carry the text encoder and the VAE too */
    if (single && (!te || !vae)) {
        sl_wdir *wd = e->comp[SL_PIPE_DIT].wd;
        if (!te && sl_wdir_find(wd, "model.embed_tokens.weight")) te = strdup(dit);
        if (!vae && sl_wdir_find(wd, "decoder.conv_in.weight")) vae = strdup(dit);
        e->comp[SL_PIPE_TE].path = te;
        e->comp[SL_PIPE_VAE].path = vae;
    }
    if (!te)
        return sl_err_set(err, SL_ERR_NOT_FOUND,
                          "no text encoder: '%s' holds no Qwen3 text encoder "
                          "(model.embed_tokens.weight); pass --llm FILE (Qwen3-4B)",
                          dit);
    if (!vae)
        return sl_err_set(err, SL_ERR_NOT_FOUND,
                          "no VAE: '%s' holds no VAE decoder (decoder.conv_in.weight); pass --vae "
                          "FILE (the FLUX.1 VAE, ae.safetensors)",
                          dit);
    if ((st = open_wdir(e, te, &e->comp[SL_PIPE_TE].wd, err)) != SL_OK) return st;
    return open_wdir(e, vae, &e->comp[SL_PIPE_VAE].wd, err);
}

static sl_status load_models(sluice_engine *e, sl_err *err) {
    sl_status st;
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        pipe_comp *pc = &e->comp[c];
        pc->held_unit = -1;
        pc->budget = SIZE_MAX;
        if ((st = sl_res_create(e->be, pc->name, &pc->res, err)) != SL_OK) return st;
    }
    pipe_comp *te = &e->comp[SL_PIPE_TE], *dit = &e->comp[SL_PIPE_DIT],
              *vae = &e->comp[SL_PIPE_VAE];
    SL_INFO("loading diffusion model from '%s'", dit->path);
    if ((st = sl_zimage_load(dit->wd, dit->res, 0, &e->dit, err)) != SL_OK) return st;
    SL_INFO("loading llm from '%s'", te->path);
    if ((st = sl_qwen3_load(te->wd, te->res, NULL, &e->te, err)) != SL_OK) {
        sl_err_prefix(err, "loading the text encoder: ");
        return st;
    }
    SL_INFO("loading vae from '%s'", vae->path);
    if ((st = sl_fluxvae_load(vae->wd, vae->res, NULL, true, false, NULL, &e->vae, err)) != SL_OK) {
        sl_err_prefix(err, "loading the VAE: ");
        return st;
    }
    /* units held for a whole pass are planned resident from the start */
    dit->held_unit = e->dit->unit_globals;
    vae->held_unit = e->vae->dec.unit_globals;
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        if (e->comp[c].held_unit >= 0) sl_res_set_unit_spans(e->comp[c].res, e->comp[c].held_unit);

    if (e->te->cfg.hidden != e->dit->cfg.cap_dim)
        return sl_err_set(err, SL_ERR_SHAPE,
                          "the text encoder '%s' has hidden size %lld but the diffusion model "
                          "'%s' takes captions of %d features (mismatched model set)",
                          te->path, (long long)e->te->cfg.hidden, dit->path, e->dit->cfg.cap_dim);
    if (e->vae->cfg.z_ch != e->dit->cfg.in_ch)
        return sl_err_set(err, SL_ERR_SHAPE,
                          "the VAE '%s' has %d latent channels but the diffusion model has %d",
                          vae->path, e->vae->cfg.z_ch, e->dit->cfg.in_ch);
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        pipe_comp *pc = &e->comp[c];
        if ((st = sl_res_set_wdir(pc->res, pc->wd, err)) != SL_OK) return st;
        if ((st = sl_res_load_host(pc->res, err)) != SL_OK) return st;
    }
    return SL_OK;
}

int sluice_engine_open(const sluice_engine_params *p_in, sluice_engine **out, char *err,
                       size_t err_len) {
    double t0 = now_s();
    sl_err er = {0};
    *out = NULL;
    sluice_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, err_len, "out of host memory");
        return -SL_ERR_OOM_HOST;
    }
    sluice_engine_params def;
    sluice_engine_params_init(&def);
    e->p = p_in ? *p_in : def;
    e->p.tokenizer_path = NULL; /* until resolve_paths copies it */
    e->p.model_path = e->s_model = dup_or_null(e->p.model_path);
    e->p.diffusion_model_path = e->s_dit = dup_or_null(e->p.diffusion_model_path);
    e->p.vae_path = e->s_vae = dup_or_null(e->p.vae_path);
    e->p.llm_path = e->s_llm = dup_or_null(e->p.llm_path);
    e->p.backend = e->s_backend = dup_or_null(e->p.backend ? e->p.backend : "auto");
    if (e->p.streaming_prefetch < 1) e->p.streaming_prefetch = 1;
    if (e->p.streaming_min_vram_mb < 0) e->p.streaming_min_vram_mb = 0;
    const char *pe = getenv("SLUICE_PROFILE");
    if (pe && *pe && strcmp(pe, "0")) e->p.profile = true;
    e->comp[SL_PIPE_TE].name = "text encoder";
    e->comp[SL_PIPE_DIT].name = "diffusion model";
    e->comp[SL_PIPE_VAE].name = "VAE";

    sl_status st;
    if ((int)e->p.offload_mode < SLUICE_OFFLOAD_AUTO ||
        e->p.offload_mode > SLUICE_OFFLOAD_LAYER_STREAMING) {
        st = sl_err_set(&er, SL_ERR_INVALID_ARG, "unknown offload mode %d", (int)e->p.offload_mode);
        goto fail;
    }
    if ((st = open_backend(e, &er)) != SL_OK) goto fail;
    e->device = e->be->info.is_device;
    if ((st = sl_backend_measure_create(e->be, &e->mb, &er)) != SL_OK) goto fail;
    if ((st = e->be->vt->event_create(e->be, &e->ev_step)) != SL_OK) {
        sl_err_set(&er, st, "creating an event: %s", e->be->last_error);
        goto fail;
    }
    SL_INFO("backend: %s (%s)", e->be->info.name, e->be->info.device);
    if ((st = resolve_paths(
             e, p_in && p_in->tokenizer_path && *p_in->tokenizer_path ? p_in->tokenizer_path : NULL,
             &er)) != SL_OK)
        goto fail;
    e->p.tokenizer_path = e->s_tok; /* the caller's string was copied by resolve_paths */
    st = e->s_tok ? sl_tok_load_json(e->s_tok, &e->tok, &er) : sl_tok_load_builtin(&e->tok, &er);
    if (st != SL_OK) goto fail;
    if ((st = load_models(e, &er)) != SL_OK) goto fail;
    if (e->device) {
        /* the planner's link speed; a tiny emulated device measures with a small copy */
        bool emu = !strncmp(e->be->info.name, "cpu", 3);
        sl_err e2 = {0};
        if (sl_res_measure_link(e->be, emu ? (size_t)8 << 20 : 0, &e->link_gbps, &e2) != SL_OK) {
            SL_DEBUG("link bandwidth not measured (%s); the planner assumes %.0f GB/s", e2.msg,
                     12.0);
            e->link_gbps = 0;
        } else {
            SL_INFO("host→device link: %.1f GB/s", e->link_gbps);
        }
    }
    e->load_s = now_s() - t0;
    SL_INFO("loading tensors completed, taking %.2fs", e->load_s);
    *out = e;
    return 0;
fail:
    fill_err(err, err_len, &er);
    sluice_engine_close(e);
    return -(int)(st ? st : SL_ERR_INTERNAL);
}

void sluice_engine_close(sluice_engine *e) {
    if (!e) return;
    if (e->be) sl_pipe_park_all(e);
    sl_qwen3_free(e->te);
    sl_zimage_free(e->dit);
    sl_fluxvae_free(e->vae);
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        sl_res_free(e->comp[c].res);
        free(e->comp[c].path);
    }
    for (int i = 0; i < e->n_wdirs; i++)
        sl_wdir_free(e->wdirs[i]);
    sl_tok_free(e->tok);
    if (e->ev_step) e->be->vt->event_destroy(e->be, e->ev_step);
    sl_backend_destroy(e->mb);
    sl_backend_destroy(e->be);
    free(e->s_model);
    free(e->s_dit);
    free(e->s_vae);
    free(e->s_llm);
    free(e->s_tok);
    free(e->s_backend);
    free(e);
}

const char *sluice_engine_backend(const sluice_engine *e) {
    return e->be->info.name;
}
const char *sluice_engine_device(const sluice_engine *e) {
    return e->be->info.device;
}

void sluice_last_timings(const sluice_engine *e, sluice_timings *out) {
    *out = e->timings;
}

typedef struct log_fwd {
    sluice_log_fn fn;
    void *user;
} log_fwd;
static log_fwd g_log_fwd;

static void log_forward(sl_log_level level, const char *msg, void *user) {
    const log_fwd *f = user;
    f->fn((int)level, msg, f->user);
}

void sluice_set_log(sluice_log_fn fn, void *user, int min_level) {
    if (fn) {
        g_log_fwd = (log_fwd){fn, user};
        sl_log_set_callback(log_forward, &g_log_fwd);
    } else {
        sl_log_set_callback(NULL, NULL);
    }
    sl_log_set_level((sl_log_level)(min_level < 0 ? 0 : min_level > 4 ? 4 : min_level));
}
