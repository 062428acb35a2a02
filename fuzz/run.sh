#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time, or every target for 60 s (--smoke, for CI).
# Usage: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#        fuzz/run.sh --smoke
# Targets come from build-fuzz/fuzz/ (fuzz/build.sh; $VHDX_FUZZ_BUILD overrides the folder).
# Seeds come from build-fuzz/seeds/TARGET (made by fuzz/make_seeds.sh when missing); new
# inputs go to build-fuzz/corpus/TARGET, findings to build-fuzz/artifacts/TARGET/.
# Exits non-zero when the fuzzer finds anything (crash, leak, timeout, out-of-memory).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VHDX_FUZZ_BUILD:-$root/build-fuzz}"
targets=(decoders_fuzz open_read_fuzz log_replay_fuzz check_fuzz write_fuzz parent_locator_fuzz)

if [[ "${1:-}" == "--smoke" ]]; then
  status=0
  for t in "${targets[@]}"; do
    "$0" "$t" 60 || status=1
  done
  exit "$status"
fi
if [[ $# -lt 2 ]]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer flags...] | $0 --smoke" >&2
  exit 2
fi
target="$1"
seconds="$2"
shift 2
binary="$build/fuzz/$target"
if [[ ! -x "$binary" ]]; then
  echo "run.sh: $binary not built; run fuzz/build.sh first" >&2
  exit 2
fi
seeds="$build/seeds/$target"
if [[ ! -d "$seeds" ]]; then
  "$root/fuzz/make_seeds.sh" "$build/seeds"
fi
corpus="$build/corpus/$target"
artifacts="$build/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
log="$build/fuzz-$target.log"
# libFuzzer caps inputs at 1 MiB unless told. Images come in the compact slot form
# (fuzz/fuzz_util.h): 1 MiB of stored bytes plus the slot table; a log region is 1 MiB plus the
# flags byte.
per_target=()
case "$target" in
  open_read_fuzz | check_fuzz) per_target=(-max_len=1052676) ;;
  log_replay_fuzz) per_target=(-max_len=1048577) ;;
  # 48 operations of at most 11 bytes: allow them from the start (libFuzzer would otherwise
  # grow the length limit slowly, a few bytes at a time, at this target's few dozen runs/s).
  write_fuzz) per_target=(-max_len=600 -len_control=0) ;;
esac

# -reload=0: one process per corpus folder, so re-reading it every second (libFuzzer's default,
# for parallel jobs sharing a folder) only costs time: over 10 % of open_read_fuzz's.
set +e
"$binary" "$corpus" "$seeds" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -reload=0 \
  -dict="$root/fuzz/vhdx.dict" -artifact_prefix="$artifacts/" \
  -print_final_stats=1 "${per_target[@]}" "$@" 2>&1 | tee "$log" |
  grep -a -E "^(==|SUMMARY|#[0-9]+[[:space:]]+(DONE|INITED))|ERROR|stat::|fuzz property violated"
rc=${PIPESTATUS[0]}
set -e

execs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
# -fork=N prints no final stats; its status lines ("#N: cov: ...") count every job's runs.
if [[ -z "$execs" ]]; then
  execs=$(grep -a -o -E '^#[0-9]+:' "$log" | tail -1 | tr -d '#:' || true)
fi
# Coverage from the last status line (DONE, INITED, NEW, REDUCE or pulse), so that a run
# stopped early reports where it got to.
last=$(grep -a -E '^#[0-9]+(:|[[:space:]]+[A-Z]+)[[:space:]]+cov:' "$log" | tail -1 || true)
cov=$(grep -o 'cov: [0-9]*' <<<"$last" || true)
ft=$(grep -o 'ft: [0-9]*' <<<"$last" || true)
echo "$target: ${execs:-?} executions (limit ${seconds}s), ${cov:-cov: ?} edges, ${ft:-ft: ?} features (log: $log)"
# Stopped with Ctrl-C or SIGINT (libFuzzer exits 72 then): not a finding.
if [[ $rc -eq 72 ]] && grep -a -q -E 'libFuzzer: (run|a child was) interrupted' "$log"; then
  echo "$target: interrupted, no finding"
  exit 0
fi
if [[ $rc -ne 0 ]]; then
  echo "$target: FINDING (libFuzzer exit $rc); inputs in $artifacts/" >&2
  exit 1
fi
exit 0
