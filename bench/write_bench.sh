#!/usr/bin/env bash
# Durable allocating 4 KiB writes on a disk-backed folder: `vhdx bench -w` on a fresh dynamic
# VHDX against the same requests on a fresh sparse raw file (`vhdx bench -f raw`, pwrite +
# fdatasync) and against `qemu-img bench -w` on a fresh VHDX made by qemu-img. Every run gets a
# fresh file, and every timing is the wall time of the whole process, so it includes opening,
# the final flush and closing. bench/run.sh runs it; it also runs alone. See bench/README.md.
#
# Knobs (environment): VHDX (the vhdx binary; default: build $BUILD_DIR, as bench/run.sh does),
# BENCH_WRITE_DIR (default /var/tmp/vhdx-bench; must not be tmpfs for the numbers to mean
# anything), WRITE_RUNS (runs per libvhdx and raw row, default 3; the best is kept),
# QEMU_RUNS (runs per qemu-img row, default 2: they are slow), RANDOM_WRITES (8000),
# RANDOM_DISK (1T), STRIDE_WRITES (1000), STRIDE_DISK (64G), SEED (1),
# WRITE_SECTION (a file to receive the Markdown section as well as stdout).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_WRITE_DIR=${BENCH_WRITE_DIR:-/var/tmp/vhdx-bench}
WRITE_RUNS=${WRITE_RUNS:-3}
QEMU_RUNS=${QEMU_RUNS:-2}
RANDOM_WRITES=${RANDOM_WRITES:-8000}
RANDOM_DISK=${RANDOM_DISK:-1T}
STRIDE_WRITES=${STRIDE_WRITES:-1000}
STRIDE_DISK=${STRIDE_DISK:-64G}
SEED=${SEED:-1}
BLOCK=32M  # the block size of every VHDX here, and the stride: each stride write allocates
PATTERN=0xab

log() { printf '== %s %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench/write_bench.sh: %s\n' "$*" >&2; exit 1; }

command -v qemu-img >/dev/null || die "qemu-img not found (qemu-utils)"
if [[ -z ${VHDX:-} ]]; then
  BUILD_DIR=${BUILD_DIR:-$ROOT/build-release}
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    log "configuring a Release build in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVHDX_BUILD_TESTS=OFF \
      >/dev/null
  fi
  cmake --build "$BUILD_DIR" --target vhdx -j "$(nproc)" >/dev/null
  VHDX=$BUILD_DIR/bin/vhdx
fi

mkdir -p "$BENCH_WRITE_DIR"
FS_TYPE=$(df --output=fstype "$BENCH_WRITE_DIR" | tail -n 1)
if [[ $FS_TYPE == tmpfs ]]; then log "warning: $BENCH_WRITE_DIR is tmpfs: flushes cost nothing there"; fi
WORK=$(mktemp -d "$BENCH_WRITE_DIR/run.XXXXXX")
# Freeing a file of thousands of scattered 4 KiB extents can take minutes where the file system
# discards freed blocks (mount -o discard), so files are removed only at the end, untimed.
cleanup() {
  log "removing the scratch files"
  rm -rf "$WORK"
}
trap cleanup EXIT
# A new scratch file name; the last one is kept in $WORK/last for the checks after a row.
new_file() {
  FILE=$(mktemp -u -p "$WORK" disk.XXXXXX)
  echo "$FILE" >"$WORK/last"
}
last_file() { cat "$WORK/last"; }

# time_fresh PREPARE BENCH: for each run picks a new $FILE, evaluates the command line PREPARE
# (which makes the file), syncs so earlier dirty data is not flushed on this run's account, and
# times the command line BENCH. Both name the file as $FILE. Best of $RUNS_NOW runs, in s.
RUNS_NOW=$WRITE_RUNS
time_fresh() {
  local prepare=$1 command=$2 best="" s e t i
  for ((i = 0; i < RUNS_NOW; i++)); do
    new_file
    eval "$prepare"
    sync
    s=$(date +%s%N)
    eval "$command" >/dev/null
    e=$(date +%s%N)
    t=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    if [[ -z $best ]] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
  done
  echo "$best"
}

