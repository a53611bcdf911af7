/* pipeline/generate.c — txt2img: conditioning → sampling → VAE decode (specs/zimage.md §0, §4).
 *
 * One request: the prompts are tokenized with the Z-Image chat template and encoded once (the
 * negative one only with CFG); then every image of the batch is sampled (seed, seed + 1, …) with
 * the diffusion model on the device, latents kept on the host; then every latent is decoded. So
 * each component runs in one stage per request, and the stage transitions (offload.c) happen at
 * most once per stage whatever the batch size. Each stage allocates one activation arena sized
 * beforehand (dry run on the measuring backend, or the closed-form formula); nothing is allocated
 * inside the sampling loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "pipeline/engine_impl.h"
#include "samplers/sampler.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sluice_gen_params_init(sluice_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->negative_prompt = "";
    p->width = p->height = 512;
    p->steps = 8;
    p->cfg_scale = 1.0f;
    p->flow_shift = 3.0f;
    p->seed = 42;
    p->batch_count = 1;
}

void sluice_images_free(sluice_image *images, int n) {
    if (!images) return;
    for (int i = 0; i < n; i++)
        free(images[i].data);
    free(images);
}

void sl_pipe_noise(int64_t seed, float *out, int64_t n) {
    sl_rng_normal((uint64_t)seed, SL_PIPE_NOISE_STREAM, 0, out, n);
}

void sl_pipe_to_rgb8(const float *chw, int H, int W, uint8_t *rgb) {
    size_t plane = (size_t)H * (size_t)W;
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = chw[(size_t)ch * plane + i] * 0.5f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; /* NaN stays NaN: mapped to 0 below */
            float r = nearbyintf(v * 255.0f);
            rgb[i * 3 + (size_t)ch] = r >= 0.0f && r <= 255.0f ? (uint8_t)r : 0;
        }
}

/* ---- the sampling stage's tensors (the same carving for the dry run and the real run) ---- */

typedef struct dit_io {
    sl_tensor x;       /* f32 [C, Hl, Wl] latent */
    sl_tensor caps[2]; /* f32 [Lc_b, Cc] */
    sl_tensor vel[2];  /* f32 [C, Hl, Wl] */
} dit_io;

static void dit_io_make(sl_ctx *ctx, const sl_zimage_config *c, int Hl, int Wl, const int *lc,
                        int n_caps, dit_io *io) {
    io->x = sl_new3(ctx, SL_DTYPE_F32, c->in_ch, Hl, Wl);
    for (int b = 0; b < n_caps; b++) {
        io->caps[b] = sl_new2(ctx, SL_DTYPE_F32, lc[b], c->cap_dim);
        io->vel[b] = sl_new3(ctx, SL_DTYPE_F32, c->in_ch, Hl, Wl);
    }
}

static size_t aligned(size_t b) {
    return SL_ALIGN_UP(b, (size_t)SL_ARENA_ALIGN);
}

