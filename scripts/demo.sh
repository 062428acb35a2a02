#!/usr/bin/env bash
# The built-in example: make a small VHDX with a peer tool, write known patterns into it, then
# show what libvhdx sees (info, map), read the patterns back and convert the disk to raw,
# checking the result against the peer's own conversion.
set -euo pipefail
cd "$(dirname "$0")/.."
vhdx=build/bin/vhdx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

qemu-img create -q -f vhdx -o subformat=dynamic,block_size=2M "$work/example.vhdx" 64M
qemu-io -f vhdx -c 'write -P 0xab 0 3M' -c 'write -P 0x5c 10M 512k' -c 'write -z 20M 2M' \
  "$work/example.vhdx" >/dev/null

echo "\$ vhdx info example.vhdx"
"$vhdx" info "$work/example.vhdx"
echo
echo "\$ vhdx map example.vhdx"
"$vhdx" map "$work/example.vhdx"
echo
echo "\$ vhdx io -r -c 'read -P 0xab 0 3M' -c 'read -P 0x5c 10M 512k' example.vhdx"
"$vhdx" io -r "$work/example.vhdx" -c 'read -P 0xab 0 3M' -c 'read -P 0x5c 10M 512k'
echo
echo "\$ vhdx convert -p -O raw example.vhdx example.raw"
"$vhdx" convert -p -O raw "$work/example.vhdx" "$work/example.raw"
qemu-img convert -f vhdx -O raw "$work/example.vhdx" "$work/reference.raw"
if cmp -s "$work/example.raw" "$work/reference.raw"; then
  echo "example.raw matches qemu-img's conversion byte for byte ($(du -k "$work/example.raw" | cut -f1) KiB on disk of 64 MiB: sparse)"
else
  echo "example.raw differs from qemu-img's conversion" >&2
  exit 1
fi
echo
echo "\$ vhdx convert -O vhdx example.raw copy.vhdx; vhdx io -c 'write -P 0x77 5M 1M' copy.vhdx; vhdx check copy.vhdx"
"$vhdx" convert -O vhdx "$work/example.raw" "$work/copy.vhdx"
"$vhdx" io "$work/copy.vhdx" -c 'write -P 0x77 5M 1M'
"$vhdx" check "$work/copy.vhdx"
qemu-io -f vhdx -r -c 'read -P 0x77 5M 1M' -c 'read -P 0xab 0 3M' "$work/copy.vhdx" | grep -v '^[0-9.]* [KMG]*i*B, '
echo "qemu-io reads back what libvhdx wrote"
