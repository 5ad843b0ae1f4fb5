#!/usr/bin/env bash
# Tarn's two README commands and their helpers. Each does all of its own set-up.
#   ./tarn.sh demo [--fresh]  set up, build, start the whole lake with simulated sensors
#   ./tarn.sh test            set up, build, run every unit and integration test
#   ./tarn.sh build           set up and build; the last line is the tarn binary's path
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
BUILD="${TARN_BUILD_DIR:-$ROOT/build}"
ASAN_BUILD="${TARN_ASAN_BUILD_DIR:-$ROOT/build-asan}"
JOBS="${TARN_JOBS:-$(nproc)}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/tarn-ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# Paths relative to the checkout, so clones and worktrees share cache hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

install_deps() { "$ROOT/scripts/install.sh"; }

configure() {  # configure DIR [cmake args…]
  local dir="$1"; shift
  if [[ ! -f "$dir/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
}

build_main() {
  configure "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$BUILD" -j "$JOBS" -- -k 0 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking|Re-checking)|^ninja: no work to do' || true; }
  [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "tarn: build failed" >&2; exit 1; }
}

build_asan() {
  configure "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DTARN_SANITIZE=ON -DTARN_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1"
  cmake --build "$ASAN_BUILD" -j "$JOBS" --target unit_tests -- -k 0 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\] (Building|Linking|Re-checking)|^ninja: no work to do' || true; }
  [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "tarn: sanitizer build failed" >&2; exit 1; }
}

# Runs ctest in DIR with extra args; appends "passed failed" counts to $COUNTS.
run_ctest() {
  local dir="$1"; shift
  local log; log="$(mktemp)"
  local rc=0
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@") 2>&1 | tee "$log" || rc=$?
  rc=${PIPESTATUS[0]}
  local line total failed
  line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)"
  total="$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")"
  failed="$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")"
  if [[ -z "$line" ]]; then total=0; failed=1; fi
  PASSED=$((PASSED + total - failed)); FAILED=$((FAILED + failed))
  rm -f "$log"
  return 0
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  build)
    install_deps
    build_main
    echo "$BUILD/bin/tarn"
    ;;
  test)
    install_deps
    build_main
    build_asan
    PASSED=0; FAILED=0
    echo "== unit tests under AddressSanitizer + UBSan =="
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest "$ASAN_BUILD" -L unit
    echo "== unit and integration tests =="
    run_ctest "$BUILD"
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
    ;;
  demo)
    install_deps
    build_main
    exec "$ROOT/scripts/demo.sh" "$BUILD/bin/tarn" "$@"
    ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    [[ "$cmd" == help || "$cmd" == --help || "$cmd" == -h ]]
    ;;
esac
