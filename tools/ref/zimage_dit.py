#!/usr/bin/env python3
"""Reference outputs of the Z-Image DiT and its sampler from diffusers, for sluice's parity tests.

Needs PyTorch and safetensors; diffusers is imported from a source checkout (--diffusers-src, its
folder that contains the `diffusers` package, i.e. <repo>/src). Runs on CPU or CUDA.

--mode tiny (the committed fixture, float32 on CPU by default):
    python3 tools/ref/zimage_dit.py --mode tiny --diffusers-src ~/diffusers/src \
        --model /tmp/zimage-tiny.safetensors --out tests/fixtures/zimage
  where the model was written by sluice (official layout, bf16, seed 1234):
    sluice synth --arch zimage --size tiny --layout official --dtype bf16 --seed 1234 \
        -o /tmp/zimage-tiny.safetensors
  It loads that file into ZImageTransformer2DModel(tiny config) with a strict state-dict load,
  makes fixed inputs from a fixed torch seed (saved into the fixture), and saves one DiT pass, the
  scheduler's sigmas, a 2-step sample (with its first Euler step) and a 2-step CFG sample.

--mode full (the GPU comparison, bf16, 512x512):
    python3 tools/ref/zimage_dit.py --mode full --device cuda --diffusers-src ... \
        --model /data/zimage-full-official-bf16.safetensors --out /tmp/zfull
  saves zimage_full_ref.safetensors (inputs, one pass, the 8-step Turbo sample). With
  --sluice-out FILE (the same tensor names written by sluice's gpu_zimage_full_reference test)
  it prints the relative L2 error of each output.
"""

import argparse
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["tiny", "full"], default="tiny")
    p.add_argument("--diffusers-src", required=True, help="folder holding the diffusers package (repo/src)")
    p.add_argument("--model", required=True, help="sluice-written synthetic DiT (official layout)")
    p.add_argument("--out", default="tests/fixtures/zimage", help="output folder")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cpu for tiny, cuda for full)")
    p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: f32 tiny, bf16 full)")
    p.add_argument("--sluice-out", default=None, help="full mode: sluice outputs to compare against")
    p.add_argument("--seed", type=int, default=20251127, help="seed of the fixed inputs")
    return p.parse_args()


def import_diffusers(src):
    sys.path.insert(0, os.path.abspath(src))
    try:
        from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel
        from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
    except ImportError as e:  # a missing dependency of the diffusers package itself
        sys.exit(f"cannot import diffusers from {src}: {e}\n(diffusers needs huggingface_hub, numpy, "
                 "safetensors, filelock, regex, requests, Pillow, importlib_metadata)")
    return ZImageTransformer2DModel, FlowMatchEulerDiscreteScheduler


# The configs sluice uses (src/models/zimage/zimage.h: sl_zimage_config_tiny / _full).
TINY = dict(dim=384, n_layers=2, n_refiner_layers=2, n_heads=3, n_kv_heads=3, cap_feat_dim=256,
            axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])
FULL = dict(dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30, n_kv_heads=30, cap_feat_dim=2560,
            axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])

# Tensors whose statistics identify the synthetic model (sluice's test checks them before comparing).
CHECK_TENSORS = ["x_pad_token", "cap_embedder.1.weight", "layers.1.feed_forward.w2.weight",
                 "noise_refiner.0.attention.norm_q.weight", "t_embedder.mlp.0.bias"]


def load_model(cls, cfg, path, device, dtype):
    import torch
    from safetensors.torch import load_file
    t0 = time.time()
    with torch.device("meta"):
        model = cls(**cfg)
    sd = load_file(path)
    missing = set(model.state_dict().keys()) ^ set(sd.keys())
    if missing:
        sys.exit(f"{path}: names differ from ZImageTransformer2DModel: {sorted(missing)[:10]}")
    sd = {k: v.to(dtype) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype).eval()
    print(f"loaded {path}: {sum(v.numel() for v in sd.values()):,} params in {time.time() - t0:.1f} s")
    meta = {}
    for name in CHECK_TENSORS:
        v = sd[name].double()
        meta[f"check.{name}.sum"] = repr(float(v.sum()))
        meta[f"check.{name}.abssum"] = repr(float(v.abs().sum()))
    return model, meta


def dit(model, latent, t, cap):
    """Raw DiT output (−velocity) for one latent [16, H, W] and one caption [L, Cc]."""
    import torch
    dtype = next(model.parameters()).dtype
    x = latent.to(dtype).unsqueeze(1)  # [C, F=1, H, W]
    tt = torch.tensor([t], dtype=torch.float32, device=latent.device) if not torch.is_tensor(t) else t.reshape(1)
    out = model([x], tt, [cap.to(dtype)], return_dict=False)[0][0]
    return out.squeeze(1).float()


