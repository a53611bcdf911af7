#!/usr/bin/env python3
"""One Z-Image DiT pass in diffusers, timed the way `sluice bench` times sluice's (the peer rows
of docs/BENCHMARKS.md).

Loads the SAME safetensors file sluice benchmarks (sluice's synthetic full-size Z-Image, official /
diffusers layout, bf16) into diffusers' ZImageTransformer2DModel with a strict state-dict load, and
runs the same input shapes (latent 16 x H/8 x W/8 noise, --cap-tokens caption features of the
model's cap_feat_dim, t = 0.5) under these configurations:

  eager      resident, eager PyTorch
  compiled   resident, model.compile_repeated_blocks(dynamic=False) (regional torch.compile of
             every ZImageTransformerBlock; torch.compile per block when the method is missing)
  block      model.enable_group_offload(offload_type="block_level", num_blocks_per_group=1,
             use_stream=True): every block streams from pinned host memory, one group ahead
  leaf       model.enable_group_offload(offload_type="leaf_level", use_stream=True)

Each configuration gets a fresh model built from the state dict kept in host memory, --warmup
untimed passes (compilation, the offload hooks' first-pass order recording), then --passes timed
passes (CUDA events around each, median reported). Peak VRAM is torch.cuda.max_memory_allocated
after reset_peak_memory_stats once the model is placed (weights included). Rows are written in
the schema of `sluice bench --json` (bench/README.md) so that bench/assemble.py puts them in one
table.

diffusers is imported from a source tree (--diffusers-src: the folder holding the `diffusers`
package, i.e. <repo>/src); it needs torch, safetensors, numpy, huggingface_hub, filelock, regex,
requests, Pillow, importlib_metadata.

  python3 bench/peers/diffusers_zimage.py --diffusers-src /path/to/diffusers/src \\
      --model /tmp/sluice-bench/zimage-full-official-bf16.safetensors --out diffusers.json

--device cpu runs the eager configuration on the CPU (with a tiny model, to check the script).
"""

import argparse
import datetime
import gc
import json
import os
import statistics
import sys
import time

SCHEMA = "sluice-bench/1"
CONFIGS = ("eager", "compiled", "block", "leaf")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--diffusers-src", default=None, help="folder holding the diffusers package (repo/src)")
    p.add_argument("--model", required=True, help="Z-Image DiT, official/diffusers layout safetensors")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma list of " + ", ".join(CONFIGS))
    p.add_argument("-W", "--width", type=int, default=1024)
    p.add_argument("-H", "--height", type=int, default=1024)
    p.add_argument("--cap-tokens", type=int, default=256)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--t", type=float, default=0.5, help="model time 1 - sigma")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-gemm", action="store_true", help="skip the torch GEMM rate measurement")
    return p.parse_args()


def log(msg):
    print(f"[diffusers_zimage] {msg}", flush=True)


def import_model_class(src):
    if src:
        sys.path.insert(0, os.path.abspath(src))
    try:
        from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel
    except ImportError as e:
        sys.exit(f"cannot import diffusers{' from ' + src if src else ''}: {e}\n(diffusers needs "
                 "torch, safetensors, numpy, huggingface_hub, filelock, regex, requests, Pillow, "
                 "importlib_metadata)")
    import diffusers
    return ZImageTransformer2DModel, getattr(diffusers, "__version__", "?")


def config_from_state_dict(sd):
    """The model config that a state dict's shapes imply (sluice's full and tiny configs)."""
    dim = sd["all_x_embedder.2-1.weight"].shape[0]
    head_dim = sd["layers.0.attention.norm_q.weight"].shape[0]
    count = lambda prefix: len({k.split(".")[1] for k in sd if k.startswith(prefix + ".")})
    return dict(dim=dim, n_layers=count("layers"), n_refiner_layers=count("noise_refiner"),
                n_heads=dim // head_dim, n_kv_heads=dim // head_dim,
                cap_feat_dim=sd["cap_embedder.1.weight"].shape[1],
                axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])


