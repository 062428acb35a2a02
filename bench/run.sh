#!/usr/bin/env bash
# libvhdx benchmarks, one run: builds a Release tree if needed, makes the images on /dev/shm,
# times libvhdx against cp, qemu-img and pread, prints a Markdown table and writes it to
# bench/RESULTS.md. See bench/README.md.
#
# Knobs (environment): BUILD_DIR (default build-release; an existing tree is reused as
# configured, and must be a Release one), BENCH_DIR (default /dev/shm), RUNS (timed runs per
# command, default 5; the best is kept), READS (random reads per pass, default 200000),
# OPEN_RUNS (default 10), RESULTS (default bench/RESULTS.md), WRITES=0 to skip the durable
# write benchmark (bench/write_bench.sh, which has its own knobs, BENCH_WRITE_DIR among them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOAD_AT_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-release}
BENCH_DIR=${BENCH_DIR:-/dev/shm}
RUNS=${RUNS:-5}
READS=${READS:-200000}
OPEN_RUNS=${OPEN_RUNS:-10}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}

GIB=$((1024 * 1024 * 1024))
VIRTUAL_SIZE=$((2 * GIB))
BLOCK_MIB=32  # Hyper-V's default block size
BLOCKS=$((VIRTUAL_SIZE / (BLOCK_MIB * 1024 * 1024)))

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

for tool in qemu-img qemu-io cmake ninja awk; do
  command -v "$tool" >/dev/null || die "$tool not found (qemu-utils, cmake, ninja-build, gawk)"
done
HAVE_HYPERFINE=0
if command -v hyperfine >/dev/null; then HAVE_HYPERFINE=1; fi

# --- Build ---------------------------------------------------------------------------------
# The benchmarks need no test code, so a new tree is configured without it.
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  log "configuring a Release build in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVHDX_BUILD_TESTS=OFF \
    >/dev/null
fi
grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD_DIR/CMakeCache.txt" ||
  die "$BUILD_DIR is not a Release build"
log "building vhdx and the benchmark programs (Release)"
cmake --build "$BUILD_DIR" --target vhdx vhdx_random_read_bench vhdx_open_bench -j "$(nproc)" >/dev/null
VHDX=$BUILD_DIR/bin/vhdx
READ_BENCH=$BUILD_DIR/bin/vhdx_random_read_bench
OPEN_BENCH=$BUILD_DIR/bin/vhdx_open_bench

# --- Scratch space ---------------------------------------------------------------------------
WORK=$(mktemp -d "$BENCH_DIR/vhdx-bench.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
RAW=$WORK/disk.raw
IMAGE=$WORK/disk.vhdx
OUT=$WORK/out.raw

# best_of CMD...: runs CMD $RUNS times (after one warm-up), prints the best wall time in s.
# hyperfine when installed, a bash loop otherwise. $OUT is removed before every run. The CPU
# time (user + system) goes to $WORK/cpu: hyperfine's mean, or that of the best run. On a
# loaded machine wall times follow each tool's share of the cores (qemu-img runs several
# threads), CPU times much less.
best_of() {
  if ((HAVE_HYPERFINE)); then
    local csv=$WORK/hyperfine.csv
    hyperfine --style none --warmup 1 --runs "$RUNS" --prepare "rm -f $OUT" \
      --export-csv "$csv" "$*" >&2
    awk -F, 'NR == 2 { printf "%.6f\n", $5 + $6 }' "$csv" >"$WORK/cpu"
    awk -F, 'NR == 2 { print $7 }' "$csv"
  else
    local best="" t times
    for ((i = 0; i <= RUNS; i++)); do
      rm -f "$OUT"
      times=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1)
      t=${times%% *}
      # Run 0 is the warm-up.
      if ((i > 0)) && { [[ -z $best ]] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; }; then
        best=$t
        awk -v u="${times#* }" 'BEGIN { split(u, a, " "); printf "%.6f\n", a[1] + a[2] }' >"$WORK/cpu"
      fi
    done
    echo "$best"
  fi
}
cpu_of_last() { cat "$WORK/cpu"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# verdict VALUE LIMIT: "met" when VALUE <= LIMIT.
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l) ? "met" : "**missed**" }'; }
result_of() { sed -n "s/^.*RESULT $1 \([0-9.]*\).*$/\1/p"; }

# --- Images ----------------------------------------------------------------------------------
log "making a 2 GiB raw disk, 3 of every 4 ${BLOCK_MIB} MiB blocks random data, the rest holes"
truncate -s "$VIRTUAL_SIZE" "$RAW"
for ((b = 0; b < BLOCKS; b++)); do
  if ((b % 4 != 3)); then
    dd if=/dev/urandom of="$RAW" bs=1M count="$BLOCK_MIB" seek=$((b * BLOCK_MIB)) conv=notrunc \
      status=none
  fi
