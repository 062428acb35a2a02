#!/usr/bin/env bash
# Builds the seed corpora for the fuzz targets (one folder per target under OUT):
#   open_read_fuzz/, check_fuzz/  whole images in the compact slot form (fuzz/fuzz_util.h,
#                        SlotImageFile: only the non-zero starts of each 64 KiB): images made
#                        by `vhdx create` and by qemu-img (some written by qemu-io), plus the
#                        shared corpus images (at most 1 MiB of stored bytes each)
#   decoders_fuzz/       one selector byte (the decoder, see fuzz/decoders_fuzz.cc) followed by
#                        the bytes of one structure sliced out of those images
#   log_replay_fuzz/     a flags byte and a log region: the dirty image's own log (written by
#                        the target itself, VHDX_FUZZ_SEED_OUT) and the logs of the corpus
#                        images (flags 3: the target gives their entries its log GUID and CRC)
#   write_fuzz/          a few hand-made operation sequences (see fuzz/write_fuzz.cc)
#   parent_locator_fuzz/ parent locator items (the corpus differencing image's, and made-up ones
#                        for each path form) and raw path strings (see the target's header)
# Usage: fuzz/make_seeds.sh [OUT]   (default: build-fuzz/seeds). Needs qemu-img, qemu-io,
# python3; uses the fuzz build's `vhdx` CLI and log_replay_fuzz when built ($VHDX_FUZZ_BUILD).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VHDX_FUZZ_BUILD:-$root/build-fuzz}"
out="${1:-$build/seeds}"
corpus="${VHDX_CORPUS_DIR:-$root/../shared/corpus}"
cli="${VHDX_CLI:-$build/bin/vhdx}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

targets=(open_read_fuzz check_fuzz decoders_fuzz log_replay_fuzz write_fuzz parent_locator_fuzz)
for t in "${targets[@]}"; do mkdir -p "$out/$t"; done
imgs="$work/images"
mkdir -p "$imgs"

# --- images made by our own CLI -----------------------------------------------------------------
if [[ -x "$cli" ]]; then
  v() { ASAN_OPTIONS=detect_leaks=0 "$cli" create -q "$@"; }
  v -o block_size=1M "$imgs/vhdx-dyn-1m.vhdx" 16M
  v -o block_size=2M,logical_sector_size=4096 "$imgs/vhdx-dyn-4k.vhdx" 6M
  v "$imgs/vhdx-dyn-default.vhdx" 1G
  v -o subformat=fixed,block_size=1M "$imgs/vhdx-fixed.vhdx" 2M
  v -o block_size=1M "$imgs/vhdx-written.vhdx" 8M
  qemu-io -f vhdx -c "write -P 0x6c 0 64k" -c "write -P 0x17 1M 4k" -c "write -z 1536k 8k" \
    "$imgs/vhdx-written.vhdx" >/dev/null
  # Differencing children (the targets attach a parent of their own to any differencing image).
  v -b "$imgs/vhdx-written.vhdx" "$imgs/vhdx-child.vhdx"
  v -b "$imgs/vhdx-dyn-4k.vhdx" "$imgs/vhdx-child-4k.vhdx"
else
  echo "make_seeds: no vhdx CLI at $cli (fuzz/build.sh builds it); qemu-made seeds only" >&2
fi

# --- images made by qemu-img / qemu-io -------------------------------------------------------
q() { qemu-img create -q -f vhdx "$@" >/dev/null; }
q -o subformat=dynamic,block_size=1M "$imgs/qemu-dyn-1m.vhdx" 16M
q -o subformat=dynamic,block_size=1M,block_state_zero=off "$imgs/qemu-dyn-nozero.vhdx" 8M
q -o subformat=dynamic,block_size=8M "$imgs/qemu-dyn-8m.vhdx" 64M
q -o subformat=dynamic "$imgs/qemu-dyn-auto.vhdx" 1G
q -o subformat=fixed,block_size=1M "$imgs/qemu-fixed-1m.vhdx" 2M
q -o subformat=dynamic,block_size=1M "$imgs/qemu-written.vhdx" 8M
qemu-io -f vhdx -c "write -P 0xa5 0 64k" -c "write -P 0x5a 512k 4k" -c "write -z 768k 64k" \
  "$imgs/qemu-written.vhdx" >/dev/null
q -o subformat=dynamic,block_size=1M "$imgs/qemu-discard.vhdx" 4M
qemu-io -f vhdx -c "write -P 0x33 0 1M" -c "discard 0 1M" "$imgs/qemu-discard.vhdx" >/dev/null

