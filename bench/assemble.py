#!/usr/bin/env python3
"""Merge the JSON files of one benchmark run into the markdown of docs/BENCHMARKS.md.

Inputs are files in the schema of `sluice bench --json` (bench/README.md): sluice's DiT runs (one
per weight dtype), sluice's --pipeline run, and the peers' files (bench/peers/diffusers_zimage.py,
bench/peers/sdcpp.sh). Any of them may be missing; what is missing shows as "not measured".

  python3 bench/assemble.py out/*.json                       # markdown on stdout
  python3 bench/assemble.py out/*.json --update docs/BENCHMARKS.md
      # replaces the text between <!-- bench:results:begin --> and <!-- bench:results:end -->

Ratios (all from numbers of the same run):
  x bound        ms/pass over max(compute-only pass, bytes moved per pass / pinned link rate);
                 sluice's compute-only pass is its resident pass of the same file; a peer's is its
                 own fastest resident pass; the link rate is the one sluice measured
  x sluice res.  ms/pass over sluice's resident bf16 pass
  x diffusers c. ms/pass over diffusers' resident pass with compile_repeated_blocks
"""

import argparse
import json
import math
import os
import subprocess
import sys

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def load(paths):
    runs = []
    for p in paths:
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            print(f"assemble: skipping {p}: {e}", file=sys.stderr)
            continue
        if not str(d.get("schema", "")).startswith("sluice-bench/"):
            print(f"assemble: skipping {p}: not a sluice-bench file", file=sys.stderr)
            continue
        d["_path"] = p
        runs.append(d)
    return runs


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def fmt(v, f="{:.1f}", none="—"):
    v = num(v)
    return none if v is None else f.format(v)


def gb(v, none="—"):
    v = num(v)
    return none if v is None else f"{v / 1e9:.2f}"


def dtype_label(d):
    d = (d or "").lower()
    return {"f8_e4m3": "fp8", "fp8": "fp8"}.get(d, d)


def driver_version():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def collect(runs):
    """Flatten to rows, each carrying its run's header fields."""
    rows = []
    for r in runs:
        for w in r.get("rows", []):
            w = dict(w)
            w.setdefault("system", r.get("system"))
            w.setdefault("kind", r.get("kind"))
            w.setdefault("dtype", r.get("dtype"))
            w["_run"] = r
            rows.append(w)
    return rows


def find(rows, **kw):
    for w in rows:
        if all((dtype_label(w.get(k)) == dtype_label(v)) if k == "dtype" else w.get(k) == v
               for k, v in kw.items()):
            return w
    return None


def ok_ms(w):
    return num(w.get("pass_ms")) if w and w.get("ok") else None


def fill_ratios(rows, link):
    """Bounds and ratios for every DiT row (sluice's own are kept when present)."""
    dit = [w for w in rows if w.get("kind") == "dit"]
    sl_res = ok_ms(find(dit, system="sluice", mode="none", dtype="bf16"))
    df_comp = ok_ms(find(dit, system="diffusers", mode="resident_compiled"))
    best_res = {}
    for w in dit:
        if w.get("ok") and not w.get("bytes_per_pass"):
            key = (w["system"], dtype_label(w.get("dtype")))
            ms = num(w.get("pass_ms"))
            if ms is not None and (key not in best_res or (w["system"] == "sluice" and w.get("mode") == "none")
                                   or (w["system"] != "sluice" and ms < best_res[key])):
                best_res[key] = ms
    for w in dit:
        ms = ok_ms(w)
        if ms is None:
            continue
        if num(w.get("bound_ms")) is None:
            comp = best_res.get((w["system"], dtype_label(w.get("dtype"))))
            bytes_ = num(w.get("bytes_per_pass")) or 0
            link_ms = bytes_ / (link * 1e6) if link else None
            cands = [c for c in (comp, link_ms) if c is not None]
            w["bound_ms"] = max(cands) if cands else None
            w["ratio_bound"] = ms / w["bound_ms"] if w["bound_ms"] else None
        w["x_sluice_res"] = ms / sl_res if sl_res else None
        w["x_diffusers_comp"] = ms / df_comp if df_comp else None


def units(w):
    r, s = num(w.get("units_resident")), num(w.get("units_streamed"))
    return "—" if r is None or s is None else f"{int(r)}/{int(s)}"


