#!/usr/bin/env bash
# bench/peers/sdcpp.sh — stable-diffusion.cpp on the same files, in the schema of
# `sluice bench --json` (bench/README.md), for the peer rows of docs/BENCHMARKS.md.
#
# It runs an sd.cpp CLI binary that the person running the benchmark provides (--sd-bin: built
# from stable-diffusion.cpp master with its CUDA backend, following that project's own README).
# This repository holds none of sd.cpp: no source, no binary, no build recipe; the script only
# runs the binary it is pointed at.
#
# Configurations (one whole 8-step generation each, same prompt, size and seed):
#   resident                    --diffusion-fa
#   streamed, per --max-vram N  --diffusion-fa --offload-to-cpu --max-vram N --stream-layers
# sd.cpp's --max-vram counts GiB. From its log it takes "get_learned_condition completed, taking
# X s", "sampling completed, taking X s" and "decode_first_stage completed, taking X s"; one DiT
# pass is sampling / steps (the sampler's own work per step is included, as in a real job). Peak
# VRAM is the largest `nvidia-smi memory.used` seen every 100 ms during the run, less the level
# before it started.
#
# Weights: the same synthetic files as sluice's run. sd.cpp maps the diffusers/official Z-Image
# names to its own (ComfyUI) names; if it still refuses the official file and --sluice is given,
# the script writes the ComfyUI layout (`sluice synth --arch zimage --size full --layout comfy`)
# and runs that instead, and says so in the rows ("layout").
#
#   bench/peers/sdcpp.sh --sd-bin /opt/sd/sd-cli --model zimage-full-official-bf16.safetensors \
#       --llm qwen3-full-official-bf16.safetensors --vae flux-vae-full-official-bf16.safetensors \
#       --out sdcpp.json [--sluice build/sluice] [--max-vram "8 4"] [--workdir DIR] [--steps 8]
#       [-W 1024 -H 1024] [--size full|tiny (of the ComfyUI-layout file --sluice writes)]
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

SD= MODEL= LLM= VAE= OUT= SLUICE= WORK=/tmp/sluice-bench/sdcpp MAXV="8 4" STEPS=8 W=1024 H=1024 SIZE=full
PROMPT="a photograph of a red fox standing in fresh snow at golden hour, shallow depth of field"
SEED=42
while [ $# -gt 0 ]; do
    case "$1" in
        --sd-bin) SD=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --llm) LLM=$2; shift 2 ;;
        --vae) VAE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --sluice) SLUICE=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --max-vram) MAXV=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        -W) W=$2; shift 2 ;;
        -H) H=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "sdcpp.sh: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$SD" ] && [ -n "$MODEL" ] && [ -n "$LLM" ] && [ -n "$VAE" ] && [ -n "$OUT" ] || usage
[ -x "$SD" ] || { echo "sdcpp.sh: $SD is not an executable sd.cpp CLI" >&2; exit 1; }
for f in "$MODEL" "$LLM" "$VAE"; do [ -r "$f" ] || { echo "sdcpp.sh: cannot read $f" >&2; exit 1; }; done
mkdir -p "$WORK"
log() { echo "[sdcpp] $*" >&2; }

have_smi=0
command -v nvidia-smi >/dev/null 2>&1 && have_smi=1
used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -1 | tr -d ' '; }

# run NAME ARGS...: one generation; writes $WORK/NAME.log, .mem (MiB samples), .meta
run_sd() {
    local name=$1; shift
    local logf="$WORK/$name.log" memf="$WORK/$name.mem" smi_pid= base=0 rc=0 t0 t1
    : >"$memf"
    if [ $have_smi = 1 ]; then
        base=$(used_mib)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >"$memf" 2>/dev/null &
        smi_pid=$!
    fi
    t0=$(date +%s.%N)
    "$SD" --diffusion-model "$DIT" --llm "$LLM" --vae "$VAE" -p "$PROMPT" -W "$W" -H "$H" \
        --steps "$STEPS" --cfg-scale 1.0 --seed "$SEED" -o "$WORK/$name.png" "$@" >"$logf" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    if [ -n "$smi_pid" ]; then kill "$smi_pid" 2>/dev/null || true; wait "$smi_pid" 2>/dev/null || true; fi
    printf 'rc=%s\nwall=%s\nbase_mib=%s\nargs=%s\nlayout=%s\n' "$rc" \
        "$(awk "BEGIN { print $t1 - $t0 }")" "$base" "$*" "$LAYOUT" >"$WORK/$name.meta"
    log "$name: exit $rc, $(grep -o 'sampling completed, taking [0-9.]*s' "$logf" | tail -1)"
    return 0
}

