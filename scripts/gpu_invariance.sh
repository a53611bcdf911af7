#!/usr/bin/env bash
# Mode invariance at full size on the GPU: the same prompt, seed and size generated under every
# offload mode, streaming budgets and prefetch depths must give byte-identical PNGs (residency
# decides where bytes live, never what is computed). Uses the full-size synthetic Z-Image DiT,
# Qwen3-4B text encoder and Flux VAE (bf16, seed 0; the file names `sluice bench` reuses).
#
#   bash scripts/gpu_invariance.sh SLUICE_BIN WORKDIR [W H STEPS]
#
# Prints one line per configuration (mode, flags, seconds, sha256 of the image, peak noted by the
# offload log) and exits 1 when any image differs from the `none` one.
set -uo pipefail
S=$1 W=$2 WD=${3:-512} HT=${4:-512} ST=${5:-2}
mkdir -p "$W/inv"
DIT=$W/zimage-full-official-bf16.safetensors LLM=$W/qwen3-full-official-bf16.safetensors
VAE=$W/flux-vae-full-official-bf16.safetensors
[ -s "$DIT" ] || "$S" synth --arch zimage --size full --layout official --dtype bf16 --seed 0 -o "$DIT" | tail -1
[ -s "$LLM" ] || "$S" synth --arch qwen3 --size full --dtype bf16 --seed 0 -o "$LLM" | tail -1
[ -s "$VAE" ] || "$S" synth --arch flux-vae --size full --layout official --dtype bf16 --seed 0 -o "$VAE" | tail -1
export SLUICE_KEEP_PAGE_CACHE=1
ref= bad=0 i=0
run() { # name, flags...
    local name=$1; shift
    local out=$W/inv/$i.png t0=$(date +%s.%N)
    i=$((i + 1))
    if ! "$S" generate --diffusion-model "$DIT" --llm "$LLM" --vae "$VAE" -p "a lighthouse at dawn, oil painting" \
        -W "$WD" -H "$HT" --steps "$ST" -s 7 -o "$out" --offload-log "$@" >"$W/inv/$i.log" 2>&1; then
        echo "FAIL  $name: $(grep -E 'error' "$W/inv/$i.log" | tail -1)"; bad=1; return
    fi
    local h; h=$(sha256sum "$out" | cut -c1-16)
    local plan; plan=$(grep -oE 'plan: [0-9]+ resident / [0-9]+ streamed' "$W/inv/$i.log" | sort -u | tr '\n' ';')
    [ -z "$ref" ] && ref=$h
    local v=same; [ "$h" = "$ref" ] || { v=DIFFERENT; bad=1; }
    printf '%-9s %-58s %6.1fs %s %s\n' "$v" "$name" "$(awk -v a="$(date +%s.%N)" -v b="$t0" "BEGIN{print a-b}")" "$h" "$plan"
}
run "none" --offload-mode none
run "cond_only" --offload-mode cond_only
run "cond_diffusion" --offload-mode cond_diffusion
run "aggressive" --offload-mode aggressive
run "layer_streaming --max-vram 3 prefetch 1" --offload-mode layer_streaming --max-vram 3 --streaming-prefetch 1
run "layer_streaming --max-vram 3 prefetch 3" --offload-mode layer_streaming --max-vram 3 --streaming-prefetch 3
run "layer_streaming --max-vram 8 prefetch 2" --offload-mode layer_streaming --max-vram 8 --streaming-prefetch 2
run "auto --max-vram 12" --max-vram 12
run "auto (unlimited)"
[ $bad = 0 ] && echo "invariance: all images identical to none" || echo "invariance: FAILED"
exit $bad