def dit_table(rows):
    order = {"sluice": 0, "diffusers": 1, "sd.cpp": 2}
    dit = [w for w in rows if w.get("kind") == "dit"]
    dit.sort(key=lambda w: (order.get(w["system"], 9), dtype_label(w.get("dtype")) != "bf16",
                            dtype_label(w.get("dtype"))))
    out = ["| system | weights | setting | resident/streamed units | GB moved / pass | ms / pass | "
           "stall ms | copy GB/s | peak VRAM GB | × bound | × sluice resident | × diffusers compiled |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in dit:
        if not w.get("ok"):
            out.append(f"| {w['system']} | {dtype_label(w.get('dtype'))} | {w.get('setting')} | "
                       f"failed: {str(w.get('error', ''))[:120].replace('|', '/')} ||||||||| ")
            continue
        out.append("| " + " | ".join([
            w["system"], dtype_label(w.get("dtype")), str(w.get("setting")), units(w),
            gb(w.get("bytes_per_pass")), fmt(w.get("pass_ms")), fmt(w.get("stall_ms")),
            fmt(w.get("achieved_gbps")), gb(w.get("peak_vram_bytes")),
            fmt(w.get("ratio_bound"), "{:.3f}"), fmt(w.get("x_sluice_res"), "{:.3f}"),
            fmt(w.get("x_diffusers_comp"), "{:.3f}")]) + " |")
    return out


def pipe_table(rows):
    order = {"sluice": 0, "diffusers": 1, "sd.cpp": 2}
    pipe = sorted((w for w in rows if w.get("kind") == "pipeline"), key=lambda w: order.get(w["system"], 9))
    if not pipe:
        return ["Whole generations: not yet measured."]
    out = ["| system | setting | mode used | conditioning s | sampling s | s / step | decode s | "
           "transfers s | total s | peak VRAM GB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for w in pipe:
        if not w.get("ok"):
            out.append(f"| {w['system']} | {w.get('setting')} | failed: "
                       f"{str(w.get('error', ''))[:120].replace('|', '/')} ||||||| ")
            continue
        out.append("| " + " | ".join([
            w["system"], str(w.get("setting")), str(w.get("mode_used") or "—"),
            fmt(w.get("cond_s"), "{:.3f}"), fmt(w.get("sampling_s"), "{:.3f}"),
            fmt(w.get("per_step_s"), "{:.3f}"), fmt(w.get("decode_s"), "{:.3f}"),
            fmt(w.get("transfer_s"), "{:.3f}"), fmt(w.get("total_s"), "{:.3f}"),
            gb(w.get("peak_vram_bytes"))]) + " |")
    return out


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def targets(rows, link):
    dit = [w for w in rows if w.get("kind") == "dit"]
    out = []
    nm = "not yet measured"

    res = find(dit, system="sluice", mode="none", dtype="bf16")
    comp = find(dit, system="diffusers", mode="resident_compiled")
    if ok_ms(res) and ok_ms(comp):
        x = ok_ms(res) / ok_ms(comp)
        out.append(f"- Resident ≤ 1.0× compiled diffusers: {x:.3f}× ({ok_ms(res):.1f} vs "
                   f"{ok_ms(comp):.1f} ms) — {verdict(x <= 1.0)}")
    else:
        out.append(f"- Resident ≤ 1.0× compiled diffusers: {nm}")

    mn = find(dit, system="sluice", mode="layer_streaming", budget="min", dtype="bf16")
    blk = find(dit, system="diffusers", mode="group_offload_block")
    if ok_ms(mn) and num(mn.get("bound_ms")):
        floor = (mn.get("bytes_per_pass") or 0) / (link * 1e6) if link else None
        x = ok_ms(mn) / mn["bound_ms"]
        extra = f"; link floor {floor:.1f} ms" if floor else ""
        out.append(f"- Minimal-VRAM streaming ≤ 1.05× its bound (the link floor of the bytes it "
                   f"moves, or the compute-only pass where that is larger): {x:.3f}× "
                   f"({ok_ms(mn):.1f} ms, bound {mn['bound_ms']:.1f} ms{extra}) — {verdict(x <= 1.05)}")
    else:
        out.append(f"- Minimal-VRAM streaming ≤ 1.05× the link floor: {nm}")
    if ok_ms(mn) and ok_ms(blk):
        out.append(f"- Minimal-VRAM streaming faster than diffusers block-level stream: "
                   f"{ok_ms(mn):.1f} vs {ok_ms(blk):.1f} ms — {verdict(ok_ms(mn) < ok_ms(blk))}")
    else:
        out.append(f"- Minimal-VRAM streaming faster than diffusers block-level stream: {nm}")

    b8 = find(dit, system="sluice", mode="layer_streaming", budget="8", dtype="bf16")
    if ok_ms(b8) and ok_ms(res):
        x = ok_ms(b8) / ok_ms(res)
        out.append(f"- 8 GB weight budget ≤ 1.05× sluice resident: {x:.3f}× ({ok_ms(b8):.1f} vs "
                   f"{ok_ms(res):.1f} ms) — {verdict(x <= 1.05)}")
    else:
        out.append(f"- 8 GB weight budget ≤ 1.05× sluice resident: {nm}")

    for dt in ("q8_0", "fp8"):
        q = find(dit, system="sluice", mode="layer_streaming", budget="min", dtype=dt)
        if ok_ms(q) and ok_ms(mn):
            x = ok_ms(q) / ok_ms(mn)
            out.append(f"- {dt} full streaming ≤ 0.55× bf16 full streaming: {x:.3f}× "
                       f"({ok_ms(q):.1f} vs {ok_ms(mn):.1f} ms) — {verdict(x <= 0.55)}")
        else:
            out.append(f"- {dt} full streaming ≤ 0.55× bf16 full streaming: {nm}")

    checked, bad, extra = 0, [], 0.0
    for w in rows:
        if w.get("system") != "sluice" or not w.get("ok"):
            continue
        budget, peak = num(w.get("budget_bytes")), num(w.get("peak_vram_bytes"))
        if budget is None or peak is None:
            continue
        checked += 1
        if w.get("kind") == "dit":
            # a weight budget: the plan's weights must fit it exactly; activations come on top,
            # and what the measured peak holds beyond weights + arena (the backend's scratch) is
            # reported, not judged
            plan, arena = num(w.get("plan_bytes")) or 0, num(w.get("arena_bytes")) or 0
            extra = max(extra, peak - plan - arena)
            if plan > budget:
                bad.append(f"{dtype_label(w.get('dtype'))} {w.get('setting')}: weights "
                           f"{plan / 1e9:.3f} GB > budget {budget / 1e9:.3f} GB")
        elif peak > budget:  # --max-vram caps everything
            bad.append(f"{w.get('setting')}: peak {peak / 1e9:.3f} GB > {budget / 1e9:.3f} GB")
    if checked:
        out.append(f"- Peak VRAM never above budget ({checked} budgeted sluice rows; DiT rows: the "
                   f"plan's weights ≤ the weight budget, activations on top, at most "
                   f"{extra / 1e6:.0f} MB measured beyond weights + arena; whole generations: "
                   f"measured peak ≤ --max-vram) — {verdict(not bad)}" + "".join(f"\n  - {b}" for b in bad))
    else:
        out.append(f"- Peak VRAM never above budget: {nm}")
    return out


def header(runs, rows, driver):
    sl_dit = [r for r in runs if r.get("system") == "sluice" and r.get("kind") == "dit"]
    sl = next((r for r in sl_dit if dtype_label(r.get("dtype")) == "bf16"), sl_dit[0] if sl_dit else None)
    any_run = sl or (runs[0] if runs else {})
    df = next((r for r in runs if r.get("system") == "diffusers"), None)
    link = num(sl.get("link_gbps")) if sl else None
    lines = [f"Measured {any_run.get('date', '—')} on **{any_run.get('device', '—')}**, driver "
             f"{driver or '—'}."]
    if sl:
        lines.append(f"Pinned host→device link (sluice, measured at start-up): {fmt(link)} GB/s. "
                     f"GEMM rate (sluice, {sl.get('gemm_shape', '')}): {fmt(sl.get('gemm_tflops'))} "
                     f"TFLOP/s" + (f"; PyTorch {df.get('torch')} ({df.get('gemm_shape', '')}): "
                                   f"{fmt(df.get('gemm_tflops'))} TFLOP/s" if df else "") + ".")
        lines.append(f"Shape: {sl.get('width')}×{sl.get('height')}, {sl.get('cap_tokens')} caption "
                     f"tokens, one DiT pass; warm-up {sl.get('warmup')}, median of "
                     f"{next((w.get('passes') for w in sl.get('rows', []) if w.get('passes')), '—')} passes; "
                     f"prefetch {sl.get('prefetch')}.")
    if df:
        lines.append(f"diffusers {df.get('diffusers', '?')} on PyTorch {df.get('torch', '?')} (CUDA "
                     f"{df.get('cuda', '?')}).")
    files = sorted({(dtype_label(r.get("dtype")), os.path.basename(str(r.get("model", ""))),
                     num(r.get("model_bytes"))) for r in runs if r.get("kind") == "dit"})
    if files:
        lines.append("Weights: " + "; ".join(f"{d} `{m}` ({gb(b)} GB)" for d, m, b in files) + ".")
    return lines, link


def assemble(paths, driver=None):
    runs = load(paths)
    rows = collect(runs)
    hdr, link = header(runs, rows, driver or driver_version())
    fill_ratios(rows, link)
    out = [BEGIN, ""] + hdr + ["", "### One DiT pass", ""] + dit_table(rows)
    out += ["", "### Whole generation", ""] + pipe_table(rows)
    out += ["", "### Targets", ""] + targets(rows, link) + ["", END]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="JSON files of one run")
    p.add_argument("--driver", default=None, help="driver version (default: asked of nvidia-smi)")
    p.add_argument("--out", default=None, help="write the markdown here (default: stdout)")
    p.add_argument("--update", default=None, metavar="DOC",
                   help=f"replace the text between {BEGIN} and {END} in DOC")
    a = p.parse_args()
    md = assemble(a.files, a.driver)
    if a.out:
        with open(a.out, "w") as f:
            f.write(md)
    if a.update:
        with open(a.update) as f:
            doc = f.read()
        i, j = doc.find(BEGIN), doc.find(END)
        if i < 0 or j < i:
            sys.exit(f"assemble: {a.update} has no {BEGIN} … {END} block")
        with open(a.update, "w") as f:
            f.write(doc[:i] + md.rstrip("\n") + doc[j + len(END):])
        print(f"assemble: updated {a.update}", file=sys.stderr)
    if not a.out and not a.update:
        sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
