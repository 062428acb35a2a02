#!/usr/bin/env bash
# Runs a program under valgrind memcheck for `make valgrind`: the interop test binaries (as
# CTest's emulator) and the vhdx CLI they spawn (through a wrapper in the build's bin/).
# Any memory error or leak (definite, indirect or possible) makes valgrind exit 99; with
# VHDX_VALGRIND_LOGS set, each process writes its report to that folder as <pid>.log, which
# `make valgrind` scans afterwards (so errors are found even where a test tolerates a failure
# status). No suppression file: the suite runs clean without one.
set -euo pipefail
args=(--tool=memcheck --error-exitcode=99 --leak-check=full
      --show-leak-kinds=definite,indirect,possible
      --errors-for-leak-kinds=definite,indirect,possible
      --num-callers=30)
if [ -n "${VHDX_VALGRIND_LOGS:-}" ]; then
  args+=(--log-file="$VHDX_VALGRIND_LOGS/%p.log")
fi
exec valgrind "${args[@]}" "$@"
