/* samplers/sampler.h — sigma schedules and step rules for flow-matching models (specs/zimage.md
 * §4).
 *
 * Names are the sd.cpp ids (specs/cli-server.md §1.5), matched case-sensitively. Every id sd.cpp
 * knows parses; the ones sluice does not implement yet return SL_ERR_UNSUPPORTED naming what is
 * available, unknown strings SL_ERR_INVALID_ARG listing the valid ids.
 *
 * Flow-matching conventions (sd.cpp's DiscreteFlowDenoiser, which the schedules below follow):
 * a timestep t ∈ [0, 999] maps to σ(t) = shift·s / (1 + (shift − 1)·s) with s = (t + 1)/1000;
 * σ_max = σ(999) = 1, σ_min = σ(0). A schedule of n steps is n sigmas followed by a terminal 0.
 *
 * Z-Image: the model time is 1 − σ, the DiT output is −velocity (sl_zimage_forward already returns
 * the velocity), and an Euler step is x ← x + (σ_{i+1} − σ_i)·v with latents in f32. */
#ifndef SL_SAMPLERS_SAMPLER_H
#define SL_SAMPLERS_SAMPLER_H

#include <stdbool.h>

#include "backend/ops.h"

typedef enum sl_sample_method {
    SL_SAMPLE_EULER = 0,
    SL_SAMPLE_EULER_A,
    SL_SAMPLE_HEUN,
    SL_SAMPLE_DPM2,
    SL_SAMPLE_DPMPP2S_A,
    SL_SAMPLE_DPMPP2M,
    SL_SAMPLE_DPMPP2MV2,
    SL_SAMPLE_IPNDM,
    SL_SAMPLE_IPNDM_V,
    SL_SAMPLE_LCM,
    SL_SAMPLE_DDIM_TRAILING,
    SL_SAMPLE_TCD,
    SL_SAMPLE_RES_MULTISTEP,
    SL_SAMPLE_RES_2S,
    SL_SAMPLE_ER_SDE,
    SL_SAMPLE_EULER_CFG_PP,
    SL_SAMPLE_EULER_A_CFG_PP,
    SL_SAMPLE_EULER_GE,
    SL_SAMPLE_DPMPP2M_SDE,
    SL_SAMPLE_DPMPP2M_SDE_BT,
    SL_SAMPLE_LMS,
    SL_SAMPLE_COUNT
} sl_sample_method;

typedef enum sl_scheduler {
    SL_SCHED_DISCRETE = 0, /* alias "normal" */
    SL_SCHED_KARRAS,
    SL_SCHED_EXPONENTIAL,
    SL_SCHED_AYS,
    SL_SCHED_GITS,
    SL_SCHED_SGM_UNIFORM,
    SL_SCHED_SIMPLE,
    SL_SCHED_SMOOTHSTEP,
    SL_SCHED_KL_OPTIMAL,
    SL_SCHED_LCM,
    SL_SCHED_BONG_TANGENT,
    SL_SCHED_LTX2,
    SL_SCHED_LOGIT_NORMAL,
    SL_SCHED_FLUX2,
    SL_SCHED_FLUX,
    SL_SCHED_BETA,
    SL_SCHED_AUTO, /* sluice: the model's reference schedule (not an sd.cpp id; named "auto") */
    SL_SCHED_COUNT
} sl_scheduler;

/* The sd.cpp id ("euler", "dpm++2m", "discrete", ...). Never NULL. */
const char *sl_sampler_method_name(sl_sample_method m);
const char *sl_sampler_scheduler_name(sl_scheduler s);
bool sl_sampler_method_supported(sl_sample_method m);
bool sl_sampler_scheduler_supported(sl_scheduler s);

/* Parse --sampling-method. NULL, "" and "auto" give euler (the default for flow models).
 * SL_ERR_UNSUPPORTED for a known id that is not implemented, SL_ERR_INVALID_ARG for an unknown one.
 */
sl_status sl_sampler_parse_method(const char *s, sl_sample_method *out, sl_err *err);
/* Parse --scheduler ("normal" = discrete). NULL, "" and "auto" give SL_SCHED_AUTO, the reference
 * schedule of the official / diffusers pipelines (sd.cpp's default `discrete` spaces timesteps
 * over [999, 0] and differs; `simple` equals the reference only when n divides 1000, e.g. the
 * 8-step Turbo default). */