def build_model(cls, cfg, sd):
    """A fresh model whose parameters are the state dict's host tensors (no copy)."""
    import torch
    with torch.device("meta"):
        model = cls(**cfg)
    names = set(model.state_dict().keys())
    if names != set(sd.keys()):
        diff = sorted(names ^ set(sd.keys()))
        sys.exit(f"the file's names differ from ZImageTransformer2DModel's: {diff[:10]}")
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def gemm_tflops(torch, device, M, N, K):
    """bf16 x bf16 GEMM rate at the DiT's FFN shape (random data), as sluice measures its own."""
    g = torch.Generator(device="cpu").manual_seed(7)
    x = torch.randn(M, K, generator=g).to(device, torch.bfloat16)
    w = (torch.randn(N, K, generator=g) * 0.02).to(device, torch.bfloat16)
    for _ in range(2):
        torch.nn.functional.linear(x, w)
    reps = 20
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    b.record()
    torch.cuda.synchronize()
    return 2.0 * M * N * K * reps / (a.elapsed_time(b) * 1e-3) / 1e12


def time_passes(torch, run, device, warmup, passes):
    """(list of ms per timed pass, seconds of the first warm-up pass)."""
    cuda = device.startswith("cuda")
    first_s = None
    for i in range(warmup):
        t0 = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        if i == 0:
            first_s = time.perf_counter() - t0
    ms = []
    for _ in range(passes):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            run()
            b.record()
            torch.cuda.synchronize()
            ms.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            run()
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms, first_s


def base_row(a, device_name, setting, mode):
    return {"system": "diffusers", "kind": "dit", "setting": setting, "mode": mode, "budget": "all",
            "budget_bytes": None, "dtype": "bf16", "device": device_name, "width": a.width,
            "height": a.height, "cap_tokens": a.cap_tokens, "ok": False, "passes": None,
            "units_resident": None, "units_streamed": None, "bytes_per_pass": None, "pass_ms": None,
            "pass_ms_min": None, "pass_ms_max": None, "stall_ms": None, "copy_ms": None,
            "compute_ms": None, "achieved_gbps": None, "predicted_ms": None, "plan_bytes": None,
            "arena_bytes": None, "peak_vram_bytes": None, "peak_vram_source": "torch.cuda.max_memory_allocated",
            "link_gbps": None, "bound_ms": None, "ratio_bound": None, "ratio_resident": None}


def run_config(name, a, torch, cls, cfg, sd, inputs, device, device_name, weight_bytes):
    labels = {
        "eager": ("resident, eager", "resident"),
        "compiled": ("resident, compile_repeated_blocks", "resident_compiled"),
        "block": ("group offload block_level, use_stream", "group_offload_block"),
        "leaf": ("group offload leaf_level, use_stream", "group_offload_leaf"),
    }
    setting, mode = labels[name]
    row = base_row(a, device_name, setting, mode)
    cuda = device.startswith("cuda")
    if name != "eager" and not cuda:
        row["error"] = f"{name} needs CUDA"
        return row
    model = None
    try:
        model = build_model(cls, cfg, sd)
        if name in ("eager", "compiled"):
            model = model.to(device)
            row.update(units_resident=None, bytes_per_pass=0)
            if name == "compiled":
                if hasattr(model, "compile_repeated_blocks"):
                    model.compile_repeated_blocks(dynamic=False)
                    row["compile"] = "compile_repeated_blocks(dynamic=False)"
                else:  # older diffusers: the same regions by hand
                    for blk in [*model.noise_refiner, *model.context_refiner, *model.layers]:
                        blk.compile(dynamic=False)
                    row["compile"] = "torch.compile per block (dynamic=False)"
        else:
            kw = dict(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                      use_stream=True)
            if name == "block":
                kw.update(offload_type="block_level", num_blocks_per_group=1)
            else:
                kw.update(offload_type="leaf_level")
            t0 = time.perf_counter()
            model.enable_group_offload(**kw)
            row["offload_setup_s"] = time.perf_counter() - t0
            # no partial residency: every group crosses the link every pass
            row["bytes_per_pass"] = weight_bytes
            row["budget"] = "min"
        lat, t, cap = inputs
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

        def run():
            with torch.inference_mode():
                model([lat], t, [cap], return_dict=False)

        ms, first_s = time_passes(torch, run, device, a.warmup, a.passes)
        row.update(ok=True, passes=len(ms), pass_ms=statistics.median(ms), pass_ms_min=min(ms),
                   pass_ms_max=max(ms), first_pass_s=first_s)
        if cuda:
            row["peak_vram_bytes"] = torch.cuda.max_memory_allocated()
            row["peak_vram_reserved"] = torch.cuda.max_memory_reserved()
        else:
            row["peak_vram_source"] = "not measured"
        log(f"{setting}: {row['pass_ms']:.1f} ms/pass (min {row['pass_ms_min']:.1f}), peak "
            f"{(row['peak_vram_bytes'] or 0) / 1e9:.2f} GB, first warm-up pass {first_s or 0:.1f} s")
    except Exception as e:  # one configuration failing must not lose the others
        row["ok"] = False
        row["error"] = f"{type(e).__name__}: {e}"[:500]
        log(f"{setting}: failed: {row['error']}")
    finally:
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            if hasattr(torch, "_dynamo"):
                torch._dynamo.reset()
    return row


