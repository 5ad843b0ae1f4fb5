#!/usr/bin/env bash
# Broker throughput with 10 topic rules vs no rules, same run (see README.md).
#   bench/rules/run.sh [--quick]      ROUNDS=N to change the number of alternating rounds (3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ ! -x build/bin/tarn || ! -x build/bin/mqtt_bench ]]; then
  TARN_JOBS="${TARN_JOBS:-2}" ./tarn.sh build >/dev/null
fi
exec /usr/bin/python3 bench/rules/run.py "$@"
