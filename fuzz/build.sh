#!/usr/bin/env bash
# Configures and builds the libFuzzer targets with clang-16 in build-fuzz/ (or $VHDX_FUZZ_BUILD).
# Usage: fuzz/build.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VHDX_FUZZ_BUILD:-$root/build-fuzz}"
cc="${VHDX_FUZZ_CC:-clang-16}"
cxx="${VHDX_FUZZ_CXX:-clang++-16}"
jobs="${VHDX_FUZZ_JOBS:-2}"

cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DVHDX_FUZZ=ON -DVHDX_BUILD_TESTS=OFF
cmake --build "$build" --target decoders_fuzz open_read_fuzz log_replay_fuzz check_fuzz write_fuzz parent_locator_fuzz vhdx -j"$jobs"
echo "fuzz targets in $build/fuzz/"
