#!/usr/bin/env bash
# Installs what libvhdx needs to build and test, from Debian 12's packages. Safe to run again:
# it calls apt-get only when something is missing. Why each library: docs/dependencies.md.
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build make pkg-config
  # libraries
  libisal-dev libcli11-dev nlohmann-json3-dev libfmt-dev libssl-dev
  # the nbdkit plugin and filter (tools/nbdkit), and the NBD clients their tests drive
  nbdkit nbdkit-plugin-dev libnbd-bin
  # vhdx-mount (tools/fuse), and what its tests put on the mounted disk
  libfuse3-dev e2fsprogs mount
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # peers for differential tests, and the tools the tests drive
  qemu-utils libvhdi-utils fuse3 gzip bzip2 xxd openssl python3
  # memory checking of the interop tests and the CLI they run (make valgrind)
  valgrind
  # libFuzzer targets (fuzz/): clang with its fuzzer and sanitizer runtimes
  clang-16 libclang-rt-16-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install packages" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