# --- the shared corpus ------------------------------------------------------------------------
if [[ -d "$corpus" ]]; then
  for f in "$corpus"/*/*.gz "$corpus"/*/*.bz2; do
    [[ -e "$f" ]] || continue
    name="corpus-$(basename "${f%.*}")"
    case "$f" in
      *.gz) zcat "$f" >"$imgs/$name" ;;
      *.bz2) bzcat "$f" >"$imgs/$name" ;;
    esac
  done
else
  echo "make_seeds: no corpus at $corpus; made seeds only" >&2
fi

# --- the dirty image's own log, written by log_replay_fuzz ----------------------------------
if [[ -x "$build/fuzz/log_replay_fuzz" ]]; then
  VHDX_FUZZ_SEED_OUT="$out/log_replay_fuzz" "$build/fuzz/log_replay_fuzz" -runs=1 \
    >/dev/null 2>&1 || true
fi

# --- slice, encode and copy -------------------------------------------------------------------
python3 - "$imgs" "$out" "$corpus/libvhdi-fragments" <<'PY'
import os, struct, sys, uuid

imgs, out, fragments = sys.argv[1:4]
KIB, MIB = 1024, 1024 * 1024
BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08").bytes_le
META = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
PARENT = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le
VHDX_LOCATOR = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913").bytes_le
# Selector values, as in fuzz/decoders_fuzz.cc (selector % 8).
FILE_ID, HEADER, REGION, METADATA, LOCATOR, BATENT, LOG, LAYOUT = range(8)

def put(target, name, data):
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

def put_decoder(name, selector, data):
    put("decoders_fuzz", name, bytes([selector]) + data[: 4 * MIB])

