#!/usr/bin/env bash
# Installs what Tarn needs to build, test and run: Debian packages and the pinned DuckDB.
# Idempotent and quiet when everything is present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  # build
  cmake ninja-build ccache g++ pkg-config git
  # libraries (DESIGN.md §6)
  libboost-dev libssl-dev libsqlite3-dev libsimdjson-dev nlohmann-json3-dev libpugixml-dev
  libjq-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libre2-dev libabsl-dev
  zlib1g-dev libzstd-dev libsnappy-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcurl4-openssl-dev libjemalloc-dev
  # real clients and peers for tests and benchmarks
  /usr/bin/python3 python3-pytest python3-boto3 python3-paho-mqtt python3-psycopg python3-sqlalchemy python3-psycopg2
  awscli s3cmd curl mosquitto mosquitto-clients postgresql-client wrk nginx-light npm
  libpostgresql-jdbc-java libpq-dev postgresql-15
)

missing=()
for p in "${PACKAGES[@]}"; do
  if [[ "$p" == /* ]]; then
    [[ -x "$p" ]] || missing+=(python3)
  elif ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm comes with the machine's Node.js; never pull Debian's (it conflicts with it).
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "tarn: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$ROOT/scripts/fetch_duckdb.sh"
# node-postgres for tests/sql (npm registry); the build never needs it, so offline is a warning.
"$ROOT/scripts/fetch_node_test_deps.sh" || echo "tarn: warning: tests/sql/node packages not installed; the node-postgres test will skip" >&2
