#!/usr/bin/env bash
# Fetches the pinned DuckDB shared library and C header from the npm registry, checks each
# tarball against the SHA-256 in third_party/duckdb.lock and unpacks them under
# third_party/duckdb/ (git-ignored). Quiet when already present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/third_party/duckdb.lock"
DEST="$ROOT/third_party/duckdb"
STAMP="$DEST/.lock-sha256"
want_stamp="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" && -f "$DEST/lib/libduckdb.so" && -f "$DEST/include/duckdb.h" ]]; then
  exit 0
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$DEST/lib" "$DEST/include"
while read -r name version sha; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  echo "tarn: fetching $name@$version from npm" >&2
  file="$(cd "$tmp" && npm pack --silent "$name@$version" 2>/dev/null | tail -1)"
  got="$(sha256sum "$tmp/$file" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    echo "tarn: $name@$version: SHA-256 $got does not match $sha in $LOCK" >&2
    exit 1
  fi
  x="$tmp/x-${name//\//_}"
  mkdir -p "$x"
  tar -xzf "$tmp/$file" -C "$x"
  case "$name" in
    @duckdb/node-bindings-linux-x64) cp "$x/package/libduckdb.so" "$DEST/lib/" ;;
    duckdb) cp "$x/package/src/duckdb/src/include/duckdb.h" "$DEST/include/" ;;
  esac
done < "$LOCK"
echo "$want_stamp" > "$STAMP"
