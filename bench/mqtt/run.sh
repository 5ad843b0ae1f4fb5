#!/usr/bin/env bash
# MQTT benchmark: Tarn against mosquitto in the same run (see README.md).
#   bench/mqtt/run.sh [--quick]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ ! -x build/bin/tarn || ! -x build/bin/mqtt_bench ]]; then
  TARN_JOBS="${TARN_JOBS:-2}" ./tarn.sh build >/dev/null
fi
exec /usr/bin/python3 bench/mqtt/run.py "$@"
