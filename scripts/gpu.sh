#!/usr/bin/env bash
# scripts/gpu.sh — what one call on the GPU machine runs, in sections that can be picked by name:
#
#   bash scripts/gpu.sh [section ...]        (no section: build info tests lab torch summary)
#
#   build    make -j$JOBS CUDA=1 CUDA_ARCHS=90 BUILD=build-gpu all, and the kernel lab
#   info     nvidia-smi and the toolkit versions
#   tests    SLUICE_TEST_GPU=1 build-gpu/sluice-tests gpu_  (every case's errors in the log)
#   lab      build-gpu/kernel-lab: validate and time the kernels against the card's peaks
#   torch    bench/ops_vs_torch.py: the same ops in PyTorch, joined with the lab's table
#   zimage   full-size synthetic Z-Image (bf16) vs diffusers on the same file and noise: one DiT
#            pass and the 8-step Turbo sample at 512² (tools/ref/zimage_dit.py --mode full, then
#            the gpu_zimage_full_reference test), log in zimage.log
#   invariance  scripts/gpu_invariance.sh: full-size generations under every offload mode, budgets
#            and prefetch depths must give byte-identical PNGs (invariance.log)
#   bench    bench/gpu_bench.sh (sluice bench per dtype, whole generations, diffusers peers,
#            the assembled table), packed into bench.tar.gz; BENCH_ARGS adds options
#            (e.g. "--skip-peers --skip-pipeline")
#   summary  the short table printed last (test counts, failures, the lab/torch ratio table)
#
# Full logs go to $OUT (or ./gpu-out): build.log tests.log lab.log lab.tsv torch.log info.txt
# cudnn.log (7 files; the device tool returns at most 8). cuDNN is found in PyTorch's wheels (see
# CUDNN_DIRS below) and loaded by the backend at run time. Each section has its own time limit so one hang
# cannot eat the call. Environment: BUILD (build-gpu), JOBS (16), TESTS (gpu_: test name filter),
# T_TESTS / T_LAB / T_TORCH (seconds). The machine has no -dev packages: when .carry/sysroot.tar.xz
# travelled with the call, scripts/gpu_env.sh unpacks it and the build uses SYSROOT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
TESTS=${TESTS:-gpu_}
T_TESTS=${T_TESTS:-240}
T_LAB=${T_LAB:-150}
T_TORCH=${T_TORCH:-120}
[ -f scripts/gpu_env.sh ] && . scripts/gpu_env.sh
# cuDNN for the attention path (loaded at run time, never linked): PyTorch's wheels carry
# libcudnn.so.9 (nvidia-cudnn-*) and libnvrtc (which cuDNN's runtime-compiled engines open); their
# folders go on LD_LIBRARY_PATH, which the backend's loader searches.
CUDNN_DIRS=$(python3 - 2>/dev/null <<'PY'
import glob, os, site, sys
roots = []
try:
    roots += site.getsitepackages()
except Exception:
    pass
roots += [p for p in sys.path if p.endswith("-packages")]
dirs = []
for r in roots:
    for pat in ("nvidia/cudnn/lib/libcudnn.so.9", "nvidia/*/lib/libcudnn.so.9", "nvidia/*/lib/libnvrtc.so*"):
        for f in sorted(glob.glob(os.path.join(r, pat))):
            d = os.path.dirname(f)
            if d not in dirs:
                dirs.append(d)
print(":".join(dirs))
PY
)
[ -n "$CUDNN_DIRS" ] && export LD_LIBRARY_PATH="$CUDNN_DIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MAKEVARS=(CUDA=1 CUDA_ARCHS=90 BUILD="$BUILD" WERROR=-Werror ${SYSROOT:+SYSROOT=$SYSROOT})
STATUS=()

note() { STATUS+=("$1"); echo "== $1"; }
note "cuDNN folders on LD_LIBRARY_PATH: ${CUDNN_DIRS:-none found}"

section_build() {
  local t0=$SECONDS
  if make -j"$JOBS" "${MAKEVARS[@]}" all >"$OUT/build.log" 2>&1 &&
     make -f bench/kernels/Makefile "${MAKEVARS[@]}" >>"$OUT/build.log" 2>&1; then
    note "build ok ($((SECONDS - t0)) s)"
  else
    note "build FAILED ($((SECONDS - t0)) s): see build.log"
    grep -E "error|Error" "$OUT/build.log" | head -20
    return 1
  fi
}

section_info() {
  { nvidia-smi; nvcc --version; python3 -c 'import torch; print("torch", torch.__version__)'
    # instruction mix of the flash-attention kernels (HMMA = tensor cores, LDSM = ldmatrix,
    # LDGSTS = cp.async, LDL/STL = local memory) and the compiler's register report
    cuobjdump -sass "$BUILD/src/backend/cuda/attention.cu.o" 2>/dev/null |
      awk '/Function : /{fn=$3} /HMMA|LDSM|LDGSTS|LDL|STL|MUFU.EX2/{split($2,a,"."); c[fn" "a[1]]++}
           END{for (k in c) print "sass", k, c[k]}' | sort
    cuobjdump -res-usage "$BUILD/src/backend/cuda/attention.cu.o" 2>/dev/null | grep -A1 flash
  } >"$OUT/info.txt" 2>&1
  note "info: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
}

section_tests() {
  local t0=$SECONDS
  SLUICE_TEST_GPU=1 SLUICE_OH_VERBOSE=1 timeout "$T_TESTS" "$BUILD/sluice-tests" $TESTS \
    >"$OUT/tests.log" 2>&1
  local rc=$?
  note "tests rc=$rc ($((SECONDS - t0)) s): $(tail -n 1 "$OUT/tests.log")"
}

