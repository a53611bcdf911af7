#!/usr/bin/env python3
"""Reference fixture for the Qwen3 text encoder (tests/test_qwen3.c, qwen3_matches_transformers_fixture).

Runs transformers' Qwen3Model in float32 on the CPU over a tiny synthetic model written by
`sluice synth`, takes HF `hidden_states[-2]` (the raw residual stream after the second-to-last
decoder layer, no final norm — what Z-Image uses) for fixed token ids, and writes

    <out>/qwen3_tiny_ref.safetensors   ids  i32 [n]     token ids (all < 4096, the tiny vocabulary)
                                       hidden f32 [n, D]
                                       metadata: seed, embed_sum (sum of the first 8 embedding rows,
                                       so the C test can tell that it regenerated the same model),
                                       versions

The config is read from the file's tensor shapes; the load is strict (every tensor of the file
must be a parameter of Qwen3Model after removing the `model.` prefix, and vice versa).

    sluice synth --arch qwen3 --size tiny --dtype bf16 --seed 1234 -o /tmp/qwen3_tiny.safetensors
    python3 tools/ref/qwen3_encoder.py --model /tmp/qwen3_tiny.safetensors

Needs torch, transformers (with Qwen3, >= 4.51) and safetensors. --transformers-src / --diffusers-src
put a source checkout first on sys.path (diffusers is not used here; the flag is accepted so that
both reference scripts take the same arguments).
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_src(path):
    if not path:
        return
    src = os.path.join(path, "src")
    sys.path.insert(0, src if os.path.isdir(src) else path)


def token_ids(n):
    # fixed, spread over the tiny vocabulary [0, 4096), first and last rows included
    ids = [(i * 7919 + 13) % 4096 for i in range(n)]
    ids[1], ids[2] = 0, 4095
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="tiny Qwen3 safetensors written by `sluice synth`")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "qwen3"),
                    help="output folder (default: tests/fixtures/qwen3 of this checkout)")
    ap.add_argument("--seed", type=int, default=1234, help="the --seed the model was written with (recorded)")
    ap.add_argument("--tokens", type=int, default=24, help="number of token ids")
    ap.add_argument("--transformers-src", default=None, help="transformers source checkout to import")
    ap.add_argument("--diffusers-src", default=None, help="accepted for symmetry with flux_vae.py; unused")
    args = ap.parse_args()

    add_src(args.transformers_src)
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import Qwen3Config, Qwen3Model

    if not os.path.isfile(args.model):
        sys.exit(f"error: model file {args.model} not found (write it with `sluice synth --arch qwen3 ...`)")
    sd = load_file(args.model)
    if "model.embed_tokens.weight" not in sd:
        sys.exit("error: no model.embed_tokens.weight: not a Qwen3 file with HF names")
    sd = {k[len("model."):] if k.startswith("model.") else k: v.float() for k, v in sd.items()}

    V, D = sd["embed_tokens.weight"].shape
    Dh = sd["layers.0.self_attn.q_norm.weight"].shape[0]
    Hq = sd["layers.0.self_attn.q_proj.weight"].shape[0] // Dh
    Hkv = sd["layers.0.self_attn.k_proj.weight"].shape[0] // Dh
    I = sd["layers.0.mlp.gate_proj.weight"].shape[0]
    L = 0
    while f"layers.{L}.input_layernorm.weight" in sd:
        L += 1
    theta = 1e6
    cfg = Qwen3Config(vocab_size=V, hidden_size=D, intermediate_size=I, num_hidden_layers=L,
                      num_attention_heads=Hq, num_key_value_heads=Hkv, head_dim=Dh,
                      hidden_act="silu", rms_norm_eps=1e-6, rope_theta=theta,
                      max_position_embeddings=40960, tie_word_embeddings=True,
                      attention_bias=False, use_sliding_window=False)
    rp = getattr(cfg, "rope_parameters", None)  # newer transformers keep theta here
    if isinstance(rp, dict):
        rp["rope_theta"] = theta
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen3Model(cfg).float().eval()
    model.load_state_dict(sd, strict=True)

    inv = model.rotary_emb.inv_freq.float()
    want = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.float32) / Dh))
    if not torch.allclose(inv, want, rtol=1e-6):
        sys.exit("error: this transformers build did not take rope_theta = 1e6")

    ids = token_ids(args.tokens)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], dtype=torch.long), output_hidden_states=True)
    hs = out.hidden_states
    if len(hs) != L + 1:
        sys.exit(f"error: expected {L + 1} hidden states, got {len(hs)}")
    hidden = hs[-2][0].float().contiguous()

    emb_sum = float(sd["embed_tokens.weight"][:8].double().sum())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "qwen3_tiny_ref.safetensors")
    meta = {"seed": str(args.seed), "embed_sum": "%.9f" % emb_sum, "layers": str(L),
            "output": "hidden_states[-2]", "torch": torch.__version__,
            "transformers": transformers.__version__, "model": os.path.basename(args.model)}
    save_file({"ids": torch.tensor(ids, dtype=torch.int32), "hidden": hidden}, path, metadata=meta)
    print(f"wrote {path}: {len(ids)} tokens, hidden {tuple(hidden.shape)}, "
          f"rms {hidden.pow(2).mean().sqrt().item():.4f}, L={L}, D={D}, heads {Hq}/{Hkv}x{Dh}")


if __name__ == "__main__":
    main()
