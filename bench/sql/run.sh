#!/usr/bin/env bash
# bench/sql: Tarn's SQL endpoint vs PostgreSQL 15 (Debian server, started here on a free
# loopback port), both driven by the same libpq client (pg_bench.cc) in the same run:
#   1. prepared `SELECT 1` round trips (extended protocol), queries/s and µs/query;
#   2. streaming a ROWS-row, 5-column table to the client in binary format, rows/s.
#   bench/sql/run.sh [SECONDS] [ROWS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_RUN="${1:-5}"
ROWS="${2:-10000000}"
TARN="$("$ROOT/tarn.sh" build | tail -1)"
PGBIN=/usr/lib/postgresql/15/bin
[[ -x "$PGBIN/postgres" ]] || { echo "needs postgresql-15 (scripts/install.sh)"; exit 1; }
work="$(mktemp -d)"
chmod 755 "$work"
cleanup() {
  [[ -n "${tarn_pid:-}" ]] && kill "$tarn_pid" 2>/dev/null && wait "$tarn_pid" 2>/dev/null || true
  [[ -d "$work/pg" ]] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

g++ -O2 -std=c++20 -o "$work/pg_bench" "$ROOT/bench/sql/pg_bench.cc" -I/usr/include/postgresql -lpq

TARN_ROOT_PASSWORD=bench-password "$TARN" serve --data-dir "$work/data" --api-listen 127.0.0.1:0 \
  --sql-listen 127.0.0.1:0 --mqtt-listen off --mqtts-listen off --mqtt-ws-listen off --console-listen off \
  >"$work/tarn.log" 2>&1 &
tarn_pid=$!
for _ in $(seq 400); do [[ -f "$work/data/run/endpoints.json" ]] && break; sleep 0.05; done
sql="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sql"])' "$work/data/run/endpoints.json")"
tarn_dsn="host=${sql%:*} port=${sql##*:} user=root password=bench-password dbname=tarn sslmode=disable"

pport="$(free_port)"
mkdir -p "$work/pg" && chown postgres "$work/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pport -k $work/pg -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c fsync=off" start >/dev/null
pg_dsn="host=127.0.0.1 port=$pport user=postgres dbname=postgres sslmode=disable"

echo "loading $ROWS rows into both..."
psql -X -q "$tarn_dsn" -c "create table s as select range as id, (range % 100)::int as device, random() as v, \
  timestamp '2024-01-01' + to_seconds(range) as ts, 'tag' || (range % 10) as tag from range($ROWS)"
psql -X -q "$pg_dsn" -c "create table s as select g as id, (g % 100)::int as device, random() as v, \
  timestamp '2024-01-01' + g * interval '1 second' as ts, 'tag' || (g % 10) as tag from generate_series(0, $ROWS - 1) g" -c "vacuum analyze s"

read -r t_qps t_us < <("$work/pg_bench" "$tarn_dsn" select1 "$SECONDS_RUN")
read -r p_qps p_us < <("$work/pg_bench" "$pg_dsn" select1 "$SECONDS_RUN")
read -r t_rows t_rps t_s < <("$work/pg_bench" "$tarn_dsn" stream "select id, device, v, ts, tag from s")
read -r p_rows p_rps p_s < <("$work/pg_bench" "$pg_dsn" stream "select id, device, v, ts, tag from s")
printf 'SELECT 1 (prepared, 1 client): tarn %s q/s (%s us)  postgres %s q/s (%s us)  latency ratio tarn/pg %.2f\n' \
  "$t_qps" "$t_us" "$p_qps" "$p_us" "$(echo "$t_us / $p_us" | bc -l)"
printf 'stream %s rows binary:          tarn %s rows/s (%ss)  postgres %s rows/s (%ss)  ratio tarn/pg %.2f\n' \
  "$t_rows" "$t_rps" "$t_s" "$p_rps" "$p_s" "$(echo "$t_rps / $p_rps" | bc -l)"
