#!/usr/bin/env bash
# Fails when a source file includes a header from a layer above its own (docs/architecture.md).
# Usage: layering_test.sh SOURCE_DIR
set -euo pipefail
cd "${1:-.}"

# layer folder -> the project include prefixes it may use
declare -A allowed=(
  [src/base]="base vhdx/error.h vhdx/guid.h"
  [src/io]="base io vhdx/error.h vhdx/guid.h vhdx/file.h"
  [src/format]="base format vhdx/error.h vhdx/guid.h"
  [src/log]="base io format log vhdx/error.h vhdx/guid.h vhdx/file.h"
  [src/image]="base io format log image vhdx/error.h vhdx/guid.h vhdx/file.h vhdx/types.h"
  [src/ops]="base io format log image ops vhdx/error.h vhdx/guid.h vhdx/file.h vhdx/types.h"
  [src/api]="base io format log image ops api vhdx"
  [tools/vhdx]="vhdx"
  [tools/nbdkit]="vhdx"
  [tools/fuse]="vhdx"
)
# Public leaf headers belong to base/io and may include only each other.
allowed_public="vhdx/error.h vhdx/guid.h vhdx/file.h vhdx/types.h"

violations=0
check_file() {
  local file=$1 rules=$2
  while IFS= read -r inc; do
    case "$inc" in */*) ;; *) continue ;; esac  # same-folder include
    local ok=0
    for prefix in $rules; do
      if [[ "$inc" == "$prefix" || "$inc" == "$prefix"/* ]]; then ok=1; break; fi
    done
    if [ $ok -eq 0 ]; then
      echo "layering: $file includes \"$inc\", which its layer may not use"
      violations=$((violations + 1))
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
}

for layer in "${!allowed[@]}"; do
  [ -d "$layer" ] || continue
  while IFS= read -r -d '' f; do
    rules="${allowed[$layer]}"
    # A layer's own tests may also use the shared test helpers (tests/support).
    case "$f" in *_test.cc|*/test_*.h) rules="$rules support" ;; esac
    check_file "$f" "$rules"
  done < <(find "$layer" \( -name '*.h' -o -name '*.cc' \) -print0)
done
for f in include/vhdx/error.h include/vhdx/guid.h include/vhdx/file.h include/vhdx/types.h; do
  [ -f "$f" ] && check_file "$f" "$allowed_public"
done

if [ $violations -ne 0 ]; then
  echo "layering: $violations violation(s)"
  exit 1
fi
echo "layering: every include points down or sideways"