/* Activation arenas of the three stages. */
static sl_status stage_arenas(sluice_engine *e, int Hl, int Wl, const int *lc, int n_caps,
                              size_t arena[SL_PIPE_NCOMP], sl_err *err) {
    sl_dtype act = e->be->info.act_dtype;
    int lmax = lc[0];
    for (int b = 1; b < n_caps; b++)
        lmax = SL_MAX(lmax, lc[b]);
    const sl_zimage_config *zc = &e->dit->cfg;
    if (e->p.vram_estimation_formula) {
        arena[SL_PIPE_TE] = sl_qwen3_arena_bytes(&e->te->cfg, lmax, act);
        size_t io = aligned((size_t)zc->in_ch * Hl * Wl * 4);
        for (int b = 0; b < n_caps; b++)
            io +=
                aligned((size_t)lc[b] * zc->cap_dim * 4) + aligned((size_t)zc->in_ch * Hl * Wl * 4);
        arena[SL_PIPE_DIT] = io + sl_zimage_arena_bytes(zc, act, Hl, Wl, lc, n_caps);
        arena[SL_PIPE_VAE] = sl_fluxvae_decode_arena_bytes(&e->vae->cfg, Hl, Wl, act);
        return SL_OK;
    }
    /* dry runs: the stage's own code on the measuring backend (no work, exact peak) */
    sl_status st;
    sl_ctx ctx;
    int32_t *ids = calloc((size_t)lmax, sizeof *ids);
    if (!ids) return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory");
    sl_ctx_init(&ctx, e->mb, NULL, 0);
    sl_tensor out = sl_new2(&ctx, SL_DTYPE_F32, lmax, e->te->cfg.hidden);
    st = sl_qwen3_forward(e->te, &ctx, ids, lmax, &out, err);
    free(ids);
    if (st != SL_OK) return st;
    arena[SL_PIPE_TE] = aligned(ctx.peak);

    sl_ctx_init(&ctx, e->mb, NULL, 0);
    dit_io io;
    dit_io_make(&ctx, zc, Hl, Wl, lc, n_caps, &io);
    const sl_tensor *cp[2] = {&io.caps[0], &io.caps[1]};
    sl_tensor *vp[2] = {&io.vel[0], &io.vel[1]};
    if ((st = sl_zimage_forward(e->dit, NULL, &ctx, &io.x, 0.5f, cp, n_caps, vp, err)) != SL_OK)
        return st;
    if (n_caps == 2) sl_sampler_cfg(&ctx, &io.vel[0], &io.vel[1], 1.0f, 0.0f);
    sl_sampler_euler_step(&ctx, &io.x, &io.vel[0], -0.1f);
    if ((st = sl_ctx_take_error(&ctx, err)) != SL_OK) return st;
    arena[SL_PIPE_DIT] = aligned(ctx.peak);

    int f8 = 1 << (e->vae->cfg.n_levels - 1);
    sl_ctx_init(&ctx, e->mb, NULL, 0);
    sl_tensor lt = sl_new3(&ctx, SL_DTYPE_F32, e->vae->cfg.z_ch, Hl, Wl);
    sl_tensor im =
        sl_new3(&ctx, SL_DTYPE_F32, e->vae->cfg.in_ch, (int64_t)Hl * f8, (int64_t)Wl * f8);
    if ((st = sl_fluxvae_decode(e->vae, &ctx, &lt, &im, err)) != SL_OK) return st;
    arena[SL_PIPE_VAE] = aligned(ctx.peak);
    return SL_OK;
}

sl_status sl_pipe_job_make(sluice_engine *e, int width, int height, const int *lc, int n_caps,
                           int steps, int n_images, sl_pipe_job *job, sl_err *err) {
    memset(job, 0, sizeof *job);
    int Hl = height / 8, Wl = width / 8;
    /* the planner's per-pass costs for this shape (refined by measurement after a pass) */
    int lmax = lc[0];
    for (int b = 1; b < n_caps; b++)
        lmax = SL_MAX(lmax, lc[b]);
    sl_zimage_set_costs(e->dit, e->comp[SL_PIPE_DIT].res, Hl, Wl, lmax, n_caps, 0);
    sl_status st = SL_OK;
    for (int c = 0; c < SL_PIPE_NCOMP && st == SL_OK; c++)
        st = sl_pipe_view_get(e, c, &job->view[c], err);
    if (st == SL_OK) st = stage_arenas(e, Hl, Wl, lc, n_caps, job->arena, err);
    if (st != SL_OK) {
        sl_pipe_job_free(job);
        return st;
    }
    job->passes[SL_PIPE_TE] = n_caps;
    job->passes[SL_PIPE_DIT] = steps * n_images;
    job->passes[SL_PIPE_VAE] = n_images;
    job->lat_h = Hl;
    job->lat_w = Wl;
    job->vae_cfg = e->vae->cfg;
    job->act = e->be->info.act_dtype;
    job->prefetch = e->p.streaming_prefetch;
    job->link_gbps = e->link_gbps;
    return SL_OK;
}

/* ---- one request ---- */

typedef struct request {
    sluice_engine *e;
    const sluice_gen_params *gp;
    sluice_progress_fn progress;
    void *user;
    int steps, n_images, n_caps;
    float w;       /* CFG guidance w = cfg_scale − 1 (diffusers convention) */
    float *sigmas; /* steps + 1 */
    int64_t seed;
    int32_t *ids[2];
    int lc[2];
    float *cap[2];   /* host caption features [lc, Cc] */
    float **latents; /* per image, host [C, Hl, Wl] */
    sl_pipe_policy pol;
    sl_pipe_job job;
    bool have_job;
    int Hl, Wl;
} request;

