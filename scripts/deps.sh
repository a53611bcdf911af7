#!/bin/sh
# Install the Debian packages sluice needs to build and test. As root it runs apt-get; otherwise
# it prints the command. Quiet when everything is already there.
PKGS="build-essential pkg-config libopenblas-dev libpng-dev libcjson-dev libpcre2-dev libutf8proc-dev clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "deps: apt-get failed; run: apt-get install -y$missing" >&2; exit 1; }
else
  echo "deps: missing packages:$missing"
  echo "deps: run as root: apt-get install -y$missing"
  exit 1
fi
