#!/usr/bin/env bash
# bench/http: GET /health on Tarn's API port vs nginx serving a static file of the same size,
# both driven by wrk (2 threads, 64 connections) in the same run. Prints both and the ratio.
#   bench/http/run.sh [SECONDS_PER_ROUND]       # ROUNDS=4 by default
#   TARN_BIN=/path/to/tarn bench/http/run.sh   # measure that binary instead of building one
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${1:-5}"            # seconds per server per round
ROUNDS="${ROUNDS:-4}"
TARN="${TARN_BIN:-$("$ROOT/tarn.sh" build | tail -1)}"
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (scripts/install.sh)"; exit 1; }
work="$(mktemp -d)"
cleanup() {
  [[ -n "${tarn_pid:-}" ]] && kill "$tarn_pid" 2>/dev/null && wait "$tarn_pid" 2>/dev/null || true
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$TARN" serve --data-dir "$work/data" --api-listen 127.0.0.1:0 --sql-listen off --mqtt-listen off \
  --mqtts-listen off --mqtt-ws-listen off --console-listen off >"$work/tarn.log" 2>&1 &
tarn_pid=$!
for _ in $(seq 200); do [[ -f "$work/data/run/endpoints.json" ]] && break; sleep 0.05; done
api="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$work/data/run/endpoints.json")"
body="$(curl -s "http://$api/health")"

load="$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$work/www" "$work/nginx"
printf '%s' "$body" > "$work/www/health"
nport="$(free_port)"
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes auto;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  open_file_cache max=100;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    root $work/www;
    location / { default_type application/json; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx" 2>/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$nport/health" >/dev/null && break; sleep 0.05; done

# CPU time (user + system, clock ticks) of the given processes, all threads included.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
# run NAME URL PIDS…: sets NAME_rps, NAME_p99 and NAME_us (server CPU µs per request: unlike req/s,
# it hardly moves when other work shares the machine).
run() {
  local name="$1" url="$2"; shift 2
  local before after out
  before="$(cpu_ticks "$@")"
  out="$(wrk -t2 -c64 -d"${DURATION}s" --latency "$url")"
  after="$(cpu_ticks "$@")"
  printf '%s\n' "$out" >> "$work/wrk.txt"
  printf -v "${name}_rps" '%s' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  printf -v "${name}_p99" '%s' "$(awk '/ 99%/ {print $2}' <<<"$out")"
  printf -v "${name}_us" '%s' "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "%.1f", t / hz * 1e6 / $1}' <<<"$out")"
}
: > "$work/wrk.txt"
nginx_master="$(cat "$work/nginx.pid")"
# Alternate the two servers in ROUNDS short rounds, so that other work on the machine (it is
# shared) falls on both alike; report every round, each server's best round, and the median of
# the per-round ratios.
printf '%-6s %-6s %12s %10s %11s\n' round server req/s p99 cpu-us/req
for r in $(seq "$ROUNDS"); do
  run nginx "http://127.0.0.1:$nport/health" $(pgrep -P "$nginx_master") "$nginx_master"
  run tarn "http://$api/health" "$tarn_pid"
  printf '%-6s %-6s %12s %10s %11s\n' "$r" nginx "$nginx_rps" "$nginx_p99" "$nginx_us"
  printf '%-6s %-6s %12s %10s %11s\n' "$r" tarn "$tarn_rps" "$tarn_p99" "$tarn_us"
  echo "$nginx_rps $tarn_rps" >> "$work/rounds.txt"
done
echo "load average before the run: $load"
awk '$1 > bn { bn = $1 } $2 > bt { bt = $2 }
     END { printf "best round: nginx %.0f req/s, tarn %.0f req/s (%.2f)\n", bn, bt, bt / bn }' "$work/rounds.txt"
awk '{ printf "%.4f\n", $2 / $1 }' "$work/rounds.txt" | sort -n |
  awk '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
        printf "ratio tarn/nginx (median of %d rounds): %.2f (goal >= 0.8)\n", NR, m }'