static sl_status call_progress(request *rq, const char *stage, int step, int steps, double t0,
                               int image, sl_err *err) {
    if (!rq->progress) return SL_OK;
    sluice_progress pr = {.stage = stage,
                          .step = step,
                          .steps = steps,
                          .stage_elapsed_s = now_s() - t0,
                          .image = image,
                          .n_images = rq->n_images,
                          .seed = rq->seed + image};
    if (rq->progress(rq->user, &pr))
        return sl_err_set(err, SL_ERR_CANCELLED,
                          "cancelled by the progress callback (%s %d/%d, "
                          "image %d/%d)",
                          stage, step, steps, image + 1, rq->n_images);
    return SL_OK;
}

static void profile_line(sluice_engine *e, int c) {
    if (!e->p.profile) return;
    char buf[512];
    sl_res_format_stats(e->comp[c].res, buf, sizeof buf);
    SL_INFO("%s", buf);
}

static sl_status stage_condition(request *rq, sl_err *err) {
    sluice_engine *e = rq->e;
    size_t arena;
    int tile;
    void *mem = NULL;
    sl_status st = sl_pipe_stage_enter(e, &rq->pol, SL_PIPE_TE, &rq->job, &arena, &tile, &mem, err);
    if (st != SL_OK) return st;
    double t0 = now_s();
    sl_ctx ctx;
    sl_ctx_init(&ctx, e->be, mem, arena);
    int64_t D = e->te->cfg.hidden;
    for (int b = 0; b < rq->n_caps && st == SL_OK; b++) {
        rq->cap[b] = malloc((size_t)rq->lc[b] * (size_t)D * sizeof(float));
        if (!rq->cap[b]) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory for caption features");
            break;
        }
        st = sl_qwen3_encode(e->te, &ctx, rq->ids[b], rq->lc[b], rq->cap[b], err);
        if (st == SL_OK) profile_line(e, SL_PIPE_TE);
        if (st == SL_OK) st = call_progress(rq, "conditioning", b + 1, rq->n_caps, t0, 0, err);
    }
    sl_pipe_stage_exit(e, &rq->pol, SL_PIPE_TE, mem);
    e->timings.conditioning_s += now_s() - t0;
    if (st == SL_OK)
        SL_INFO("get_learned_condition completed, taking %.2fs (%d + %d tokens)", now_s() - t0,
                rq->lc[0], rq->n_caps > 1 ? rq->lc[1] : 0);
    return st;
}

static sl_status sample_one(request *rq, sl_ctx *ctx, dit_io *io, int img, sl_err *err) {
    sluice_engine *e = rq->e;
    const sl_zimage_config *zc = &e->dit->cfg;
    int64_t n = (int64_t)zc->in_ch * rq->Hl * rq->Wl;
    float *x = rq->latents[img];
    sl_pipe_noise(rq->seed + img, x, n);
    sl_upload(ctx, &io->x, x);
    for (int b = 0; b < rq->n_caps; b++)
        sl_upload(ctx, &io->caps[b], rq->cap[b]);
    SL_INFO("generating image: %d/%d - seed %lld", img + 1, rq->n_images,
            (long long)(rq->seed + img));
    const sl_tensor *cp[2] = {&io->caps[0], &io->caps[1]};
    sl_tensor *vp[2] = {&io->vel[0], &io->vel[1]};
    double t0 = now_s();
    sl_status st = sl_ctx_take_error(ctx, err);
    for (int i = 0; i < rq->steps && st == SL_OK; i++) {
        float s0 = rq->sigmas[i], s1 = rq->sigmas[i + 1];
        bool cfg = rq->n_caps == 2 && sl_sampler_cfg_active(rq->w, 1.0f, s0);
        float t = sl_sampler_zimage_time(s0);
        st = sl_zimage_forward(e->dit, e->comp[SL_PIPE_DIT].res, ctx, &io->x, t, cp, cfg ? 2 : 1,
                               vp, err);
        if (st != SL_OK) break;
        if (cfg) sl_sampler_cfg(ctx, &io->vel[0], &io->vel[1], rq->w, 0.0f);
        sl_sampler_euler_step(ctx, &io->x, &io->vel[0], s1 - s0);
        if ((st = sl_ctx_take_error(ctx, err)) != SL_OK) break;
        /* host waits for the compute queue only (uploads prefetched for the next pass go on) */
        if ((st = e->be->vt->event_record(e->be, e->ev_step, SL_QUEUE_COMPUTE)) == SL_OK)
            st = e->be->vt->event_sync(e->be, e->ev_step);
        if (st != SL_OK) {
            st = sl_err_set(err, st, "waiting for a sampling step: %s", e->be->last_error);
            break;
        }
        profile_line(e, SL_PIPE_DIT);
        st = call_progress(rq, "sampling", i + 1, rq->steps, t0, img, err);
    }
    if (st == SL_OK) {
        sl_download(ctx, x, &io->x);
        st = sl_ctx_take_error(ctx, err);
    }
    double dt = now_s() - t0;
    e->timings.per_step_s = dt / rq->steps;
    if (st == SL_OK) SL_INFO("sampling completed, taking %.2fs", dt);
    return st;
}