done
log "converting it to a dynamic VHDX with qemu-img (block_size=${BLOCK_MIB}M)"
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=${BLOCK_MIB}M "$RAW" "$IMAGE"
"$VHDX" convert -O raw "$IMAGE" "$OUT"
cmp "$RAW" "$OUT" || die "vhdx convert output differs from the source raw file"
DATA_BYTES=$("$VHDX" map "$IMAGE" --output=json |
  awk 'BEGIN { RS = "}" } /"data": *true/ { match($0, /"length": *[0-9]+/); s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); n += s } END { print n + 0 }')
ALLOCATED_PCT=$(awk -v d="$DATA_BYTES" -v v="$VIRTUAL_SIZE" 'BEGIN { printf "%.0f", 100 * d / v }')
log "image: $(stat -c %s "$IMAGE") bytes, ${ALLOCATED_PCT}% of the virtual disk allocated"

# --- Convert ---------------------------------------------------------------------------------
log "timing convert to raw (best of $RUNS)"
T_VHDX=$(best_of "$VHDX" convert -O raw "$IMAGE" "$OUT")
C_VHDX=$(cpu_of_last)
T_QEMU=$(best_of qemu-img convert -f vhdx -O raw "$IMAGE" "$OUT")
C_QEMU=$(cpu_of_last)
T_CP=$(best_of cp --sparse=auto "$RAW" "$OUT")
C_CP=$(cpu_of_last)
log "timing convert of the raw file to a dynamic VHDX (best of $RUNS)"
T_TO_VHDX=$(best_of "$VHDX" convert -f raw -O vhdx -o block_size=${BLOCK_MIB}M "$RAW" "$OUT")
C_TO_VHDX=$(cpu_of_last)
qemu-img compare -q -f raw -F vhdx "$RAW" "$OUT" || die "vhdx convert -O vhdx output differs"
qemu-img check -q -f vhdx "$OUT" || die "qemu-img check finds errors in the vhdx convert output"
T_TO_VHDX_QEMU=$(best_of qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=${BLOCK_MIB}M "$RAW" "$OUT")
C_TO_VHDX_QEMU=$(cpu_of_last)
rm -f "$OUT"

# --- Random reads ----------------------------------------------------------------------------
log "timing $READS random 4 KiB reads: vhdx::Image::read vs pread"
READ_LOG=$WORK/read.log
"$READ_BENCH" "$IMAGE" "$RAW" --reads="$READS" --benchmark_color=false | tee "$READ_LOG" >&2
NS_VHDX=$(result_of vhdx_image_read <"$READ_LOG")
NS_PREAD=$(result_of raw_pread <"$READ_LOG")
[[ -n $NS_VHDX && -n $NS_PREAD ]] || die "random read benchmark gave no result"

# --- Opening a 64 TiB image ------------------------------------------------------------------
rm -f "$RAW" "$IMAGE"
BIG=$WORK/big.vhdx
log "making a 64 TiB dynamic VHDX (1 MiB blocks: a 512 MiB BAT)"
qemu-img create -q -f vhdx -o subformat=dynamic,block_size=1M "$BIG" 64T
OPEN_LOG=$WORK/open.log
"$OPEN_BENCH" "$BIG" "$OPEN_RUNS" | tee "$OPEN_LOG" >&2
OPEN_MS=$(result_of open_ms <"$OPEN_LOG")
OPEN_RSS_KIB=$(result_of open_rss_kib <"$OPEN_LOG")
BASE_RSS_KIB=$(result_of base_rss_kib <"$OPEN_LOG")
CLI_RSS_KIB=$( (/usr/bin/time -f '%M' "$VHDX" info "$BIG" >/dev/null) 2>&1 | tail -n 1)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
OPEN_RSS_MIB=$(mib "$OPEN_RSS_KIB")
rm -f "$BIG"

# --- Durable writes on a disk-backed folder --------------------------------------------------
WRITE_SECTION=""
if [[ ${WRITES:-1} != 0 ]]; then
  log "durable write benchmark (bench/write_bench.sh)"
  VHDX=$VHDX WRITE_SECTION=$WORK/write.md bash "$ROOT/bench/write_bench.sh" >/dev/null
  WRITE_SECTION=$(cat "$WORK/write.md")
fi

# --- Report ----------------------------------------------------------------------------------
R_CP=$(ratio "$T_VHDX" "$T_CP")
R_QEMU=$(ratio "$T_VHDX" "$T_QEMU")
R_TO_VHDX_CP=$(ratio "$T_TO_VHDX" "$T_CP")
R_TO_VHDX_QEMU=$(ratio "$T_TO_VHDX" "$T_TO_VHDX_QEMU")
R_READ=$(ratio "$NS_VHDX" "$NS_PREAD")
fmt_s() { awk -v t="$1" 'BEGIN { printf "%.3f s", t }'; }
fmt_us() { awk -v t="$1" 'BEGIN { printf "%.2f µs", t / 1000 }'; }
TIMER=$( ((HAVE_HYPERFINE)) && hyperfine --version || echo "bash loop (date +%s%N)")
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)

