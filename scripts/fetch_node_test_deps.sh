#!/usr/bin/env bash
# Installs the npm packages of the JavaScript client tests (tests/sql/node: node-postgres)
# exactly as pinned in tests/sql/node/package-lock.json, into tests/sql/node/node_modules
# (git-ignored). Idempotent and quiet when present; safe to run from concurrent tests.
# Exit status: 0 installed, 3 npm is missing or cannot fetch (offline), other = error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/sql/node"
STAMP="$DIR/node_modules/.tarn-lock-sha256"
want="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
installed() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$DIR/node_modules/pg/package.json" ]]; }
installed && exit 0
command -v npm >/dev/null 2>&1 || { echo "tarn: npm is not installed (needed for the node-postgres test)" >&2; exit 3; }
exec 9>"$DIR/.install.lock"
flock 9
installed && exit 0
err="$(mktemp)"; trap 'rm -f "$err"' EXIT
# --prefer-offline: packages already in npm's cache are not fetched again.
if ! (cd "$DIR" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null 2>"$err"); then
  echo "tarn: npm could not install tests/sql/node's packages (offline?): $(tail -3 "$err")" >&2
  exit 3
fi
echo "$want" >"$STAMP"