static sl_status stage_sample(request *rq, sl_err *err) {
    sluice_engine *e = rq->e;
    size_t arena;
    int tile;
    void *mem = NULL;
    sl_status st =
        sl_pipe_stage_enter(e, &rq->pol, SL_PIPE_DIT, &rq->job, &arena, &tile, &mem, err);
    if (st != SL_OK) return st;
    double t0 = now_s();
    sl_ctx ctx;
    sl_ctx_init(&ctx, e->be, mem, arena);
    dit_io io;
    dit_io_make(&ctx, &e->dit->cfg, rq->Hl, rq->Wl, rq->lc, rq->n_caps, &io);
    SL_INFO("sampling using %s method", "euler");
    int64_t n = (int64_t)e->dit->cfg.in_ch * rq->Hl * rq->Wl;
    for (int i = 0; i < rq->n_images && st == SL_OK; i++) {
        if (!(rq->latents[i] = malloc((size_t)n * sizeof(float)))) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory for latents");
            break;
        }
        st = sample_one(rq, &ctx, &io, i, err);
    }
    sl_pipe_stage_exit(e, &rq->pol, SL_PIPE_DIT, mem);
    e->timings.sampling_s += now_s() - t0;
    return st;
}

static sl_status stage_decode(request *rq, sluice_image *images, sl_err *err) {
    sluice_engine *e = rq->e;
    size_t arena;
    int tile;
    void *mem = NULL;
    sl_status st =
        sl_pipe_stage_enter(e, &rq->pol, SL_PIPE_VAE, &rq->job, &arena, &tile, &mem, err);
    if (st != SL_OK) return st;
    double t0 = now_s();
    sl_ctx ctx;
    sl_ctx_init(&ctx, e->be, mem, arena);
    int W = rq->gp->width, H = rq->gp->height;
    float *img = malloc((size_t)3 * (size_t)W * (size_t)H * sizeof(float));
    if (!img) st = sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory for the decoded image");
    /* untiled: a tile as large as the latent (decode_host would otherwise choose from the arena) */
    sl_fluxvae_tiling tl = {tile ? tile : SL_MAX(rq->Hl, rq->Wl), tile ? SL_MAX(2, tile / 4) : 0};
    for (int i = 0; i < rq->n_images && st == SL_OK; i++) {
        double ti = now_s();
        st = sl_fluxvae_decode_host(e->vae, &ctx, rq->latents[i], rq->Hl, rq->Wl, img, &tl, err);
        if (st != SL_OK) break;
        profile_line(e, SL_PIPE_VAE);
        images[i] = (sluice_image){.width = W,
                                   .height = H,
                                   .channels = 3,
                                   .data = malloc((size_t)W * (size_t)H * 3),
                                   .seed = rq->seed + i};
        if (!images[i].data) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory for the image");
            break;
        }
        sl_pipe_to_rgb8(img, H, W, images[i].data);
        SL_INFO("decode_first_stage completed, taking %.2fs", now_s() - ti);
        st = call_progress(rq, "decoding", 1, 1, ti, i, err);
    }
    free(img);
    sl_pipe_stage_exit(e, &rq->pol, SL_PIPE_VAE, mem);
    e->timings.decoding_s += now_s() - t0;
    return st;
}