REPORT=$(
  cat <<EOF
## Benchmarks

$(date -u +%Y-%m-%d), ${CPU:-unknown CPU}, $(nproc) cores, Linux $(uname -r), files on
$BENCH_DIR (tmpfs), Release build. Timer: $TIMER, best of $RUNS runs after one warm-up.
Images: a 2 GiB dynamic VHDX made by \`qemu-img convert\` from a raw file whose blocks are
random data, ${ALLOCATED_PCT}% allocated (${BLOCK_MIB} MiB blocks), and a 64 TiB dynamic VHDX
with 1 MiB blocks from \`qemu-img create\`. $(qemu-img --version | head -n 1).

| Benchmark | libvhdx | Reference | Ratio | Target | Result |
|---|---|---|---|---|---|
| 2 GiB image to raw | $(fmt_s "$T_VHDX") | \`cp --sparse=auto\` of the raw: $(fmt_s "$T_CP") | ${R_CP}× | ≤ 1.05× cp | $(verdict "$R_CP" 1.05) |
| 2 GiB image to raw | $(fmt_s "$T_VHDX") | \`qemu-img convert\`: $(fmt_s "$T_QEMU") | ${R_QEMU}× | ≤ 0.8× qemu-img | $(verdict "$R_QEMU" 0.8) |
| 2 GiB raw to dynamic VHDX | $(fmt_s "$T_TO_VHDX") | \`cp --sparse=auto\` of the raw: $(fmt_s "$T_CP") | ${R_TO_VHDX_CP}× | ≤ 1.1× cp | $(verdict "$R_TO_VHDX_CP" 1.1) |
| 2 GiB raw to dynamic VHDX | $(fmt_s "$T_TO_VHDX") | \`qemu-img convert -O vhdx\`: $(fmt_s "$T_TO_VHDX_QEMU") | ${R_TO_VHDX_QEMU}× | ≤ 0.6× qemu-img | $(verdict "$R_TO_VHDX_QEMU" 0.6) |
| Random 4 KiB reads ($READS, same offsets) | $(fmt_us "$NS_VHDX") per read | \`pread\` on the raw: $(fmt_us "$NS_PREAD") | ${R_READ}× | ≤ 1.2× pread | $(verdict "$R_READ" 1.2) |
| Open a 64 TiB dynamic image | ${OPEN_MS} ms | | | < 20 ms | $(verdict "$OPEN_MS" 19.999) |
| Peak RSS of that open | ${OPEN_RSS_MIB} MiB | the process before opening: $(mib "$BASE_RSS_KIB") MiB | | < 64 MiB | $(verdict "$OPEN_RSS_KIB" 65535) |

\`vhdx convert\` and \`qemu-img convert\` write sparse output (raw) or leave all-zero blocks
unallocated (VHDX, ${BLOCK_MIB} MiB blocks; \`vhdx convert\`'s VHDX passes \`qemu-img compare\`
against the raw file and \`qemu-img check\`); the read benchmark is
\`vhdx_random_read_bench\` (Google Benchmark, one pass of $READS reads per repetition, best of 7);
the open benchmark is \`vhdx_open_bench\` (each open in a fresh child process; peak RSS from
\`getrusage\`). \`vhdx info\` on the 64 TiB image peaks at $(mib "$CLI_RSS_KIB") MiB RSS.
Writing the data is the floor for every converter: here \`qemu-img convert\` takes
$(ratio "$T_QEMU" "$T_CP")× the time of \`cp\`, so ≤ 0.8× qemu-img means at most
$(awk -v q="$T_QEMU" -v c="$T_CP" 'BEGIN { printf "%.2f", 0.8 * q / c }')× the time of cp.
CPU time (user + system) of the converters: to raw, libvhdx $(fmt_s "$C_VHDX"), qemu-img
$(fmt_s "$C_QEMU") ($(ratio "$C_VHDX" "$C_QEMU")×), cp $(fmt_s "$C_CP") ($(ratio "$C_VHDX" "$C_CP")×); to VHDX,
libvhdx $(fmt_s "$C_TO_VHDX"), qemu-img $(fmt_s "$C_TO_VHDX_QEMU") ($(ratio "$C_TO_VHDX" "$C_TO_VHDX_QEMU")×, cp
$(ratio "$C_TO_VHDX" "$C_CP")×). Load average when the run started: $LOAD_AT_START (on $(nproc) cores).
Reproduce with \`bash bench/run.sh\`.

$WRITE_SECTION
EOF
)
printf '%s\n' "$REPORT"
printf '%s\n' "$REPORT" >"$RESULTS"
log "written to $RESULTS"
