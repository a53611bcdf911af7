#!/usr/bin/env python3
"""bench/ops_vs_torch.py — the kernel lab's ops at the same shapes in PyTorch, for a ratio column.

    python3 bench/ops_vs_torch.py [--lab results.tsv] [--out torch.tsv]

Times each op with CUDA events (3 warm-ups, median of many; memory-bound ops rotate over three
input sets like the lab) on random bf16 data, then, when the lab's TSV (build-gpu/kernel-lab
results.tsv) is given, prints one table: op, shape, sluice ms, torch ms, torch/sluice (above 1:
sluice is faster). Ops are matched by the lab's op names. PyTorch's SDPA is timed with its default
backend choice and with each backend it has (cuDNN, flash, efficient), so the table says what the
ratio is against. Nothing here is compiled (no torch.compile): each PyTorch op is its eager kernels.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F

DEV = "cuda"
BF = torch.bfloat16


def median_ms(fn, reps=30, warm=3, sets=1):
    for i in range(warm):
        fn(i % sets)
    torch.cuda.synchronize()
    ts = []
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for r in range(reps):
        s.record()
        fn(r % sets)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def rnd(*shape, scale=1.0, dtype=BF):
    return (torch.randn(*shape, device=DEV, dtype=torch.float32) * scale).to(dtype)


def run(results):
    T, D, Fh, H, Dh = 4352, 3840, 10240, 30, 128

    def add(op, shape, ms, note=""):
        results.append((op, shape, ms, note))
        print(f"{op:28s} {shape:30s} {ms:9.4f} ms {note}", flush=True)

    # peaks
    n = 8192
    a, b = rnd(n, n), rnd(n, n, scale=0.02)
    ms = median_ms(lambda i: a @ b.t(), reps=20)
    add("peak gemm bf16", "8192^3 (cuBLASLt)", ms, f"{2 * n**3 / ms / 1e9:.0f} TFLOP/s")
    del a, b
    x = torch.empty(1 << 28, device=DEV, dtype=torch.float32).fill_(1.5)
    y = torch.empty_like(x)
    ms = median_ms(lambda i: y.copy_(x), reps=20)
    add("peak copy", "1 GiB d2d (read+write)", ms, f"{2 * (1 << 30) / ms / 1e6:.0f} GB/s")
    del x, y

    # attention (SDPA takes [B, H, S, Dh]; transposed views of [B, S, H, Dh] like the lab's layout)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for S, Hh, dh, causal in ((4352, 30, 128, False), (4352, 30, 128, True), (4096, 24, 64, False)):
        q, k, v = (rnd(1, S, Hh, dh).transpose(1, 2) for _ in range(3))
        name = "attention causal" if causal else "attention"
        shape = f"S{S} H{Hh} Dh{dh}"
        flop = 4.0 * S * S * Hh * dh * (0.5 if causal else 1.0)
        ms = median_ms(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps=20)
        add(f"{name} [torch]", shape, ms, f"default backend, {flop / ms / 1e9:.0f} TFLOP/s")
        for be_name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                            ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            try:
                with sdpa_kernel(be):
                    ms = median_ms(lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps=20)
                add(f"{name} [torch {be_name}]", shape, ms, f"{flop / ms / 1e9:.0f} TFLOP/s")
            except Exception as ex:  # a backend that does not take these inputs
                print(f"  sdpa {be_name}: {str(ex).splitlines()[0][:100]}")
        del q, k, v

    # matmul (bf16 weights; torch has no GGUF path)
    for (M, K, N, tag) in ((4352, 3840, 10240, "ffn w1"), (4352, 10240, 3840, "ffn w2"), (4352, 3840, 3840, "to_q")):
        xx, ww = rnd(M, K), rnd(N, K, scale=0.02)
        ms = median_ms(lambda i: F.linear(xx, ww), reps=20)
        add(f"matmul {tag} w=bf16", f"{M}x{K}x{N}", ms)
        if tag == "ffn w1" and hasattr(torch, "float8_e4m3fn"):
            # dequant-then-GEMM in eager PyTorch, the same two steps as sluice's fp8 path
            w8 = ww.float().to(torch.float8_e4m3fn)
            ms = median_ms(lambda i: F.linear(xx, w8.to(BF)), reps=20)
            add(f"matmul {tag} w=f8_e4m3", f"{M}x{K}x{N}", ms, "eager .to(bf16) + linear")
        del xx, ww

    # memory-bound ops, three rotating sets
    def sets(fn, k=3):
        return [fn(i) for i in range(k)]

    xs, ys = sets(lambda i: rnd(T, D, scale=2)), sets(lambda i: rnd(T, D))
    w, mod, gate = rnd(D), rnd(D), rnd(D, scale=0.3)
    outs = sets(lambda i: torch.empty(T, D, device=DEV, dtype=BF))
    ms = median_ms(lambda i: F.rms_norm(xs[i], (D,), w, 1e-5) * mod, sets=3, reps=60)
    add("rms_norm+mod", "4352x3840 bf16", ms, "F.rms_norm then *")
    ms = median_ms(lambda i: xs[i].add_(gate * F.rms_norm(ys[i], (D,), w, 1e-5)), sets=3, reps=60)
    add("gated_add (rms, gate)", "4352x3840 bf16", ms)
    ms = median_ms(lambda i: F.layer_norm(xs[i], (D,), None, None, 1e-6) * mod, sets=3, reps=60)
    add("layer_norm*scale", "4352x3840 bf16", ms)
    ms = median_ms(lambda i: torch.add(xs[i], ys[i], out=outs[i]), sets=3, reps=60)
    add("add", "4352x3840 bf16", ms)
    o32 = sets(lambda i: torch.empty(T, D, device=DEV, dtype=torch.float32))
    ms = median_ms(lambda i: o32[i].copy_(ys[i]), sets=3, reps=60)
    add("copy bf16->f32", "4352x3840", ms)
    del xs, ys, outs, o32
    gs, us = sets(lambda i: rnd(T, Fh, scale=2)), sets(lambda i: rnd(T, Fh))
    ms = median_ms(lambda i: F.silu(gs[i]) * us[i], sets=3, reps=60)
    add("glu silu", "4352x10240 bf16", ms)
    del gs, us
    qs = sets(lambda i: rnd(T, H, Dh))
    nw = rnd(Dh)
    ang = torch.rand(T, Dh // 2, device=DEV) * 6.28
    cis = torch.polar(torch.ones_like(ang), ang)[:, None, :]

    def rope(i):
        qn = F.rms_norm(qs[i], (Dh,), nw, 1e-5)
        qc = torch.view_as_complex(qn.float().reshape(T, H, Dh // 2, 2))
        return torch.view_as_real(qc * cis).flatten(2).to(BF)

    ms = median_ms(rope, sets=3, reps=60)
    add("rope+qk_norm", "4352x30x128 bf16", ms, "diffusers-style eager")
    del qs
    ss = sets(lambda i: rnd(4096, 4096, scale=3))
    ms = median_ms(lambda i: torch.softmax(ss[i], -1), sets=3, reps=60)
    add("softmax", "4096x4096 bf16", ms)
    del ss
    for (C, Hh, W) in ((512, 128, 128), (128, 512, 512)):
        gx = sets(lambda i: rnd(1, C, Hh, W, scale=2))
        gw, gb = rnd(C), rnd(C)
        ms = median_ms(lambda i: F.silu(F.group_norm(gx[i], 32, gw, gb, 1e-6)), sets=3, reps=30)
        add("group_norm+silu", f"{C}x{Hh}x{W} bf16", ms)
        del gx

    # conv2d (cuDNN)
    for (Cin, Hh, W, Cout, k, reps) in ((512, 128, 128, 512, 3, 20), (512, 256, 256, 512, 3, 10),
                                        (256, 512, 512, 256, 3, 5), (128, 1024, 1024, 128, 3, 5),
                                        (512, 256, 256, 256, 1, 20)):
        cx, cw, cb = rnd(1, Cin, Hh, W), rnd(Cout, Cin, k, k, scale=0.05), rnd(Cout)
        ms = median_ms(lambda i: F.conv2d(cx, cw, cb, padding=k // 2), reps=reps)
        add(f"conv2d {k}x{k}", f"{Cin}->{Cout} @{Hh}x{W} bf16", ms, "cuDNN")
        del cx, cw, cb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", help="the kernel lab's TSV")
    ap.add_argument("--out", help="write torch's times as TSV")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("ops_vs_torch: no CUDA device")
        return 2
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()} (cuDNN {torch.backends.cudnn.version()})")
    res = []
    run(res)
    if a.out:
        with open(a.out, "w") as f:
            for op, shape, ms, note in res:
                f.write(f"{op}\t{shape}\t{ms:.5f}\t{note}\n")
    if not a.lab:
        return 0
    lab = {}
    with open(a.lab) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 7:
                lab.setdefault(p[0], []).append((p[1], float(p[2]), p[3], p[4], p[5], p[6]))
    tor = {}
    for op, shape, ms, note in res:
        tor[(op, shape)] = ms
    print()
    print(f"{'op':34s} {'shape':26s} {'sluice ms':>10s} {'torch ms':>10s} {'torch/sluice':>12s}  {'rate':>16s} check")
    for op, rows in lab.items():
        for shape, ms, rate, unit, pct, chk in rows:
            base = op.split(" [")[0]
            # attention variants compare with torch's default SDPA (and the best backend)
            tkeys = [(base, shape)]
            if base.startswith("attention"):
                tkeys = [(f"{base} [torch]", shape)]
            tms = next((tor[k] for k in tkeys if k in tor), None)
            best = ""
            if base.startswith("attention"):
                cands = [v for (o, s), v in tor.items() if o.startswith(base + " [torch") and s == shape]
                if cands:
                    best = f" (best torch {min(cands):.3f} ms: {min(cands) / ms:.2f})"
            ratio = f"{tms / ms:12.2f}" if tms else f"{'-':>12s}"
            tstr = f"{tms:10.4f}" if tms else f"{'-':>10s}"
            print(f"{op:34s} {shape:26s} {ms:10.4f} {tstr} {ratio}  {float(rate):9.1f} {unit:7s} {chk}{best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
