# Source this on the GPU machine (no package registry there): unpacks what the device call
# carried in .carry/*.tar.xz and exports SYSROOT (the -dev packages the build needs, from
# Debian debs unpacked with dpkg -x), PYTHONPATH (diffusers' source) and SLUICE_TOK (a Qwen3
# tokenizer folder). The tarballs are made by scripts/make_carry.sh on the development machine.
SLUICE_ENV=${SLUICE_ENV:-/tmp/sluice-env}
mkdir -p "$SLUICE_ENV"
for t in sysroot diffusers tok; do
  if [ -f ".carry/$t.tar.xz" ] && [ ! -e "$SLUICE_ENV/.$t" ]; then
    tar -xJf ".carry/$t.tar.xz" -C "$SLUICE_ENV" && touch "$SLUICE_ENV/.$t"
  fi
done
[ -d "$SLUICE_ENV/sysroot" ] && export SYSROOT="$SLUICE_ENV/sysroot" &&
  export LD_LIBRARY_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu:$SYSROOT/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -d "$SLUICE_ENV/src/diffusers" ] && export PYTHONPATH="$SLUICE_ENV/src${PYTHONPATH:+:$PYTHONPATH}" &&
  export DIFFUSERS_SRC="$SLUICE_ENV/src"
[ -d "$SLUICE_ENV/tok" ] && export SLUICE_TOK="$SLUICE_ENV/tok"
export PYTHONUNBUFFERED=1
