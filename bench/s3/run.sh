#!/usr/bin/env bash
# bench/s3: S3 GET and PUT of 4 KiB and 1 MiB objects on Tarn, against nginx serving the very
# same files (Tarn keeps objects at their natural path, so nginx's root is <data>/objects), all
# driven by wrk (2 threads, 16 connections) in the same run: GETs with SigV4 presigned URLs, PUTs
# with a SigV4 Authorization header over the payload's SHA-256.
# Prints req/s, MB/s, p99 and the ratios, plus `openssl speed` MD5 and SHA-256 for the PUT goal.
# Also prints the server's CPU time per 1 MiB PUT (from /proc) against what MD5 + SHA-256 of 1 MiB
# cost (openssl), a ratio that moves much less with the machine's load than throughput does.
#   bench/s3/run.sh [DURATION_SECONDS] [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${1:-10}"
ROUNDS="${2:-1}"
TARN="${TARN_BIN:-$("$ROOT/tarn.sh" build | tail -1)}"  # TARN_BIN measures a given binary
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (scripts/install.sh)"; exit 1; }
work="$(mktemp -d)"
cleanup() {
  [[ -n "${tarn_pid:-}" ]] && kill "$tarn_pid" 2>/dev/null && wait "$tarn_pid" 2>/dev/null || true
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export TARN_ROOT_ACCESS_KEY_ID=AKIABENCHROOT0000001 TARN_ROOT_SECRET_ACCESS_KEY=benchsecret/000000000000000000000000000
"$TARN" serve --data-dir "$work/data" --api-listen 127.0.0.1:0 --sql-listen off --mqtt-listen off \
  --mqtts-listen off --mqtt-ws-listen off --console-listen off >"$work/tarn.log" 2>&1 &
tarn_pid=$!
for _ in $(seq 200); do [[ -f "$work/data/run/endpoints.json" ]] && break; sleep 0.05; done
api="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$work/data/run/endpoints.json")"

