#!/usr/bin/env bash
# bench/sql: Tarn's SQL endpoint vs PostgreSQL 15 (Debian server, started here on a free
# loopback port) and vs DuckDB alone, all in the same run:
#   1. prepared `SELECT 1` round trips (extended protocol, libpq): queries/s, µs/query;
#   2. streaming a ROWS-row, 5-column table to a libpq client in binary format, rows/s,
#      read in single-row mode, through a binary cursor (FETCH 10000 at a time) and as
#      COPY (…) TO STDOUT (FORMAT binary), each tuple walked by the client;
#   3. 20 analytic queries over ROWS generated sensor readings in Parquet: Tarn through
#      pgwire vs DuckDB in-process on the same file (duck_bench.cc, queries.sql).
# Each of 1 and 2 runs REPEAT times alternating the peers; the best run and the spread
# (worst/best) are printed, with the server's CPU time per query or row, which is steadier
# than wall-clock rates on a shared machine.
#   bench/sql/run.sh [SECONDS=5] [ROWS=10000000] [REPEAT=3] [PARTS=select1,stream,analytic]
# PARTS picks what runs: `bench/sql/run.sh 5 0 5 select1` is the SELECT 1 comparison alone
# (nothing loaded, a minute on this machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_RUN="${1:-5}"
ROWS="${2:-10000000}"
REPEAT="${3:-3}"
PARTS="${4:-select1,stream,analytic}"
part() { [[ ",$PARTS," == *",$1,"* ]]; }
TARN="$("$ROOT/tarn.sh" build | tail -1)"
PGBIN=/usr/lib/postgresql/15/bin
DUCKDB="$ROOT/third_party/duckdb"
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
g++ -O2 -std=c++20 -o "$work/duck_bench" "$ROOT/bench/sql/duck_bench.cc" -I"$DUCKDB/include" \
  -I/usr/include/postgresql -L"$DUCKDB/lib" -lduckdb -lpq -Wl,-rpath,"$DUCKDB/lib"

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

if part stream || part analytic; then
echo "loading $ROWS rows into both, generating $ROWS sensor readings in Parquet..."
psql -X -q "$tarn_dsn" -c "create table s as select range as id, (range % 100)::int as device, random() as v, \
  timestamp '2024-01-01' + to_seconds(range) as ts, 'tag' || (range % 10) as tag from range($ROWS)"
psql -X -q "$pg_dsn" -c "create table s as select g as id, (g % 100)::int as device, random() as v, \
  timestamp '2024-01-01' + g * interval '1 second' as ts, 'tag' || (g % 10) as tag from generate_series(0, $ROWS - 1) g" -c "vacuum analyze s"
"$work/duck_bench" gen "$work/sensors.parquet" "$ROWS"
sed "s#@PARQUET@#$work/sensors.parquet#" "$ROOT/bench/sql/queries.sql" >"$work/queries.sql"
fi

tarn() { BENCH_SERVER_PID="$tarn_pid" "$work/pg_bench" "$tarn_dsn" "$@"; }
pg() { BENCH_SERVER_PID=backend "$work/pg_bench" "$pg_dsn" "$@"; }
Q="select id, device, v, ts, tag from s"
for r in $(seq "$REPEAT"); do
  echo "run $r/$REPEAT..."
  if part select1; then
    tarn select1 "$SECONDS_RUN" >>"$work/t_select1"
    pg select1 "$SECONDS_RUN" >>"$work/p_select1"
  fi
  part stream || continue
  tarn stream "$Q" >>"$work/t_stream"
  pg stream "$Q" >>"$work/p_stream"
  tarn fetch "$Q" 10000 >>"$work/t_fetch"
  pg fetch "$Q" 10000 >>"$work/p_fetch"
  tarn copy "$Q" >>"$work/t_copy"
  pg copy "$Q" >>"$work/p_copy"
done

# best FILE COLUMN max|min → "best spread" (spread = worst/best)
best() { awk -v c="$2" -v m="$3" 'NR==1{b=$c;w=$c} {if((m=="max"&&$c>b)||(m=="min"&&$c<b))b=$c; if((m=="max"&&$c<w)||(m=="min"&&$c>w))w=$c}
  END{printf "%s %.2f\n", b, (m=="max"? b/w : w/b)}' "$1"; }
if part select1; then
paste "$work/t_select1" "$work/p_select1" | awk '{printf "  select1 run %d: tarn %s q/s %s us %s us CPU/q  postgres %s q/s %s us %s us CPU/q  ratio %.2f\n", NR, $1, $2, $3, $4, $5, $6, $2/$5}'
read -r tq tqs < <(best "$work/t_select1" 1 max); read -r tl _ < <(best "$work/t_select1" 2 min)
read -r tc _ < <(best "$work/t_select1" 3 min)
read -r pq pqs < <(best "$work/p_select1" 1 max); read -r pl _ < <(best "$work/p_select1" 2 min)
read -r pc _ < <(best "$work/p_select1" 3 min)
printf 'SELECT 1 (prepared, 1 client):   tarn %s q/s %s us (spread %s, server CPU %s us/q)  postgres %s q/s %s us (spread %s, %s us/q)  latency ratio tarn/pg %.2f\n' \
  "$tq" "$tl" "$tqs" "$tc" "$pq" "$pl" "$pqs" "$pc" "$(echo "$tl / $pl" | bc -l)"
fi
part stream && for m in stream fetch copy; do
  read -r tr trs < <(best "$work/t_$m" 2 max); read -r tc _ < <(best "$work/t_$m" 4 min)
  read -r pr prs < <(best "$work/p_$m" 2 max); read -r pc _ < <(best "$work/p_$m" 4 min)
  read -r tk _ < <(best "$work/t_$m" 5 min); read -r pk _ < <(best "$work/p_$m" 5 min)
  label="single-row mode"; [[ $m == fetch ]] && label="binary cursor"; [[ $m == copy ]] && label="COPY binary"
  printf '%s rows binary, %-15s tarn %s rows/s (spread %s, server CPU %s ns/row, client %s)  postgres %s rows/s (spread %s, %s ns/row, client %s)  ratio tarn/pg %.2f\n' \
    "$ROWS" "$label" "$tr" "$trs" "$tc" "$tk" "$pr" "$prs" "$pc" "$pk" "$(echo "$tr / $pr" | bc -l)"
done

part analytic || exit 0
echo "20 analytic queries, best of $REPEAT each, DuckDB in-process and Tarn via pgwire alternating:"
"$work/duck_bench" queries "$work/queries.sql" "$REPEAT" "$tarn_dsn" | tee "$work/analytic"
awk '{d+=$2; p+=$4} END {printf "analytic total: duckdb in-process %.3f s  tarn via pgwire %.3f s  ratio %.3f\n", d, p, p/d}' "$work/analytic"