def schedule(sched_cls, steps, device):
    """The Z-Image pipeline's schedule: sigmas linspace(1, 1/n, n) through the scheduler (shift 3)."""
    import torch
    sch = sched_cls(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    base = torch.linspace(1.0, 1.0 / steps, steps).tolist()
    sch.set_timesteps(sigmas=base, device=device, mu=0.5)  # mu is ignored without dynamic shifting
    sch.set_begin_index(0)
    return sch


def sample(model, sched_cls, latent, caps, steps, cfg_scale=0.0, cfg_truncation=1.0, keep_first=False):
    """The pipeline's denoising loop (pipelines/z_image/pipeline_z_image.py), batch size 1.
    caps = [cond] or [cond, uncond]."""
    import torch
    sch = schedule(sched_cls, steps, latent.device)
    x = latent.clone().float()
    first = None
    for i, ts in enumerate(sch.timesteps):
        t_model = (1000 - ts) / 1000
        apply_cfg = cfg_scale > 0 and not (float(t_model) > cfg_truncation)
        pos = dit(model, x, t_model, caps[0])
        if apply_cfg:
            neg = dit(model, x, t_model, caps[1])
            pred = pos + cfg_scale * (pos - neg)
        else:
            pred = pos
        x = sch.step(-pred.unsqueeze(0), ts, x.unsqueeze(0), return_dict=False)[0][0].float()
        if i == 0:
            first = x.clone()
    return (x, first) if keep_first else x


def rel_l2(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def main():
    a = parse_args()
    import torch
    from safetensors.torch import save_file
    ZModel, Sched = import_diffusers(a.diffusers_src)
    tiny = a.mode == "tiny"
    device = a.device or ("cpu" if tiny else "cuda")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, None: torch.float32 if tiny else torch.bfloat16}[a.dtype]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = TINY if tiny else FULL
    model, meta = load_model(ZModel, cfg, a.model, device, dtype)

    # fixed inputs: image tokens not a multiple of 32 (10x14 latent = 35 tokens -> 64; 512x512 =
    # 1024 tokens, already a multiple), caption lengths not multiples of 32 (20 -> 32, 9 -> 32;
    # full: 100 -> 128, 37 -> 64)
    g = torch.Generator().manual_seed(a.seed)
    Hl, Wl = (10, 14) if tiny else (64, 64)
    Lc, Ln = (20, 9) if tiny else (100, 37)
    Cc = cfg["cap_feat_dim"]
    latent = torch.randn(16, Hl, Wl, generator=g)
    cap = torch.randn(Lc, Cc, generator=g)
    cap_neg = torch.randn(Ln, Cc, generator=g)
    t = 0.3
    out = {"latent": latent, "cap": cap, "cap_neg": cap_neg, "t": torch.tensor([t])}
    L, C, N = latent.to(device), cap.to(device), cap_neg.to(device)

    with torch.no_grad():
        t0 = time.time()
        out["dit_out"] = dit(model, L, t, C).cpu()
        out["dit_out_neg"] = dit(model, L, t, N).cpu()
        print(f"one pass: {time.time() - t0:.2f} s for two captions")
        for steps in ([8, 2] if tiny else [8]):
            sch = schedule(Sched, steps, "cpu")
            out[f"sigmas_{steps}"] = sch.sigmas.float().clone()
            out[f"times_{steps}"] = ((1000 - sch.timesteps) / 1000).float().clone()
        if tiny:
            final, first = sample(model, Sched, L, [C], 2, keep_first=True)
            out["sample2_step1"], out["sample2_final"] = first.cpu(), final.cpu()
            out["sample2_cfg_final"] = sample(model, Sched, L, [C, N], 2, cfg_scale=1.5).cpu()
            out["cfg_scale"] = torch.tensor([1.5])
        else:
            t0 = time.time()
            out["sample8_final"] = sample(model, Sched, L, [C], 8).cpu()
            print(f"8-step sample: {time.time() - t0:.2f} s")

    meta.update({"mode": a.mode, "dtype": str(dtype), "device": device, "input_seed": str(a.seed),
                 "model": os.path.basename(a.model), "latent": f"16x{Hl}x{Wl}", "cap_len": f"{Lc},{Ln}",
                 "torch": torch.__version__})
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "zimage_tiny_ref.safetensors" if tiny else "zimage_full_ref.safetensors")
    save_file({k: v.contiguous().float() for k, v in out.items()}, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes): {', '.join(sorted(out))}")

    if a.sluice_out:
        from safetensors.torch import load_file
        mine = load_file(a.sluice_out)
        for k in sorted(mine):  # raw DiT outputs and latents, same names and signs as here
            if k in out:
                print(f"{k}: rel-L2 {rel_l2(mine[k].float(), out[k].float()):.3e}")


if __name__ == "__main__":
    main()
