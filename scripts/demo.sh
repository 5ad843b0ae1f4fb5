#!/usr/bin/env bash
# The demo (./tarn.sh demo): a lake on embedded defaults in .demo/, set up from
# examples/iot/tarn.yaml with `tarn apply`, 50 simulated sensors publishing over MQTT, and three
# copy-paste commands that show the data (psql, aws s3 ls, mosquitto_sub).
#   scripts/demo.sh TARN_BINARY [--fresh]
# Ctrl-C stops everything cleanly; the next run reuses .demo/data (or --fresh starts over).
# Parts whose module is not in this build are skipped with a message saying so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARN="$1"; shift
FRESH=0
for a in "$@"; do
  case "$a" in
    --fresh) FRESH=1 ;;
    *) echo "usage: ./tarn.sh demo [--fresh]" >&2; exit 2 ;;
  esac
done
DEMO="$ROOT/.demo"
DATA="$DEMO/data"
CREDS="$DEMO/credentials.json"
if ((FRESH)); then rm -rf "$DEMO"; fi
mkdir -p "$DEMO"
chmod 700 "$DEMO"

if [[ ! -f "$CREDS" ]]; then
  rm -rf "$DATA"
  umask 077
  "$TARN" init --data-dir "$DATA" --json > "$CREDS"
  umask 022
fi
json() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@"; }
AK="$(json "$CREDS" access_key_id)"; SK="$(json "$CREDS" secret_access_key)"; PW="$(json "$CREDS" password)"
REGION="$(json "$CREDS" region)"

rm -f "$DATA/run/endpoints.json"
"$TARN" serve --data-dir "$DATA" > "$DEMO/serve.log" 2>&1 &
pid=$!
sim_pid=""
stop() {
  trap - INT TERM
  echo
  if [[ -n "$sim_pid" ]]; then
    echo "stopping the sensors…"
    kill -TERM "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  echo "stopping the lake…"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  exit 0
}
trap stop INT TERM
for _ in $(seq 600); do
  [[ -f "$DATA/run/endpoints.json" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$DEMO/serve.log"; echo "tarn serve failed to start" >&2; exit 1; }
  sleep 0.05
done
ep() { json "$DATA/run/endpoints.json" "$1"; }
API="$(ep api)"; SQL="$(ep sql)"; MQTT="$(ep mqtt)"; MQTTS="$(ep mqtts)"; CONSOLE="$(ep console)"
export AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_DEFAULT_REGION="$REGION"

# 1. Resources from the example file, through the lake's APIs (idempotent: a rerun says so).
echo "  applying examples/iot/tarn.yaml (log: $DEMO/apply.log)…"
set +e
"$TARN" apply -f "$ROOT/examples/iot/tarn.yaml" --endpoint "http://$API" \
  --certs-dir "$DEMO/certs" --state "$DEMO/apply-state.json" > "$DEMO/apply.log" 2>&1
apply_rc=$?
set -e
tail -n 1 "$DEMO/apply.log" | sed 's/^/    /'
if ((apply_rc)); then
  grep -E 'FAILED' "$DEMO/apply.log" | grep -v 'skipped: ' | sed -E 's/^ +FAILED +/    not set up: /' | head -8
fi
HAVE_RULES=0; grep -qE '(created|unchanged|changed) +rule telemetry_to_lake' "$DEMO/apply.log" && HAVE_RULES=1
HAVE_CERTS=0; [[ -f "$DEMO/certs/sensor-050/certificate.arn" ]] && HAVE_CERTS=1

# 2. Fifty sensors in the background.
if [[ -n "$MQTTS" ]]; then
  SIM=("$TARN" simulate --endpoint-file "$DATA/run/endpoints.json" --devices 50 --rate 100
       --duration 864000 --qos 1 --seed 1 --malformed-ratio 0.01)
  if ((HAVE_CERTS)); then
    SIM+=(--certs "$DEMO/certs")
    how="each with its own certificate (mutual TLS)"
  else
    SIM+=(--things 'sensor-{001..050}' --username root --password "$PW")
    how="authenticated as root: the IoT registry (things, certificates) is not in this build yet"
  fi
  "${SIM[@]}" > "$DEMO/simulate.log" 2>&1 &
  sim_pid=$!
  echo "  50 sensors publishing 100 readings/s to sensors/<thing>/telemetry, $how (log: $DEMO/simulate.log)"
else
  echo "  sensors not started: this build has no MQTT listener yet"
fi
((HAVE_RULES)) || echo "  readings stay on the broker: the IoT rules engine (rule → stream) is not in this build yet"

DAY="$(date -u +%F)"
or_na() { if [[ -n "$1" ]]; then echo "$1"; else echo "not in this build yet"; fi; }
cat <<TXT

  Tarn is running (data in $DATA, log in $DEMO/serve.log).

  S3 / AWS API endpoint   http://$API
  SQL (pgwire)            $(or_na "${SQL:+postgresql://root@${SQL%:*}:${SQL##*:}/tarn?sslmode=prefer}")
  MQTT                    $(or_na "${MQTT:+mqtt://$MQTT}")${MQTTS:+   mqtts://$MQTTS}
  Console                 $(or_na "${CONSOLE:+http://$CONSOLE}")

  Root credentials (also in $CREDS, mode 0600):
    AWS_ACCESS_KEY_ID=$AK
    AWS_SECRET_ACCESS_KEY=$SK
    SQL/MQTT user root, password $PW

  See the data:
TXT
if [[ -n "$SQL" ]]; then
  if ! PGPASSWORD="$PW" PGCONNECT_TIMEOUT=5 psql -X -q "host=${SQL%:*} port=${SQL##*:} user=root dbname=tarn" \
       -c 'SELECT 1 FROM iot.telemetry LIMIT 0' >/dev/null 2>&1; then
    echo "    (iot.telemetry is not queryable over SQL in this build yet: catalog tables are not bound to the warehouse)"
  fi
  echo "    PGPASSWORD='$PW' psql 'host=${SQL%:*} port=${SQL##*:} user=root dbname=tarn' -c \"SELECT device, round(avg(temperature), 2) AS avg_temp, count(*) FROM iot.telemetry WHERE day = '$DAY' GROUP BY 1 ORDER BY 1\""
else
  echo "    (psql: the SQL endpoint is not in this build yet)"
fi
echo "    AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY='$SK' AWS_DEFAULT_REGION=$REGION aws --endpoint-url http://$API s3 ls --recursive s3://landing/iot/telemetry/"
if [[ -n "$MQTT" ]]; then
  if ((HAVE_RULES)); then
    echo "    mosquitto_sub -h ${MQTT%:*} -p ${MQTT##*:} -u root -P '$PW' -t 'alerts/hot/#' -v"
    echo "  The readings the lake could not convert (1 %), each with the reason:"
    echo "    mosquitto_sub -h ${MQTT%:*} -p ${MQTT##*:} -u root -P '$PW' -t 'errors/rules/#' -v"
  else
    echo "    mosquitto_sub -h ${MQTT%:*} -p ${MQTT##*:} -u root -P '$PW' -t 'sensors/#' -v   # hot-readings rule needs the rules engine"
  fi
fi
echo
echo "  Ctrl-C stops the sensors and the lake."
wait "$pid"
