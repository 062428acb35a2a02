#!/usr/bin/env bash
# Builds the seed corpora for the fuzz targets:
#   OUT/open_read_fuzz/  whole images (qemu-img made, plus the shared corpus), each <= 5 MiB
#                        (bigger ones are cut at 5 MiB: the structures all sit in the first MiBs)
#   OUT/decoders_fuzz/   one selector byte (the decoder, see fuzz/decoders_fuzz.cc) followed by
#                        the bytes of one structure sliced out of those images
# Usage: fuzz/make_seeds.sh [OUT]   (default: build-fuzz/seeds). Needs qemu-img, qemu-io, python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build-fuzz/seeds}"
corpus="${VHDX_CORPUS_DIR:-$root/../shared/corpus}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$out/open_read_fuzz" "$out/decoders_fuzz"
imgs="$work/images"
mkdir -p "$imgs"

# --- images made by qemu-img / qemu-io -------------------------------------------------------
q() { qemu-img create -q -f vhdx "$@" >/dev/null; }
q -o subformat=dynamic,block_size=1M "$imgs/qemu-dyn-1m.vhdx" 16M
q -o subformat=dynamic,block_size=1M,block_state_zero=off "$imgs/qemu-dyn-nozero.vhdx" 8M
q -o subformat=dynamic,block_size=8M "$imgs/qemu-dyn-8m.vhdx" 64M
q -o subformat=dynamic "$imgs/qemu-dyn-auto.vhdx" 1G
q -o subformat=fixed,block_size=1M "$imgs/qemu-fixed-1m.vhdx" 2M
q -o subformat=dynamic,block_size=1M "$imgs/qemu-written.vhdx" 8M
# Writes into block 0 only, so the file stays at 5 MiB (payload starts at 4 MiB).
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
  echo "make_seeds: no corpus at $corpus; qemu-made seeds only" >&2
fi

# --- slice and copy ---------------------------------------------------------------------------
python3 - "$imgs" "$out" "$corpus/libvhdi-fragments" <<'PY'
import os, struct, sys, uuid

imgs, out, fragments = sys.argv[1:4]
MAX = 5 << 20  # qemu puts payload at 4 MiB: keep one written block
KIB, MIB = 1024, 1024 * 1024
BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08").bytes_le
META = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
PARENT = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le
# Selector values, as in fuzz/decoders_fuzz.cc (selector % 8).
FILE_ID, HEADER, REGION, METADATA, LOCATOR, BATENT, LOG, LAYOUT = range(8)

def put_decoder(name, selector, data):
    with open(os.path.join(out, "decoders_fuzz", name), "wb") as f:
        f.write(bytes([selector]) + data[: MAX - 1])

for name in sorted(os.listdir(imgs)):
    data = open(os.path.join(imgs, name), "rb").read()
    with open(os.path.join(out, "open_read_fuzz", name), "wb") as f:
        f.write(data[:MAX])
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
    # Log: the first entries of the log region (Windows images keep old ones).
    h = data[64 * KIB : 68 * KIB]
    log_length, log_offset = struct.unpack_from("<IQ", h, 68)
    if 0 < log_offset < len(data):
        put_decoder(base + ".log", LOG, data[log_offset : log_offset + min(log_length, 64 * KIB)])
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
                put_decoder(base + ".locator", LOCATOR, region[ioff : ioff + ilen])
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
PY
echo "seeds: $(ls "$out/open_read_fuzz" | wc -l) images in $out/open_read_fuzz," \
  "$(ls "$out/decoders_fuzz" | wc -l) structures in $out/decoders_fuzz"
