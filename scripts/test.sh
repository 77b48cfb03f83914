#!/usr/bin/env bash
# The full test suite, exactly as CI runs it (.ci/run calls `npm test`).
# Gates: system packages present, typecheck, lint + format, then vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ]; then
  echo "visittag test: node_modules missing; running npm ci" >&2
  npm ci
fi
# npm runs the root `preinstall` (our system setup) only AFTER the dependencies are installed, so on a
# fresh machine the optional nfc-pcsc driver was skipped for lack of libpcsclite-dev. Now that the
# system packages are in place, install again so the PC/SC driver and its suite are really there.
if [ ! -f node_modules/@pokusew/pcsclite/build/Release/pcsclite.node ] || [ ! -d node_modules/nfc-pcsc ]; then
  echo "visittag test: the nfc-pcsc driver is not built (system headers were missing at install); running npm ci again" >&2
  npm ci
fi
if [ ! -f node_modules/@pokusew/pcsclite/build/Release/pcsclite.node ]; then
  echo "visittag test: nfc-pcsc still failed to build. Fix: sudo bash scripts/setup-system.sh && npm ci" >&2
  exit 1
fi

# The other Node majors (22 and 24; scripts/node-matrix.sh: Node binaries and headers from the npm registry's
# `node` package, native addons rebuilt per major in a cached copy of the tree; CONTRIBUTING.md, "Node
# versions"). They run by default (VISITTAG_NODE_MATRIX=1; 0: this machine's Node only). Three majors from a
# fresh clone took 19.9 minutes on a quiet 2-core machine (CHANGELOG.md "Node versions"); VISITTAG_NODE_MAJORS
# picks them. Their native addons are built while the typecheck and the linter run.
matrix="${VISITTAG_NODE_MATRIX:-1}"
majors="${VISITTAG_NODE_MAJORS:-22 24}"
logs="$(mktemp -d "${TMPDIR:-/tmp}/visittag-test.XXXXXX")"
if [ "$matrix" = 1 ]; then
  (
    rc=0
    VISITTAG_NODE_MAJORS="$majors" bash scripts/node-matrix.sh --prepare-only >"$logs/prepare.log" 2>&1 || rc=$?
    echo "$rc" >"$logs/prepare.rc"
  ) &
fi
# Waits (bounded, 30 min) for the other majors' trees; fails, with the build's log, if they could not be built.
prepared() {
  local i
  for ((i = 0; i < 1800; i++)); do
    if [ -f "$logs/prepare.rc" ]; then
      if [ "$(cat "$logs/prepare.rc")" = 0 ]; then return 0; fi
      cat "$logs/prepare.log" >&2
      echo "visittag test: preparing Node ${majors} failed (log above)" >&2
      return 1
    fi
    sleep 1
  done
  echo "visittag test: preparing Node ${majors} took over 30 minutes (log: $logs/prepare.log)" >&2
  return 1
}

echo "== typecheck" >&2
npm run -s typecheck
echo "== lint" >&2
npm run -s lint

# Chosen files (`npm test -- test/x`): one vitest per major over them, nothing else.
if [ "$#" -gt 0 ]; then
  rc=0
  echo "== vitest $* (node $(node --version))" >&2
  npx vitest run "$@" || rc=$?
  if [ "$matrix" = 1 ]; then
    if prepared; then
      VISITTAG_NODE_MAJORS="$majors" bash scripts/node-matrix.sh --prepared "$@" || rc=1
    else
      rc=1
    fi
  fi
  exit $rc
fi

