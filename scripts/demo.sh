#!/usr/bin/env bash
# The demo (./tarn.sh demo): a lake on embedded defaults in .demo/, started in the foreground.
#   scripts/demo.sh TARN_BINARY [--fresh]
# Ctrl-C stops everything cleanly; the next run reuses .demo/data (or --fresh starts over).
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
stop() {
  echo; echo "stopping the lake…"
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

cat <<TXT

  Tarn is running (data in $DATA, log in $DEMO/serve.log).

  S3 / AWS API endpoint   http://$API
  SQL (pgwire)            ${SQL:+postgresql://root@${SQL%:*}:${SQL##*:}/tarn?sslmode=prefer}${SQL:-not available yet}
  MQTT                    ${MQTT:+mqtt://$MQTT}${MQTT:-not available yet}${MQTTS:+   mqtts://$MQTTS}
  Console                 ${CONSOLE:+http://$CONSOLE}${CONSOLE:-not available yet}

  Root credentials (also in $CREDS, mode 0600):
    AWS_ACCESS_KEY_ID=$AK
    AWS_SECRET_ACCESS_KEY=$SK
    SQL/MQTT user root, password $PW

  Try:
    export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY='$SK' AWS_DEFAULT_REGION=$REGION
    aws --endpoint-url http://$API s3 ls
    curl -s http://$API/health
    curl -s http://$API/metrics | head
TXT
if [[ -n "$SQL" ]]; then
  echo "    PGPASSWORD='$PW' psql 'host=${SQL%:*} port=${SQL##*:} user=root dbname=tarn' -c 'select 42'"
fi
if [[ -n "$MQTT" ]]; then
  echo "    mosquitto_sub -h ${MQTT%:*} -p ${MQTT##*:} -u root -P '$PW' -t 'sensors/#' -v"
fi
echo
echo "  Ctrl-C stops the lake."
wait "$pid"