# Command lines for time_fresh, evaluated there: $FILE is the run's file, $DISK the disk size.
MAKE_VHDX='"$VHDX" create -q -o block_size=$BLOCK "$FILE" $DISK'
MAKE_RAW='truncate -s $DISK "$FILE"'
MAKE_QEMU='qemu-img create -q -f vhdx -o subformat=dynamic,block_size=$BLOCK "$FILE" $DISK'
VHDX_BENCH='"$VHDX" bench "${ARGS[@]}" "$FILE"'
RAW_BENCH='"$VHDX" bench -f raw "${ARGS[@]}" "$FILE"'
QEMU_NONE_BENCH='qemu-img bench -f vhdx -t none "${ARGS[@]}" "$FILE"'
QEMU_WB_BENCH='qemu-img bench -f vhdx -t writeback "${ARGS[@]}" "$FILE"'


# --- Random writes ---------------------------------------------------------------------------
DISK=$RANDOM_DISK
ARGS=(-w --pattern "$PATTERN" -c "$RANDOM_WRITES" -s 4k --random "$SEED")
log "random: $RANDOM_WRITES durable 4 KiB writes at random offsets of a $DISK disk (best of $WRITE_RUNS)"
RUNS_NOW=$WRITE_RUNS
T_RANDOM_VHDX=$(time_fresh "$MAKE_VHDX" "$VHDX_BENCH")
RANDOM_BLOCKS=$("$VHDX" info --output=json "$(last_file)" |
  sed -n 's/^ *"allocated": \([0-9]*\).*/\1/p')
qemu-img check -q -f vhdx "$(last_file)" || die "qemu-img check finds errors after the random writes"
T_RANDOM_RAW=$(time_fresh "$MAKE_RAW" "$RAW_BENCH")

# --- Stride writes: every request allocates a new block --------------------------------------
DISK=$STRIDE_DISK
RANDOM_ARGS=("${ARGS[@]}")
ARGS=(-w --pattern "$PATTERN" -c "$STRIDE_WRITES" -s 4k -S "$BLOCK")
log "stride: $STRIDE_WRITES durable 4 KiB writes, one per $BLOCK block of a $DISK disk"
T_STRIDE_VHDX=$(time_fresh "$MAKE_VHDX" "$VHDX_BENCH")
qemu-img check -q -f vhdx "$(last_file)" || die "qemu-img check finds errors after the stride writes"
T_STRIDE_VHDX_ON_QEMU=$(time_fresh "$MAKE_QEMU" "$VHDX_BENCH")
qemu-img check -q -f vhdx "$(last_file)" || die "qemu-img check finds errors after the stride writes"
T_STRIDE_RAW=$(time_fresh "$MAKE_RAW" "$RAW_BENCH")
log "stride: qemu-img bench (64 requests in flight), -t none and -t writeback (best of $QEMU_RUNS)"
RUNS_NOW=$QEMU_RUNS
T_STRIDE_QEMU_NONE=$(time_fresh "$MAKE_QEMU" "$QEMU_NONE_BENCH")
T_STRIDE_QEMU_WB=$(time_fresh "$MAKE_QEMU" "$QEMU_WB_BENCH")
# Flushes per run, counted with strace (outside the timed runs), for the report: what the
# durable writes cost is mostly these.
# syncs_of CMD...: the number of fsync and fdatasync calls CMD makes.
syncs_of() {
  strace -f -c -e trace=fdatasync,fsync -o "$WORK/strace.txt" "$@" >/dev/null
  awk '$NF == "fdatasync" || $NF == "fsync" { n += $4 } END { printf "%d", n }' "$WORK/strace.txt"
}
QEMU_SYNCS=""
VHDX_RANDOM_SYNCS=""
if command -v strace >/dev/null; then
  new_file
  DISK=$STRIDE_DISK
  eval "$MAKE_QEMU"
  QEMU_SYNCS=$(syncs_of qemu-img bench -f vhdx -t writeback -q -w -c 100 -s 4k -S "$BLOCK" "$FILE")
  QEMU_SYNCS=$(awk -v n="$QEMU_SYNCS" 'BEGIN { printf "%.0f", n / 100 }')
  new_file
  DISK=$RANDOM_DISK
  eval "$MAKE_VHDX"
  VHDX_RANDOM_SYNCS=$(syncs_of "$VHDX" bench "${RANDOM_ARGS[@]}" "$FILE")
fi