def slot_form(data, budget=MIB):
    """The SlotImageFile form of fuzz/fuzz_util.h: per-64-KiB stored lengths, a cut, the bytes.
    At most `budget` stored bytes: first the start (4 KiB) of every slot, where structures
    begin, then the rest in file order."""
    SLOT = 64 * KIB
    n = min((len(data) + SLOT - 1) // SLOT, 4096)
    cut = (n * SLOT - min(len(data), n * SLOT)) // 512
    want = []
    for k in range(n):
        s = data[k * SLOT : (k + 1) * SLOT].rstrip(b"\0")
        want.append((len(s) + 511) // 512 * 512)
    got = [min(w, 4 * KIB) for w in want]
    left = budget - sum(got)
    for k in range(n):
        extra = max(0, min(want[k] - got[k], left))
        got[k] += extra
        left -= extra
    body = b"".join(data[k * SLOT : k * SLOT + got[k]].ljust(got[k], b"\0") for k in range(n))
    return struct.pack("<H", n) + bytes(g // 512 for g in got) + struct.pack("<H", cut) + body

for name in sorted(os.listdir(imgs)):
    data = open(os.path.join(imgs, name), "rb").read()
    encoded = slot_form(data)
    put("open_read_fuzz", name, encoded)
    put("check_fuzz", name, encoded)
    base = os.path.splitext(name)[0]
    put_decoder(base + ".fileid", FILE_ID, data[: 64 * KIB])
    for i, off in enumerate((64 * KIB, 128 * KIB)):
        put_decoder(f"{base}.header{i}", HEADER, data[off : off + 4 * KIB])
    rt = data[192 * KIB : 256 * KIB]
    put_decoder(base + ".regions", REGION, rt)
    count = struct.unpack_from("<I", rt, 8)[0]
    regions = {}
    for i in range(min(count, 2047)):
        e = rt[16 + 32 * i : 48 + 32 * i]
        regions[e[:16]] = struct.unpack_from("<QI", e, 16)
    # Log: the first entries of the log region (Windows images keep old ones). The log replay
    # target gets the used part of the region, its entries adopted (flags 3).
    h = data[64 * KIB : 68 * KIB]
    log_length, log_offset = struct.unpack_from("<IQ", h, 68)
    if 0 < log_offset < len(data):
        log = data[log_offset : log_offset + log_length]
        put_decoder(base + ".log", LOG, log[: 64 * KIB])
        used = log.rstrip(b"\0")
        if used:
            put("log_replay_fuzz", base + ".log", bytes([3]) + used[: (len(used) + 4095) // 4096 * 4096])
    if META in regions:
        off, length = regions[META]
        region = data[off : off + min(length, 256 * KIB)]
        put_decoder(base + ".metadata", METADATA, region)
        put_decoder(base + ".metalayout", LAYOUT, region)
        n = struct.unpack_from("<H", region, 10)[0]
        for i in range(min(n, 2047)):
            e = region[32 + 32 * i : 64 + 32 * i]
            if e[:16] == PARENT:
                ioff, ilen = struct.unpack_from("<II", e, 16)
                item = region[ioff : ioff + ilen]
                put_decoder(base + ".locator", LOCATOR, item)
                put("parent_locator_fuzz", base + ".locator", bytes([0]) + item)
    if BAT in regions:
        off, length = regions[BAT]
        # 13 geometry bytes first (see case 5), then the first BAT entries.
        geometry = bytes([0]) + struct.pack("<Q", 16 * MIB) + bytes([0, 0, 0, 0])
        put_decoder(base + ".bat", BATENT, geometry + data[off : off + min(length, 4 * KIB)])

# The libvhdi fragments are single structures.
if os.path.isdir(fragments):
    sel = {"file_identifier": FILE_ID, "image_header": HEADER, "region_table": REGION,
           "metadata_table_header": METADATA, "parent_locator_header": LOCATOR}
    for f in sorted(os.listdir(fragments)):
        key = f.split(".")[0]
        if key in sel:
            put_decoder("libvhdi-" + key, sel[key], open(os.path.join(fragments, f), "rb").read())

# Parent locators for each path form (items as §6 lays them out), and raw strings.
def locator_item(pairs):
    header = VHDX_LOCATOR + struct.pack("<HH", 0, len(pairs))
    strings, entries = b"", b""
    base = 20 + 12 * len(pairs)
    for key, value in pairs:
        k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
        koff = base + len(strings); strings += k
        voff = base + len(strings); strings += v
        entries += struct.pack("<IIHH", koff, voff, len(k), len(v))
    return header + entries + strings

linkage = ("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}")
forms = {
    "relative": [linkage, ("relative_path", "..\\base\\parent.vhdx")],
    "volume": [linkage, ("volume_path", "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}\\d\\p.vhdx")],
    "drive": [linkage, ("absolute_win32_path", "\\\\?\\D:\\vms\\parent.vhdx")],
    "unc": [linkage, ("absolute_win32_path", "\\\\?\\UNC\\server\\share\\vms\\parent.vhdx")],
    "linux": [linkage, ("absolute_win32_path", "/srv/images/parent.vhdx")],
    "all": [linkage, ("parent_linkage2", "{00000000-0000-0000-0000-000000000000}"),
            ("relative_path", ".\\p.vhdx"), ("volume_path", "\\\\?\\Volume{1}\\p.vhdx"),
            ("absolute_win32_path", "C:\\p.vhdx")],
}
for name, pairs in forms.items():
    put("parent_locator_fuzz", "item-" + name, bytes([0]) + locator_item(pairs))
raw = {
    "raw-relative": [b"/images/child.avhdx", b"..\\..\\a\\.\\p.vhdx"],
    "raw-all": [b"vm/child.avhdx", b"p.vhdx", b"\\\\?\\Volume{x}\\p.vhdx", b"\\\\srv\\sh\\p.vhdx"],
    "raw-drive": [b"/c", b"", b"", b"C:p.vhdx"],
}
for name, fields in raw.items():
    put("parent_locator_fuzz", name, bytes([1]) + b"\xff".join(fields))

# write_fuzz: byte 0 picks the image, then operations (kind, then its arguments; see the
# switch in fuzz/write_fuzz.cc): kind 0 small write (u32 offset, u16 length, pattern),
# 1 sector write (u32, u8 sectors, pattern), 2 large write (u32, u8 x 64 KiB, pattern),
# 3 discard (u32 offset, u32 length, unmap), 4 flush, 5 close and reopen, 6 read back
# (u32 offset, u32 length), 7 write past the end (u8).
def u32(x): return struct.pack("<I", x)
ops = {
    "writes": [0] + [0] + list(u32(1000)) + [0x10, 0x00, 0xaa] + [4] + [1] + list(u32(1 << 20)) + [8, 0x55] + [5] + [6] + list(u32(0)) + list(u32(3 << 20)),
    "large-discard": [1] + [2] + list(u32(512 << 10)) + [20, 0x77] + [4] + [3] + list(u32(1 << 20)) + list(u32(2 << 20)) + [1] + [2] + list(u32(3 << 20)) + [3, 0x99],
    "reopen-twice": [0] + [2] + list(u32(0)) + [15, 1] + [5] + [3] + list(u32(0)) + list(u32(1 << 20)) + [0] + [5] + [2] + list(u32(0)) + [3, 2] + [7, 9],
}
for name, seq in ops.items():
    put("write_fuzz", name, bytes(seq))
PY
for t in "${targets[@]}"; do echo "seeds: $t: $(ls "$out/$t" | wc -l) inputs ($(du -sh "$out/$t" | cut -f1))"; done