section_lab() {
  local t0=$SECONDS
  # debug log: which cuDNN loaded, each attention plan (graph, engine) or why it was refused;
  # cuDNN's own warnings and errors into cudnn.log
  SLUICE_LOG=debug CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG="$OUT/cudnn.log" \
    timeout "$T_LAB" "$BUILD/kernel-lab" "$OUT/lab.tsv" >"$OUT/lab.log" 2>&1
  note "lab rc=$? ($((SECONDS - t0)) s)"
  if [ -f "$OUT/cudnn.log" ] && [ "$(stat -c %s "$OUT/cudnn.log")" -gt 8000000 ]; then
    head -c 8000000 "$OUT/cudnn.log" >"$OUT/cudnn.log.tmp" && mv "$OUT/cudnn.log.tmp" "$OUT/cudnn.log"
  fi
}

section_torch() {
  local t0=$SECONDS
  PYTHONUNBUFFERED=1 timeout "$T_TORCH" python3 bench/ops_vs_torch.py --lab "$OUT/lab.tsv" \
    >"$OUT/torch.log" 2>&1
  note "torch rc=$? ($((SECONDS - t0)) s)"
}

BENCH_WORK=${BENCH_WORK:-/tmp/sluice-bench}
ZMODEL=$BENCH_WORK/zimage-full-official-bf16.safetensors

section_zimage() {
  local t0=$SECONDS Z=$BENCH_WORK/zfull
  mkdir -p "$Z"
  {
    [ -s "$ZMODEL" ] || "$BUILD/sluice" synth --arch zimage --size full --layout official --dtype bf16 \
      --seed 0 -o "$ZMODEL"
    timeout 300 python3 tools/ref/zimage_dit.py --mode full --device cuda --diffusers-src "${DIFFUSERS_SRC:-}" \
      --model "$ZMODEL" --out "$Z" &&
    SLUICE_TEST_GPU=1 SLUICE_ZIMAGE_FULL_MODEL="$ZMODEL" SLUICE_ZIMAGE_FULL_REF="$Z/zimage_full_ref.safetensors" \
      timeout 300 "$BUILD/sluice-tests" gpu_zimage_full_reference
  } >"$OUT/zimage.log" 2>&1
  note "zimage rc=$? ($((SECONDS - t0)) s): $(grep -E 'rel-L2' "$OUT/zimage.log" | tail -1)"
}

section_invariance() {
  local t0=$SECONDS
  bash scripts/gpu_invariance.sh "$BUILD/sluice" "$BENCH_WORK" >"$OUT/invariance.log" 2>&1
  note "invariance rc=$? ($((SECONDS - t0)) s): $(tail -n 1 "$OUT/invariance.log")"
  cat "$OUT/invariance.log"
}

section_bench() {
  local t0=$SECONDS
  # shellcheck disable=SC2086
  bash bench/gpu_bench.sh --sluice "$BUILD/sluice" --workdir "$BENCH_WORK" --out "$BENCH_WORK/results" \
    --pack "$OUT/bench.tar.gz" ${BENCH_ARGS:-} >"$BENCH_WORK/bench.stdout" 2>&1
  note "bench rc=$? ($((SECONDS - t0)) s)"
  tail -n 40 "$BENCH_WORK/bench.stdout"
}

section_summary() {
  echo
  echo "==================== summary ===================="
  printf '%s\n' "${STATUS[@]}"
  if [ -f "$OUT/tests.log" ]; then
    echo "-- failing tests and BAD cases:"
    grep -E "^FAIL|    BAD|: (CHECK|REQUIRE)|skip: no CUDA" "$OUT/tests.log" | head -30
    echo "-- worst error per op and dtype (rel_l2 / max_abs):"
    awk '($1=="ok"||$1=="BAD") && /rel_l2/ { key=$2" "$3; if ($4 ~ /^w=/) key=key" "$4;
         rel=$0; sub(/.*rel_l2 /,"",rel); sub(/\/.*/,"",rel);
         if (!(key in w) || rel+0 > w[key]+0) { w[key]=rel; line[key]=$0 } }
         END { for (k in w) printf "   %-28s rel_l2 %s\n", k, w[k] }' "$OUT/tests.log" | sort | head -60
  fi
  if [ -f "$OUT/lab.log" ]; then
    echo "-- cuDNN attention (lab, debug log):"
    grep -E "cuDNN|not run" "$OUT/lab.log" | sort | uniq -c | sort -rn | head -12
  fi
  if [ -f "$OUT/tests.log" ]; then
    echo "-- gpu_attention_cudnn (forced cuDNN vs the double reference and vs the portable kernel):"
    awk '/^(PASS|FAIL|SKIP) /{ a = 0; if ($2 == "gpu_attention_cudnn") { printf "%s", buf; print; a = 1 }
                               buf = ""; next }
         a && /^    skip:/ { print; a = 0; next }
         { a = 0; buf = buf $0 "\n" }' "$OUT/tests.log" | cut -c1-160 | head -40
  fi
  if [ -f "$OUT/torch.log" ] && grep -q "torch/sluice" "$OUT/torch.log"; then
    echo "-- kernels (lab vs PyTorch; torch/sluice > 1: sluice faster):"
    sed -n '/torch\/sluice/,$p' "$OUT/torch.log"
  elif [ -f "$OUT/lab.log" ]; then
    echo "-- kernel lab:"
    cat "$OUT/lab.log"
  fi
}

SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(build info tests lab torch summary)
for s in "${SECTIONS[@]}"; do
  if ! declare -F "section_$s" >/dev/null; then
    echo "gpu.sh: unknown section '$s' (build info tests lab torch zimage invariance bench summary)"
    exit 2
  fi
  if ! "section_$s" && [ "$s" = build ]; then
    section_summary
    exit 1
  fi
done