# --- Report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l) ? "met" : "**missed**" }'; }
fmt_s() { awk -v t="$1" 'BEGIN { printf "%.3f s", t }'; }
R_RANDOM=$(ratio "$T_RANDOM_VHDX" "$T_RANDOM_RAW")
R_STRIDE=$(ratio "$T_STRIDE_VHDX" "$T_STRIDE_RAW")
R_STRIDE_ON_QEMU=$(ratio "$T_STRIDE_VHDX_ON_QEMU" "$T_STRIDE_RAW")
R_QEMU_NONE=$(ratio "$T_STRIDE_QEMU_NONE" "$T_STRIDE_RAW")
R_QEMU_WB=$(ratio "$T_STRIDE_QEMU_WB" "$T_STRIDE_RAW")
DEVICE=$(df --output=source "$BENCH_WRITE_DIR" | tail -n 1)
RANDOM_PCT=$(awk -v b="$RANDOM_BLOCKS" -v n="$RANDOM_WRITES" 'BEGIN { printf "%.0f", 100 * b / n }')

SECTION=$(
  cat <<EOF
### Durable 4 KiB writes that allocate

Files in $BENCH_WRITE_DIR ($FS_TYPE on $DEVICE), a fresh file for each run (best of
$WRITE_RUNS for libvhdx and raw rows, of $QEMU_RUNS for qemu-img rows), \`sync\` before each run; times are the wall time of the whole command,
open to close, including the final flush (fdatasync) that makes the writes durable. VHDX
images are dynamic with $BLOCK blocks. Random: $RANDOM_WRITES writes at uniformly random
4 KiB-aligned offsets of a $RANDOM_DISK disk (seed $SEED), which allocated $RANDOM_BLOCKS blocks,
so ${RANDOM_PCT}% of the writes allocated one. Stride: $STRIDE_WRITES writes $BLOCK apart on a
$STRIDE_DISK disk, so every write allocates (\`qemu-img bench\` has no random mode).

| Writes | Command | Time | vs raw file | Target | Result |
|---|---|---|---|---|---|
| random | \`vhdx bench -w --random\` on a \`vhdx create\` image | $(fmt_s "$T_RANDOM_VHDX") | ${R_RANDOM}× | ≤ 1.5× | $(verdict "$R_RANDOM" 1.5) |
| random | \`vhdx bench -f raw -w --random\` on a sparse raw file | $(fmt_s "$T_RANDOM_RAW") | 1.00× | | |
| stride | \`vhdx bench -w -S $BLOCK\` on a \`vhdx create\` image | $(fmt_s "$T_STRIDE_VHDX") | ${R_STRIDE}× | ≤ 1.5× | $(verdict "$R_STRIDE" 1.5) |
| stride | \`vhdx bench -w -S $BLOCK\` on a \`qemu-img create\` image | $(fmt_s "$T_STRIDE_VHDX_ON_QEMU") | ${R_STRIDE_ON_QEMU}× | | |
| stride | \`vhdx bench -f raw -w -S $BLOCK\` on a sparse raw file | $(fmt_s "$T_STRIDE_RAW") | 1.00× | | |
| stride | \`qemu-img bench -w -t none -S $BLOCK\` on a \`qemu-img create\` image | $(fmt_s "$T_STRIDE_QEMU_NONE") | ${R_QEMU_NONE}× | | |
| stride | \`qemu-img bench -w -t writeback -S $BLOCK\` on a \`qemu-img create\` image | $(fmt_s "$T_STRIDE_QEMU_WB") | ${R_QEMU_WB}× | | |

\`vhdx bench\` sends one request at a time; \`qemu-img bench\` keeps 64 in flight, yet its
VHDX driver serialises block allocation and ${QEMU_SYNCS:-several} flushes per allocating
write${QEMU_SYNCS:+ (counted with strace)}. libvhdx against qemu-img on the same stride
requests: $(ratio "$T_STRIDE_VHDX" "$T_STRIDE_QEMU_WB")× of \`-t writeback\`,
$(ratio "$T_STRIDE_VHDX" "$T_STRIDE_QEMU_NONE")× of \`-t none\`. \`qemu-img check\` finds no
errors in the images \`vhdx bench\` wrote.${VHDX_RANDOM_SYNCS:+ The random run on the image issues
$VHDX_RANDOM_SYNCS fdatasync calls (strace), the raw file 1.}
EOF
)
printf '%s\n' "$SECTION"
if [[ -n ${WRITE_SECTION:-} ]]; then printf '%s\n' "$SECTION" >"$WRITE_SECTION"; fi