def main():
    a = parse_args()
    configs = [c for c in a.configs.split(",") if c]
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"unknown config '{c}' (use {', '.join(CONFIGS)})")
    if a.width % 16 or a.height % 16:
        sys.exit("width and height must be multiples of 16")
    import torch
    from safetensors.torch import load_file
    cls, dver = import_model_class(a.diffusers_src)
    device = a.device
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA device (use --device cpu for a check on the CPU)")
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"

    t0 = time.perf_counter()
    sd = load_file(a.model)
    dtypes = {str(v.dtype) for v in sd.values()}
    if dtypes - {"torch.bfloat16"}:
        log(f"note: the file holds {sorted(dtypes)}; everything runs in bf16")
        sd = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    weight_bytes = sum(v.numel() * v.element_size() for v in sd.values())
    cfg = config_from_state_dict(sd)
    log(f"loaded {a.model}: {weight_bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s; config {cfg}")

    g = torch.Generator(device="cpu").manual_seed(a.seed)
    lat = torch.randn(16, 1, a.height // 8, a.width // 8, generator=g).to(device, torch.bfloat16)
    cap = torch.randn(a.cap_tokens, cfg["cap_feat_dim"], generator=g).to(device, torch.bfloat16)
    t = torch.tensor([a.t], dtype=torch.float32, device=device)

    # tokens of the unified sequence (image and caption, each padded to 32) for the GEMM shape
    M = -(-(a.height // 16) * (a.width // 16) // 32) * 32 + -(-a.cap_tokens // 32) * 32
    N, K = int(cfg["dim"] / 3 * 8), cfg["dim"]
    gemm = None
    if cuda and not a.no_gemm:
        gemm = gemm_tflops(torch, device, M, N, K)
        log(f"torch bf16 GEMM M={M} N={N} K={K}: {gemm:.1f} TFLOP/s")

    rows = [run_config(c, a, torch, cls, cfg, sd, (lat, t, cap), device, device_name, weight_bytes)
            for c in configs]
    out = {"schema": SCHEMA, "system": "diffusers", "kind": "dit", "backend": "torch", "device": device_name,
           "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z"),
           "model": a.model, "dtype": "bf16", "model_bytes": weight_bytes, "link_gbps": None,
           "gemm_tflops": gemm, "gemm_shape": f"M={M} N={N} K={K} bf16 x bf16",
           "width": a.width, "height": a.height, "cap_tokens": a.cap_tokens, "warmup": a.warmup,
           "torch": torch.__version__, "cuda": torch.version.cuda, "diffusers": dver,
           "rows": rows}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {a.out} ({sum(r['ok'] for r in rows)}/{len(rows)} configurations ok)")
    return 0 if any(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