# Objects and presigned URLs for GET. PUTs are signed in the Authorization header with the
# body's SHA-256 in x-amz-content-sha256, as the SDKs and awscli send them, so the server computes
# both the SHA-256 (to check the signature's payload hash) and the MD5 (for the ETag). A SigV4
# signature stays valid for 15 minutes, so wrk can replay the same signed request.
head -c 4096 /dev/urandom > "$work/4k.bin"
head -c 1048576 /dev/urandom > "$work/1m.bin"
/usr/bin/python3 - "$api" "$work" <<'PY'
import os, sys, boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
api, work = sys.argv[1], sys.argv[2]
key_id, secret = os.environ["TARN_ROOT_ACCESS_KEY_ID"], os.environ["TARN_ROOT_SECRET_ACCESS_KEY"]
s3 = boto3.client("s3", endpoint_url="http://" + api, region_name="us-east-1",
                  aws_access_key_id=key_id, aws_secret_access_key=secret,
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
for size in ("4k", "1m"):
    with open(os.path.join(work, size + ".bin"), "rb") as f:
        body = f.read()
    s3.put_object(Bucket="landing", Key="bench/%s.bin" % size, Body=body)
    url = s3.generate_presigned_url("get_object", ExpiresIn=7200,
                                    Params={"Bucket": "landing", "Key": "bench/%s.bin" % size})
    with open(os.path.join(work, "get-%s.url" % size), "w") as f:
        f.write(url)
    put_url = "http://%s/landing/bench/%s-put.bin" % (api, size)
    req = AWSRequest(method="PUT", url=put_url, data=body)
    req.context["payload_signing_enabled"] = True
    S3SigV4Auth(Credentials(key_id, secret), "s3", "us-east-1").add_auth(req)
    with open(os.path.join(work, "put-%s.url" % size), "w") as f:
        f.write(put_url)
    with open(os.path.join(work, "put-%s.headers" % size), "w") as f:
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
            f.write("%s: %s\n" % (name, req.headers[name]))
PY

mkdir -p "$work/nginx"
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
  sendfile on;
  open_file_cache max=100;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport;
    root $work/data/objects;
    location / { default_type application/octet-stream; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx" 2>/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$nport/landing/bench/4k.bin" >/dev/null && break; sleep 0.05; done
cmp <(curl -sf "http://127.0.0.1:$nport/landing/bench/1m.bin") <(curl -sf "$(cat "$work/get-1m.url")")

cat > "$work/put.lua" <<'LUA'
wrk.method = "PUT"
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.body = f:read("*a")
f:close()
for line in io.lines(os.getenv("HEADERS_FILE")) do
  local name, value = line:match("^([^:]+): (.*)$")
  if name then wrk.headers[name] = value end
end
LUA

run() {  # run URL [LUA] → "req/s p99"
  local out
  if [[ -n "${2:-}" ]]; then out="$(BODY_FILE="$3" HEADERS_FILE="$4" wrk -t2 -c16 -d"${DURATION}s" --latency -s "$2" "$1")"
  else out="$(wrk -t2 -c16 -d"${DURATION}s" --latency "$1")"; fi
  echo "$out" >> "$work/wrk.txt"
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx responses: $out" >&2; exit 1; fi
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '/ 99%/ {print $2}')"
}
mbs() { awk -v r="$1" -v s="$2" 'BEGIN { printf "%.1f", r * s / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$tarn_pid/stat"; }  # utime + stime, 1/100 s
requests() { awk '/requests in/ {print $1}' "$work/wrk.txt" | tail -1; }
tick_hz="$(getconf CLK_TCK)"
for round in $(seq "$ROUNDS"); do
  echo "--- round $round of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%-22s %10s %10s %10s\n' test req/s MB/s p99
  declare -A R
  for size in 4k 1m; do
    bytes=$([[ $size == 4k ]] && echo 4096 || echo 1048576)
    read -r n_rps n_p99 <<<"$(run "http://127.0.0.1:$nport/landing/bench/$size.bin")"
    read -r t_rps t_p99 <<<"$(run "$(cat "$work/get-$size.url")")"
    c0="$(cpu_ticks)"
    read -r p_rps p_p99 <<<"$(run "$(cat "$work/put-$size.url")" "$work/put.lua" "$work/$size.bin" "$work/put-$size.headers")"
    c1="$(cpu_ticks)"
    R[cpu_$size]="$(awk -v a="$c0" -v b="$c1" -v n="$(requests)" -v hz="$tick_hz" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }')"
    printf '%-22s %10s %10s %10s\n' "GET $size nginx" "$n_rps" "$(mbs "$n_rps" "$bytes")" "$n_p99"
    printf '%-22s %10s %10s %10s\n' "GET $size tarn" "$t_rps" "$(mbs "$t_rps" "$bytes")" "$t_p99"
    printf '%-22s %10s %10s %10s\n' "PUT $size tarn" "$p_rps" "$(mbs "$p_rps" "$bytes")" "$p_p99"
    R[get_$size]="$(ratio "$t_rps" "$n_rps")"
    R[put_$size]="$(mbs "$p_rps" "$bytes")"
  done
  # What MD5 + SHA-256 over the same bytes allow on this machine (16 KiB blocks, one core).
  md5="$(openssl speed -evp md5 -bytes 16384 -seconds 2 2>/dev/null | awk '/^md5/ {print $NF}' | tr -d k)"
  sha="$(openssl speed -evp sha256 -bytes 16384 -seconds 2 2>/dev/null | awk '/^sha256/ {print $NF}' | tr -d k)"
  both="$(awk -v a="$md5" -v b="$sha" 'BEGIN { printf "%.1f", 1 / (1 / (a * 1000) + 1 / (b * 1000)) / 1048576 }')"
  hash_ms="$(awk -v x="$both" 'BEGIN { printf "%.2f", 1000 / x }')"
  echo "ratio GET 4k tarn/nginx: ${R[get_4k]}   GET 1m tarn/nginx: ${R[get_1m]} (goal >= 0.8)"
  echo "PUT 1m: ${R[put_1m]} MB/s; MD5+SHA-256 on one core allow $both MB/s: $(ratio "${R[put_1m]}" "$both") (goal >= 0.70)"
  echo "server CPU per 1 MiB PUT: ${R[cpu_1m]} ms; MD5+SHA-256 of 1 MiB: $hash_ms ms; CPU ratio $(ratio "$hash_ms" "${R[cpu_1m]}")" \
       "(= the throughput ratio with one core given to the server)"
  echo "server CPU per 4 KiB PUT: ${R[cpu_4k]} ms; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "(every PUT is fsynced before it is answered; the server computes the payload's SHA-256 and its MD5)"