sampled() { grep -q "sampling completed, taking" "$WORK/$1.log"; }

DIT=$MODEL LAYOUT=official
run_sd resident --diffusion-fa
if ! sampled resident; then
    log "sd.cpp did not run the official-layout file (see $WORK/resident.log)"
    if [ -n "$SLUICE" ]; then
        DIT="$WORK/zimage-$SIZE-comfy-bf16.safetensors" LAYOUT=comfy
        [ -s "$DIT" ] || "$SLUICE" synth --arch zimage --size "$SIZE" --layout comfy --dtype bf16 -o "$DIT" >&2
        run_sd resident --diffusion-fa
    fi
fi
names=(resident)
for n in $MAXV; do
    run_sd "stream$n" --diffusion-fa --offload-to-cpu --max-vram "$n" --stream-layers
    names+=("stream$n")
done

python3 - "$WORK" "$OUT" "$STEPS" "$W" "$H" "$DIT" "${names[@]}" <<'EOF'
import datetime, json, os, re, subprocess, sys
work, out, steps, W, H, model, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7:]

def taking(text, what):
    m = re.findall(re.escape(what) + r" completed, taking ([0-9.]+)\s*s", text)
    return float(m[-1]) if m else None

try:
    dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                         capture_output=True, text=True).stdout.strip() or "?"
except OSError:
    dev = "?"
rows = []
for name in names:
    text = open(os.path.join(work, name + ".log"), errors="replace").read()
    meta = dict(l.split("=", 1) for l in open(os.path.join(work, name + ".meta")).read().splitlines() if "=" in l)
    mem = [int(x) for x in open(os.path.join(work, name + ".mem")).read().split() if x.strip().isdigit()]
    peak = (max(mem) - int(meta.get("base_mib", 0) or 0)) * 1048576 if mem else None
    cond, samp, dec = taking(text, "get_learned_condition"), taking(text, "sampling"), taking(text, "decode_first_stage")
    ok = meta.get("rc") == "0" and samp is not None
    streamed = name != "resident"
    mv = name[len("stream"):] if streamed else None
    setting = ("--offload-to-cpu --max-vram %s --stream-layers" % mv) if streamed else "resident"
    common = dict(system="sd.cpp", dtype="bf16", device=dev, width=W, height=H, ok=ok,
                  budget=mv or "all", budget_bytes=int(float(mv) * 2**30) if mv else None,
                  layout=meta.get("layout"), args=meta.get("args"),
                  peak_vram_bytes=peak if ok else None,
                  peak_vram_source="nvidia-smi memory.used drop (100 ms samples)")
    if not ok:
        tail = [l for l in text.splitlines() if l.strip()][-3:]
        common["error"] = ("exit %s: " % meta.get("rc")) + " / ".join(tail)[:400]
    per_step = samp / steps if ok else None
    rows.append(dict(common, kind="dit", setting=setting + ", --diffusion-fa", mode="stream_layers" if streamed else "resident",
                     passes=steps if ok else None, pass_ms=per_step * 1e3 if ok else None,
                     bytes_per_pass=None if streamed else 0))
    rows.append(dict(common, kind="pipeline", setting=setting + ", --diffusion-fa", mode="stream_layers" if streamed else "resident",
                     mode_used=None, steps=steps, cond_s=cond, sampling_s=samp, per_step_s=per_step,
                     decode_s=dec, transfer_s=None, wall_s=float(meta.get("wall", "nan")),
                     total_s=(cond or 0) + (samp or 0) + (dec or 0) if ok else None))
doc = {"schema": "sluice-bench/1", "system": "sd.cpp", "kind": "mixed", "device": dev,
       "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z"),
       "model": model, "dtype": "bf16", "width": W, "height": H, "steps": steps, "rows": rows}
json.dump(doc, open(out, "w"), indent=1)
print("[sdcpp] wrote %s (%d of %d runs ok)" % (out, sum(r["ok"] for r in rows) // 2, len(names)), file=sys.stderr)
EOF
