#!/usr/bin/env bash
# bench/gpu_bench.sh — the benchmark section of the GPU run (scripts/gpu.sh calls it): writes the
# full-size synthetic models, runs `sluice bench` for each weight dtype and for whole generations,
# the diffusers peer (and sd.cpp when a binary is given), then bench/assemble.py, and prints the
# table last. It builds nothing: it takes the sluice binary.
#
#   bash bench/gpu_bench.sh --sluice build/sluice [--out DIR] [--workdir DIR]
#       [--diffusers-src DIR] [--sd-bin PATH] [--passes N] [--quick] [--keep]
#       [--pack FILE] [--smoke] [--skip-pipeline] [--skip-quant] [--skip-peers]
#
#   --sluice BIN        a CUDA build of sluice (required)
#   --out DIR           results: the JSON files, results.md, gpu_bench.log (at most 8 files; default
#                       $OUT when set, else WORKDIR/results)
#   --workdir DIR       synthetic models and scratch (default /tmp/sluice-bench; needs about 25 GB
#                       free: files are deleted once their runs are done unless --keep)
#   --diffusers-src DIR the folder holding the diffusers package (default $DIFFUSERS_SRC, as
#                       scripts/gpu_env.sh exports it); without it the diffusers rows are skipped
#   --sd-bin PATH       an sd.cpp CLI binary (bench/peers/sdcpp.sh); without it sd.cpp is skipped
#   --passes N          timed passes per configuration (default 5: the tables are medians of >= 5)
#   --quick             one warm-up pass, one timed generation, no leaf-level diffusers run
#   --pack FILE         also pack the results folder into FILE (.tar.gz): one file for $OUT
#   --smoke             the tiny model at 128x128 on the CPU backend (checks this script anywhere)
#
# Order (disk and time): bf16 DiT file → sluice bf16 → diffusers → pipeline (writes the text
# encoder and VAE) → sd.cpp → fp8 → q8_0, each quantised file deleted after its run. On an H100
# the whole section takes about 6-8 minutes, most of it writing files and torch.compile.
set -uo pipefail

SLUICE= OUTDIR=${OUT:-} WORK=/tmp/sluice-bench DIFF=${DIFFUSERS_SRC:-} SDBIN= PASSES=5 QUICK=0 KEEP=0
SKIP_PIPE=0 SKIP_QUANT=0 SKIP_PEERS=0 SIZE=full PACK=
while [ $# -gt 0 ]; do
    case "$1" in
        --sluice) SLUICE=$2; shift 2 ;;
        --out) OUTDIR=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --diffusers-src) DIFF=$2; shift 2 ;;
        --sd-bin) SDBIN=$2; shift 2 ;;
        --passes) PASSES=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --pack) PACK=$2; shift 2 ;;
        --smoke) SIZE=tiny; shift ;;
        --keep) KEEP=1; shift ;;
        --skip-pipeline) SKIP_PIPE=1; shift ;;
        --skip-quant) SKIP_QUANT=1; shift ;;
        --skip-peers) SKIP_PEERS=1; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$SLUICE" ] && [ -x "$SLUICE" ] || { echo "gpu_bench: --sluice BIN (an executable sluice) is required" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
OUTDIR=${OUTDIR:-$WORK/results}
mkdir -p "$WORK" "$OUTDIR"
LOG=$OUTDIR/gpu_bench.log
: >"$LOG"
WARMUP=2 DIFF_CONFIGS=eager,compiled,block,leaf
if [ $QUICK = 1 ]; then
    WARMUP=1 DIFF_CONFIGS=eager,compiled,block
fi
export PYTHONUNBUFFERED=1
T0=$(date +%s)
FAILED=()

say() { echo "[gpu_bench +$(($(date +%s) - T0))s] $*" | tee -a "$LOG" >&2; }
# step NAME CMD...: run, log everything, keep going when it fails
step() {
    local name=$1; shift
    say "$name: $*"
    local t=$(date +%s)
    "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || FAILED+=("$name (exit $rc)")
    say "$name: exit $rc after $(($(date +%s) - t)) s"
    return 0
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current \
        --format=csv 2>&1 || true
    df -h "$WORK" 2>&1 | tail -1
    free -g 2>&1 | head -2
} | tee -a "$LOG"
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)

