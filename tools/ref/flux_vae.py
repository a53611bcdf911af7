#!/usr/bin/env python3
"""Reference fixture for the FLUX.1 VAE (tests/test_vae.c, vae_matches_diffusers_fixture).

Runs diffusers' AutoencoderKL in float32 on the CPU over a tiny synthetic VAE written by
`sluice synth` in the diffusers layout, and writes

    <out>/flux_vae_tiny_ref.safetensors
        latent_in  f32 [16, 6, 4]   a fixed latent in the DiT's normalised space
        image_out  f32 [3, 48, 32]  vae.decode(latent_in / 0.3611 + 0.1159)   (what the pipeline does)
        image_in   f32 [3, 48, 32]  a fixed image in [-1, 1]
        latent_out f32 [16, 6, 4]   (vae.encode(image_in).latent_dist.mean - 0.1159) * 0.3611
        metadata: seed, conv_in_sum (sum of decoder.conv_in.weight, so the C test can tell that it
        regenerated the same model), versions

Sizes are not square on purpose (a transposed axis shows). The config (block_out_channels,
layers_per_block, latent channels) is read from the file's shapes; the load is strict.

    sluice synth --arch flux-vae --size tiny --layout official --dtype bf16 --seed 4321 \\
        -o /tmp/flux_vae_tiny.safetensors
    python3 tools/ref/flux_vae.py --diffusers-src /path/to/diffusers --model /tmp/flux_vae_tiny.safetensors

Needs torch and safetensors; diffusers from --diffusers-src (its src/ folder is put first on
sys.path) or installed.
"""
import argparse
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALE, SHIFT = 0.3611, 0.1159


def add_src(path):
    if not path:
        return
    src = os.path.join(path, "src")
    p = src if os.path.isdir(src) else path
    if not os.path.isdir(os.path.join(p, "diffusers")):
        sys.exit(f"error: {path} does not contain diffusers (looked for {p}/diffusers)")
    sys.path.insert(0, p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="tiny VAE safetensors (diffusers names) from `sluice synth`")
    ap.add_argument("--diffusers-src", default=None, help="diffusers source checkout (folder with src/diffusers)")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "flux_vae"),
                    help="output folder (default: tests/fixtures/flux_vae of this checkout)")
    ap.add_argument("--seed", type=int, default=4321, help="the --seed the model was written with (recorded)")
    ap.add_argument("--latent-h", type=int, default=6)
    ap.add_argument("--latent-w", type=int, default=4)
    args = ap.parse_args()

    add_src(args.diffusers_src)
    import torch
    import diffusers
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file, save_file

    if not os.path.isfile(args.model):
        sys.exit(f"error: model file {args.model} not found (write it with `sluice synth --arch flux-vae ...`)")
    sd = {k: v.float() for k, v in load_file(args.model).items()}
    if "decoder.mid_block.resnets.0.conv1.weight" not in sd:
        sys.exit("error: not a diffusers-layout VAE (write it with --layout official)")

    n = 0
    while f"encoder.down_blocks.{n}.resnets.0.conv1.weight" in sd:
        n += 1
    ch = [sd[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in range(n)]
    lpb = 0
    while f"encoder.down_blocks.0.resnets.{lpb}.conv1.weight" in sd:
        lpb += 1
    zc = sd["decoder.conv_in.weight"].shape[1]
    vae = AutoencoderKL(in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * n,
                        up_block_types=("UpDecoderBlock2D",) * n,
                        block_out_channels=tuple(ch), layers_per_block=lpb, act_fn="silu",
                        latent_channels=zc, norm_num_groups=32, sample_size=1024,
                        scaling_factor=SCALE, shift_factor=SHIFT, use_quant_conv=False,
                        use_post_quant_conv=False, mid_block_add_attention=True,
                        force_upcast=True).float().eval()
    vae.load_state_dict(sd, strict=True)

    h, w = args.latent_h, args.latent_w
    f = 2 ** (n - 1)
    g = torch.Generator().manual_seed(0)
    latent_in = torch.randn(1, zc, h, w, generator=g, dtype=torch.float32)
    yy = torch.arange(h * f, dtype=torch.float32).view(1, 1, -1, 1)
    xx = torch.arange(w * f, dtype=torch.float32).view(1, 1, 1, -1)
    cc = torch.arange(3, dtype=torch.float32).view(1, 3, 1, 1)
    image_in = 0.7 * torch.sin(0.37 * yy * (cc + 1) + 0.21 * xx) * torch.cos(0.05 * xx * yy + cc)
    image_in = (image_in + 0.2 * torch.rand(image_in.shape, generator=g) - 0.1).clamp(-1, 1)

    with torch.no_grad():
        image_out = vae.decode(latent_in / SCALE + SHIFT).sample
        mean = vae.encode(image_in).latent_dist.mean
        latent_out = (mean - SHIFT) * SCALE

    conv_in_sum = float(sd["decoder.conv_in.weight"].double().sum())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "flux_vae_tiny_ref.safetensors")
    meta = {"seed": str(args.seed), "conv_in_sum": "%.9f" % conv_in_sum,
            "block_out_channels": ",".join(map(str, ch)), "layers_per_block": str(lpb),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "model": os.path.basename(args.model)}
    t = {"latent_in": latent_in[0], "image_out": image_out[0], "image_in": image_in[0],
         "latent_out": latent_out[0]}
    save_file({k: v.float().contiguous() for k, v in t.items()}, path, metadata=meta)
    rms = lambda x: math.sqrt(float(x.pow(2).mean()))
    print(f"wrote {path}: ch {ch}, lpb {lpb}, z {zc}; image_out {tuple(image_out.shape[1:])} rms "
          f"{rms(image_out):.4f}; latent_out {tuple(latent_out.shape[1:])} rms {rms(latent_out):.4f}")


if __name__ == "__main__":
    main()