# The whole suite, as two lanes per major (vitest.config.ts has the projects; CONTRIBUTING.md, "How the suite
# runs"):
#   main   the shared and own-process projects, on VISITTAG_TEST_WORKERS workers (default 2). With several
#          majors, every major's main lane at once, so the CPU one lane leaves idle while it waits on sockets,
#          PostgreSQL and the browser goes to another.
#   alone  the crash and chaos files, one at a time with no main lane beside them. With several majors, every
#          major's alone lane at once (each lane still one file at a time): one alone file keeps about 0.7 of a
#          core busy (it waits on restarts, timers and PostgreSQL), so major after major left the machine half
#          idle for some 10 minutes. On the other majors with a third of the SIGKILL and chaos rounds
#          (VISITTAG_TEST_ROUNDS_SCALE, default 0.34; test/support/rounds.ts): the same code paths and
#          invariants, checked fewer times.
# The other majors' lanes keep V8's compiled code between their processes (NODE_COMPILE_CACHE, Node 22.1 and
# later; a directory per major under the logs): each gateway and device child the tests start loads the same
# bundle again.
all="host"
if [ "$matrix" = 1 ]; then all="host $majors"; fi
summary="$logs/summary"
: >"$summary"

label() { if [ "$1" = host ]; then echo "node $(node --version)"; else echo "node $1"; fi; }

# lane MAJOR NAME [vitest args...]: vitest for one major, its output into $logs/NAME-MAJOR.log, a line in the summary.
lane() {
  local major="$1" name="$2" rc=0 t=$SECONDS
  shift 2
  local log="$logs/$name-$major.log"
  if [ "$major" = host ]; then
    npx vitest run "$@" >"$log" 2>&1 || rc=$?
  else
    # the checks of the repository's files (vitest.config.ts, STATIC) ran on this machine's Node already
    VISITTAG_TEST_STATIC=0 NODE_COMPILE_CACHE="$logs/compile-cache-$major" VISITTAG_NODE_MAJORS="$major" \
      bash scripts/node-matrix.sh --prepared "$@" >"$log" 2>&1 || rc=$?
  fi
  printf '%-12s %-6s %-7s %5s s\n' "$(label "$major")" "$name" "$([ $rc = 0 ] && echo passed || echo FAILED)" \
    "$((SECONDS - t))" >>"$summary"
  return $rc
}

started=$SECONDS
status=0
extra=""
if [ "$matrix" = 1 ]; then extra="$majors"; fi
echo "== vitest on $(for m in $all; do label "$m"; done | paste -sd, -): lane main (logs in $logs)" >&2
# This machine's Node starts at once; the other majors as soon as their trees are built.
main_pids=()
lane host main --project shared --project own-process &
main_pids+=("$!")
for m in $extra; do
  (prepared && lane "$m" main --project shared --project own-process) &
  main_pids+=("$!")
done
for pid in "${main_pids[@]}"; do wait "$pid" || status=1; done
for m in $all; do cat "$logs/main-$m.log" 2>/dev/null >&2 || true; done
echo "== lane alone, every major at once ($((SECONDS - started)) s so far)" >&2
alone_pids=()
lane host alone --project alone &
alone_pids+=("$!")
for m in $extra; do
  if [ -f "$logs/prepare.rc" ] && [ "$(cat "$logs/prepare.rc")" = 0 ]; then
    (VISITTAG_TEST_ROUNDS_SCALE="${VISITTAG_TEST_ROUNDS_SCALE:-0.34}" lane "$m" alone --project alone) &
    alone_pids+=("$!")
  fi
done
for pid in "${alone_pids[@]}"; do wait "$pid" || status=1; done
for m in $all; do cat "$logs/alone-$m.log" 2>/dev/null >&2 || true; done
echo "== summary: vitest $((SECONDS - started)) s in all" >&2
cat "$summary" >&2
# What failed, at the very end: a CI page that keeps only the head and the tail of a long output still names
# the failing files and tests (the lanes' full logs are above, and in $logs).
if [ "$status" != 0 ]; then
  for f in "$logs"/main-*.log "$logs"/alone-*.log; do
    [ -f "$f" ] || continue
    digest="$(sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -E '^ *(FAIL |× |✗ )|Test Files|Tests  |AssertionError|Error: ' | head -n 60 || true)"
    if grep -qE '^ *(FAIL |× |✗ )|failed' <<<"$digest"; then
      echo "== failures in $(basename "$f" .log)" >&2
      echo "$digest" >&2
    fi
  done
fi
exit $status