BF16=$WORK/zimage-$SIZE-official-bf16.safetensors
COMMON=(--workdir "$WORK" --passes "$PASSES" --warmup "$WARMUP")
SMALL=() DIFF_DEV=()
if [ $SIZE = tiny ]; then
    SMALL=(--synth-size tiny -W 128 -H 128 --backend cpu-device)
    COMMON+=("${SMALL[@]}" --cap-tokens 32)
    DIFF_DEV=(--device cpu -W 128 -H 128 --cap-tokens 32)
fi

# 1. sluice, bf16: resident reference, minimal VRAM, 8 and 12 GB, whole device
step "sluice bf16" "$SLUICE" bench --synth bf16 "${COMMON[@]}" --budgets min,8,12,all \
    --json "$OUTDIR/sluice-dit-bf16.json"

# 2. diffusers on the same file
if [ $SKIP_PEERS = 0 ] && [ -n "$DIFF" ] && [ -d "$DIFF/diffusers" ] && [ -s "$BF16" ]; then
    step "diffusers" python3 "$HERE/peers/diffusers_zimage.py" --diffusers-src "$DIFF" --model "$BF16" \
        --passes "$PASSES" --warmup "$WARMUP" --configs "$DIFF_CONFIGS" "${DIFF_DEV[@]}" \
        --out "$OUTDIR/diffusers.json"
else
    say "diffusers: skipped (no --diffusers-src / \$DIFFUSERS_SRC with a diffusers package, or no bf16 file)"
fi

# 3. whole generations: text encoder + 8 steps + VAE decode under --max-vram 12, 8 and unlimited
if [ $SKIP_PIPE = 0 ]; then
    step "sluice pipeline" "$SLUICE" bench --pipeline --synth bf16 --workdir "$WORK" "${SMALL[@]}" \
        --max-vram 12,8,0 --runs $([ $QUICK = 1 ] && echo 1 || echo 2) --warmup 1 \
        --json "$OUTDIR/sluice-pipeline.json"
fi

# 4. sd.cpp on the same files (needs the text encoder and VAE of step 3)
LLM=$WORK/qwen3-$SIZE-official-bf16.safetensors VAE=$WORK/flux-vae-$SIZE-official-bf16.safetensors
if [ $SKIP_PEERS = 0 ] && [ -n "$SDBIN" ]; then
    if [ ! -s "$LLM" ] || [ ! -s "$VAE" ]; then
        step "synth llm" "$SLUICE" synth --arch qwen3 --size $SIZE --dtype bf16 -o "$LLM"
        step "synth vae" "$SLUICE" synth --arch flux-vae --size $SIZE --dtype bf16 -o "$VAE"
    fi
    step "sd.cpp" bash "$HERE/peers/sdcpp.sh" --sd-bin "$SDBIN" --model "$BF16" --llm "$LLM" \
        --vae "$VAE" --sluice "$SLUICE" --size $SIZE --workdir "$WORK/sdcpp" --out "$OUTDIR/sdcpp.json" \
        $([ $SIZE = tiny ] && echo "-W 128 -H 128")
else
    say "sd.cpp: skipped (no --sd-bin)"
fi
[ $KEEP = 1 ] || rm -f "$LLM" "$VAE" "$WORK/sdcpp/zimage-$SIZE-comfy-bf16.safetensors"

# 5. quantised weights: full streaming moves half the bytes
if [ $SKIP_QUANT = 0 ]; then
    for dt in fp8 q8_0; do
        step "sluice $dt" "$SLUICE" bench --synth $dt "${COMMON[@]}" --budgets min,4,all --no-gemm \
            --json "$OUTDIR/sluice-dit-$dt.json"
        [ $KEEP = 1 ] || rm -f "$WORK/zimage-$SIZE-official-f8_e4m3.safetensors" "$WORK/zimage-$SIZE-official-q8_0.gguf"
    done
fi
[ $KEEP = 1 ] || rm -f "$BF16"

# 6. the table
step "assemble" python3 "$HERE/assemble.py" "$OUTDIR"/*.json ${DRIVER:+--driver "$DRIVER"} \
    --out "$OUTDIR/results.md"
say "done in $(($(date +%s) - T0)) s; results in $OUTDIR"
if [ -n "$PACK" ]; then
    tar -czf "$PACK" -C "$OUTDIR" . && say "packed $OUTDIR into $PACK"
fi
[ ${#FAILED[@]} = 0 ] || say "failed steps: ${FAILED[*]}"
echo
cat "$OUTDIR/results.md" 2>/dev/null
[ ${#FAILED[@]} = 0 ]
