#!/bin/sh
# Regenerate the reference fixtures (tests/fixtures/*) on a machine with PyTorch, transformers,
# tokenizers and safetensors (the GPU machine). diffusers comes from a source folder:
#   sh scripts/ref_fixtures.sh [DIFFUSERS_SRC] [TOKENIZER_DIR]
# DIFFUSERS_SRC defaults to .carry/src (a copy of diffusers' src/ folder, git-ignored);
# TOKENIZER_DIR (a folder with Qwen3's tokenizer.json + tokenizer_config.json) defaults to .carry/tok.
# Fixture files are written into tests/fixtures/<model>/ and, when $OUT is set, copied there too.
set -eu
cd "$(dirname "$0")/.."
DIFF=${1:-${DIFFUSERS_SRC:-.carry/src}}
TOK=${2:-${SLUICE_TOK:-.carry/tok}}
B=build-ref
make -j"$(nproc)" CUDA=0 BUILD=$B $B/sluice
S=$B/sluice
T=$(mktemp -d)
export PYTHONUNBUFFERED=1
$S synth --arch zimage --size tiny --layout official --dtype bf16 --seed 1234 -o $T/zimage-tiny.safetensors
$S synth --arch qwen3 --size tiny --dtype bf16 --seed 1234 -o $T/qwen3-tiny.safetensors
$S synth --arch flux-vae --size tiny --layout official --dtype bf16 --seed 4321 -o $T/vae-tiny.safetensors
rc=0
python3 tools/ref/zimage_dit.py --mode tiny --diffusers-src "$DIFF" --model $T/zimage-tiny.safetensors --out tests/fixtures/zimage || rc=1
python3 tools/ref/qwen3_encoder.py --model $T/qwen3-tiny.safetensors --out tests/fixtures/qwen3 || rc=1
python3 tools/ref/flux_vae.py --diffusers-src "$DIFF" --model $T/vae-tiny.safetensors --out tests/fixtures/flux_vae || rc=1
if [ -f "$TOK/tokenizer.json" ]; then
  python3 tools/ref/tokenizer/check_hf.py --tokenizer-dir "$TOK" || rc=1
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/fixtures"
  for d in zimage qwen3 flux_vae; do
    for f in tests/fixtures/$d/*.safetensors; do [ -f "$f" ] && cp "$f" "$OUT/fixtures/"; done
  done
fi
rm -rf "$T"
echo "ref_fixtures: done (rc=$rc)"
exit $rc