static sl_status tokenize(request *rq, sl_err *err) {
    sluice_engine *e = rq->e;
    const char *text[2] = {rq->gp->prompt ? rq->gp->prompt : "",
                           rq->gp->negative_prompt ? rq->gp->negative_prompt : ""};
    int64_t V = e->te->cfg.vocab;
    for (int b = 0; b < rq->n_caps; b++) {
        int n_full = 0;
        sl_status st = sl_tok_zimage_prompt(e->tok, text[b], SL_TOK_ZIMAGE_MAX_TOKENS, &rq->ids[b],
                                            &rq->lc[b], &n_full, err);
        if (st != SL_OK) {
            sl_err_prefix(err, "tokenizing the %s prompt: ", b ? "negative" : "");
            return st;
        }
        if (n_full > rq->lc[b])
            SL_WARN("the %sprompt has %d tokens with the template; only the first %d are used",
                    b ? "negative " : "", n_full, rq->lc[b]);
        /* a synthetic test encoder has a small vocabulary: fold ids into it (real Qwen3 has
         * 151936 rows, more than the tokenizer's ids, so nothing changes for it) */
        bool folded = false;
        for (int i = 0; i < rq->lc[b]; i++)
            if (rq->ids[b][i] >= V) {
                rq->ids[b][i] = (int32_t)(rq->ids[b][i] % V);
                folded = true;
            }
        if (folded && !e->warned_vocab) {
            SL_WARN("the text encoder's vocabulary has %lld rows, fewer than the tokenizer's "
                    "%d ids (a synthetic test model?): token ids are folded modulo %lld",
                    (long long)V, sl_tok_n_ids(e->tok), (long long)V);
            e->warned_vocab = true;
        }
    }
    return SL_OK;
}

static void request_free(request *rq) {
    for (int b = 0; b < 2; b++) {
        free(rq->ids[b]);
        free(rq->cap[b]);
    }
    if (rq->latents)
        for (int i = 0; i < rq->n_images; i++)
            free(rq->latents[i]);
    free(rq->latents);
    free(rq->sigmas);
    if (rq->have_job) sl_pipe_job_free(&rq->job);
}

static sl_status validate(const sluice_gen_params *gp, sl_err *err) {
    if (gp->width <= 0 || gp->height <= 0 || gp->width % 16 || gp->height % 16)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "image size %dx%d: width and height must be positive multiples of 16 "
                          "(e.g. %dx%d)",
                          gp->width, gp->height, gp->width > 16 ? gp->width / 16 * 16 : 16,
                          gp->height > 16 ? gp->height / 16 * 16 : 16);
    if (gp->steps > 10000)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "steps %d is too many", gp->steps);
    if (gp->batch_count < 1 || gp->batch_count > 100000)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "batch count %d must be at least 1",
                          gp->batch_count);
    if (!(gp->cfg_scale >= 0.0f) || !isfinite(gp->cfg_scale))
        return sl_err_set(err, SL_ERR_INVALID_ARG, "cfg scale %g must be >= 0", gp->cfg_scale);
    if (!isfinite(gp->flow_shift))
        return sl_err_set(err, SL_ERR_INVALID_ARG, "flow shift %g is not a number", gp->flow_shift);
    return SL_OK;
}