sl_status sl_sampler_parse_scheduler(const char *s, sl_scheduler *out, sl_err *err);

/* σ(t) of the flow denoiser above. */
float sl_sampler_flow_sigma(float shift, float t);

/* Sigmas of `steps` steps (out holds steps + 1 values, the last 0), descending.
 *   discrete     t_i = 999 − i·999/(n−1)                       (sd.cpp DiscreteScheduler)
 *   simple       t_i = 999 − ⌊i·1000/n⌋   → σ = shift(1 − i/n) (sd.cpp SimpleScheduler; the
 *                Z-Image reference: 8 steps, shift 3 give 1, 0.954545, 0.9, 0.833333, 0.75,
 *                0.642857, 0.5, 0.3)
 *   sgm_uniform  t = linspace(999, 0, n + 1)[:n]
 *   karras       ρ = 7 between σ_min and σ_max
 *   exponential  log-uniform between σ_max and σ_min
 *   lcm          50 original steps
 *   auto         the reference: linspace(1, 1/n, n) shifted (= sl_sampler_zimage_reference_sigmas)
 * steps ≥ 1 and shift > 0, else SL_ERR_INVALID_ARG; an unimplemented scheduler SL_ERR_UNSUPPORTED.
 */
sl_status sl_sampler_sigmas(sl_scheduler s, int steps, float shift, float *out, sl_err *err);

/* The diffusers Z-Image pipeline's schedule computed its way, for reference: base sigmas
 * linspace(1, 1/n, n) in f32, shifted in f32, then 0. out holds steps + 1 values. */
void sl_sampler_zimage_reference_sigmas(int steps, float shift, float *out);

/* Parse --sigmas: comma-separated floats, optional surrounding brackets and spaces. Writes at most
 * max values and their count; SL_ERR_INVALID_ARG for malformed text, an empty list, a negative or
 * non-finite value, or more than max values. The list is used as given (the caller appends a 0 if
 * its last value is not 0: see sl_sampler_finish_sigmas). */
sl_status sl_sampler_parse_sigmas(const char *s, float *out, int max, int *n, sl_err *err);
/* Appends the terminal 0 when the list does not end in 0; returns the number of steps. out must
 * have room for n + 1 values. */
int sl_sampler_finish_sigmas(float *out, int n);

/* Z-Image's model time for σ exactly as the diffusers pipeline forms it: (1000 − σ·1000)/1000 in
 * f32 (the DiT multiplies it by 1000 again). */
float sl_sampler_zimage_time(float sigma);

/* ---- step rules (f32 latents) ---- */

/* x ← x + dt·v on the context's backend; v is overwritten (used as scratch). x, v f32, same shape.
 */
void sl_sampler_euler_step(sl_ctx *ctx, sl_tensor *x, sl_tensor *v, float dt);
/* The same on host arrays (v is not modified). */
void sl_sampler_euler_step_host(float *x, const float *v, long long n, float dt);

/* CFG with the diffusers Z-Image convention: pred = pos + w·(pos − neg), so w = 0 is no guidance
 * (sd.cpp's --cfg-scale s corresponds to w = s − 1). With norm_k > 0 (cfg_normalization) pred is
 * scaled down to ‖pred‖ ≤ norm_k·‖pos‖ (whole-tensor L2 norms).
 * On the backend: the result goes into pos; neg is overwritten. norm_k > 0 downloads pos and pred
 * to compute the norms (a host synchronisation, once per step). */
void sl_sampler_cfg(sl_ctx *ctx, sl_tensor *pos, sl_tensor *neg, float w, float norm_k);
void sl_sampler_cfg_host(float *pred, const float *pos, const float *neg, long long n, float w,
                         float norm_k);
/* Whether CFG runs at this σ: w > 0 and not truncated. cfg_truncation drops guidance once the
 * normalised time 1 − σ (formed as sl_sampler_zimage_time does) exceeds it; ≥ 1 never drops. */
bool sl_sampler_cfg_active(float w, float cfg_truncation, float sigma);

#endif
