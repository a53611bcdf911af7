#!/bin/sh
# make demo: tiny synthetic Z-Image model set → one image, on whatever backend is present.
set -eu
SLUICE=${1:-build/sluice}
echo "demo: not wired up yet (needs sluice synth and generate)" >&2
exit 1
