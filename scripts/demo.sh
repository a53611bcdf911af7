#!/bin/sh
# make demo: tiny synthetic Z-Image model set → one image, on whatever backend is present.
#
#   sh scripts/demo.sh [path/to/sluice]
#
# Writes the three tiny random-weight models (Z-Image DiT, Qwen3 text encoder, FLUX VAE; bf16
# safetensors, about 45 MB together) next to the binary in <build>/demo/ with `sluice synth`,
# then runs `sluice generate` on them with --backend auto (CUDA when built with it and a GPU is
# there, else the CPU). The weights are random, so the picture is colourful noise: the demo shows
# the whole path (tokenizer, text encoder, sampler, DiT, VAE, PNG with metadata) working end to
# end. SLUICE_DEMO_DIR overrides the folder; extra arguments after the binary go to generate.
set -eu
SLUICE=${1:-build/sluice}
[ $# -gt 0 ] && shift
if [ ! -x "$SLUICE" ]; then
  echo "demo: $SLUICE not found (run make first)" >&2
  exit 1
fi
DIR=${SLUICE_DEMO_DIR:-$(dirname "$SLUICE")/demo}
mkdir -p "$DIR"

# (re)write a model when it is missing or older than the binary that writes it
synth() {
  out="$DIR/$2"
  if [ ! -s "$out" ] || [ "$SLUICE" -nt "$out" ]; then
    "$SLUICE" synth --arch "$1" --size tiny --seed 1 -o "$out"
  fi
}
synth zimage zimage_tiny.safetensors
synth qwen3 qwen3_tiny.safetensors
synth flux-vae flux_vae_tiny.safetensors

OUT="$DIR/demo.png"
rm -f "$OUT"
"$SLUICE" generate \
  --diffusion-model "$DIR/zimage_tiny.safetensors" \
  --llm "$DIR/qwen3_tiny.safetensors" \
  --vae "$DIR/flux_vae_tiny.safetensors" \
  -p "a lighthouse on a cliff at dusk, oil painting" \
  -W 256 -H 256 --steps 8 -s 42 --backend auto -o "$OUT" "$@"
[ -s "$OUT" ] || { echo "demo: no image was written" >&2; exit 1; }
echo
echo "demo: wrote $OUT (256x256, tiny random-weight models: expect colourful noise)"