int sluice_generate(sluice_engine *e, const sluice_gen_params *gp, sluice_progress_fn progress,
                    void *user, sluice_image **images_out, int *n_out, char *errbuf,
                    size_t err_len) {
    double t_start = now_s();
    sl_err er = {0};
    sl_err *err = &er;
    *images_out = NULL;
    *n_out = 0;
    request rq = {.e = e, .gp = gp, .progress = progress, .user = user};
    sluice_image *images = NULL;
    memset(&e->timings, 0, sizeof e->timings);
    e->timings.load_s = e->load_s;
    sl_status st = gp ? validate(gp, err) : sl_err_set(err, SL_ERR_INVALID_ARG, "no parameters");
    if (st != SL_OK) goto fail;

    sl_sample_method method;
    sl_scheduler sched;
    if ((st = sl_sampler_parse_method(gp->sampling_method, &method, err)) != SL_OK) goto fail;
    if (method != SL_SAMPLE_EULER) {
        st = sl_err_set(err, SL_ERR_UNSUPPORTED,
                        "sampling method '%s' is not implemented by the pipeline yet (use euler)",
                        sl_sampler_method_name(method));
        goto fail;
    }
    if ((st = sl_sampler_parse_scheduler(gp->scheduler, &sched, err)) != SL_OK) goto fail;
    rq.steps = gp->steps > 0 ? gp->steps : 8;
    rq.n_images = gp->batch_count;
    rq.n_caps = gp->cfg_scale > 1.0f ? 2 : 1;
    rq.w = gp->cfg_scale - 1.0f;
    rq.Hl = gp->height / 8;
    rq.Wl = gp->width / 8;
    float shift = gp->flow_shift > 0 ? gp->flow_shift : 3.0f;
    rq.seed = gp->seed;
    if (rq.seed < 0) {
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        rq.seed = rand();
        SL_INFO("random seed: %lld", (long long)rq.seed);
    }
    if (!(rq.sigmas = malloc((size_t)(rq.steps + 1) * sizeof(float))) ||
        !(rq.latents = calloc((size_t)rq.n_images, sizeof *rq.latents)) ||
        !(images = calloc((size_t)rq.n_images, sizeof *images))) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory");
        goto fail;
    }
    if ((st = sl_sampler_sigmas(sched, rq.steps, shift, rq.sigmas, err)) != SL_OK) goto fail;

    double t_cond = now_s();
    if ((st = tokenize(&rq, err)) != SL_OK) goto fail;
    e->timings.conditioning_s += now_s() - t_cond;
    if ((st = sl_pipe_job_make(e, gp->width, gp->height, rq.lc, rq.n_caps, rq.steps, rq.n_images,
                               &rq.job, err)) != SL_OK)
        goto fail;
    rq.have_job = true;
    double predicted = 0;
    if ((st = sl_pipe_choose(e, &rq.job, &rq.pol, &predicted, err)) != SL_OK) goto fail;
    e->timings.mode = rq.pol.mode;
    e->timings.predicted_s = predicted;

    if ((st = stage_condition(&rq, err)) != SL_OK) goto fail;
    if ((st = stage_sample(&rq, err)) != SL_OK) goto fail;
    if ((st = stage_decode(&rq, images, err)) != SL_OK) goto fail;
    sl_pipe_request_end(e, &rq.pol);

    e->timings.n_images = rq.n_images;
    e->timings.steps = rq.steps;
    e->timings.total_s = now_s() - t_start;
    SL_INFO("generate_image completed in %.2fs", e->timings.total_s);
    *images_out = images;
    *n_out = rq.n_images;
    request_free(&rq);
    return 0;

fail:
    /* leave the device clean: whatever failed (out of memory, a backend error mid-pass,
     * cancellation), the next request starts from parked components */
    sl_pipe_park_all(e);
    if (images) sluice_images_free(images, rq.n_images);
    request_free(&rq);
    e->timings.total_s = now_s() - t_start;
    if (errbuf && err_len) snprintf(errbuf, err_len, "%s", er.msg[0] ? er.msg : sl_status_str(st));
    return -(int)(st ? st : SL_ERR_INTERNAL);
}

sl_status sl_pipe_needs(sluice_engine *e, const sluice_gen_params *gp,
                        size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1], sl_err *err) {
    request rq = {.e = e, .gp = gp};
    sl_status st = validate(gp, err);
    if (st != SL_OK) return st;
    rq.steps = gp->steps > 0 ? gp->steps : 8;
    rq.n_images = gp->batch_count;
    rq.n_caps = gp->cfg_scale > 1.0f ? 2 : 1;
    if ((st = tokenize(&rq, err)) == SL_OK &&
        (st = sl_pipe_job_make(e, gp->width, gp->height, rq.lc, rq.n_caps, rq.steps, rq.n_images,
                               &rq.job, err)) == SL_OK) {
        rq.have_job = true;
        sl_pipe_requirements(&e->p, &rq.job, need);
    }
    request_free(&rq);
    return st;
}
