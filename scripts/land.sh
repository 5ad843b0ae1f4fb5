#!/usr/bin/env bash
# Lands the current worktree's commits on main (parallel-worktree workflow, see
# docs/development.md): rebase onto main, build, run the unit tests and the given ctest
# regex, then move main forward only if nobody else moved it meanwhile (compare-and-swap).
#   scripts/land.sh [CTEST_REGEX]
set -euo pipefail
ROOT="$(git rev-parse --show-toplevel)"
cd "$ROOT"
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "land: commit or stash your changes first" >&2; exit 1
fi
for attempt in 1 2 3 4 5; do
  old="$(git rev-parse main)"
  git rebase -q "$old" || { echo "land: rebase onto main has conflicts: resolve, 'git rebase --continue', rerun" >&2; exit 1; }
  TARN_JOBS="${TARN_JOBS:-2}" ./tarn.sh build >/dev/null
  (cd build && ctest -j2 --output-on-failure -L unit >/tmp/land-$$.log 2>&1) || {
    tail -50 /tmp/land-$$.log; echo "land: tests failed; main not moved" >&2; exit 1; }
  if [[ -n "${1:-}" ]]; then
    (cd build && ctest -j2 --output-on-failure -R "$1" >/tmp/land-$$.log 2>&1) || {
      tail -50 /tmp/land-$$.log; echo "land: tests failed; main not moved" >&2; exit 1; }
  fi
  if git update-ref refs/heads/main HEAD "$old" 2>/dev/null; then
    echo "land: main is now $(git rev-parse --short HEAD)"; exit 0
  fi
  echo "land: main moved while testing; rebasing again" >&2
done
echo "land: gave up after 5 attempts" >&2; exit 1
