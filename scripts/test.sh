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
# versions"). Opt-in with VISITTAG_NODE_MATRIX=1 until a full run of the three majors passes within CI's 30-minute
# budget (CHANGELOG.md, "Node versions"); VISITTAG_NODE_MAJORS picks the majors. Their native addons are built
# while the typecheck and the linter run.
matrix="${VISITTAG_NODE_MATRIX:-0}"
majors="${VISITTAG_NODE_MAJORS:-22 24}"
logs="$(mktemp -d "${TMPDIR:-/tmp}/visittag-test.XXXXXX")"
if [ "$matrix" = 1 ]; then
  VISITTAG_NODE_MAJORS="$majors" bash scripts/node-matrix.sh --prepare-only >"$logs/prepare.log" 2>&1 &
  prepare_pid=$!
fi

echo "== typecheck" >&2
npm run -s typecheck
echo "== lint" >&2
npm run -s lint

if [ "$matrix" != 1 ]; then
  echo "== vitest (node $(node --version))" >&2
  exec npx vitest run "$@"
fi

if ! wait "$prepare_pid"; then
  cat "$logs/prepare.log" >&2
  echo "visittag test: preparing Node ${majors} failed (log above)" >&2
  exit 1
fi
# Node 20 first, then the other majors at the same time, each in its copy (VISITTAG_NODE_MATRIX_OVERLAP=1 starts
# them alongside Node 20 instead: shorter on an idle machine, but three suites on two cores squeeze the suite's
# timing-sensitive tests). Measured times: CHANGELOG.md, "Node versions".
started=$SECONDS
rc20=0
rcm=0
if [ "${VISITTAG_NODE_MATRIX_OVERLAP:-0}" = 1 ]; then
  echo "== vitest on node $(node --version) and, at the same time, on Node ${majors}" >&2
  VISITTAG_NODE_MAJORS="$majors" VISITTAG_NODE_MATRIX_JOBS=2 bash scripts/node-matrix.sh "$@" >"$logs/matrix.log" 2>&1 &
  matrix_pid=$!
  npx vitest run "$@" || rc20=$?
  echo "== node $(node --version): vitest exited $rc20 after $((SECONDS - started)) s" >&2
  wait "$matrix_pid" || rcm=$?
  cat "$logs/matrix.log" >&2
else
  echo "== vitest (node $(node --version))" >&2
  npx vitest run "$@" || rc20=$?
  echo "== node $(node --version): vitest exited $rc20 after $((SECONDS - started)) s" >&2
  echo "== vitest on Node ${majors} at the same time (scripts/node-matrix.sh)" >&2
  VISITTAG_NODE_MAJORS="$majors" VISITTAG_NODE_MATRIX_JOBS=2 bash scripts/node-matrix.sh "$@" || rcm=$?
fi
echo "== node $(node --version): $([ $rc20 = 0 ] && echo passed || echo FAILED); Node ${majors}: $([ $rcm = 0 ] && echo passed || echo FAILED); vitest $((SECONDS - started)) s in all" >&2
[ "$rc20" = 0 ] && [ "$rcm" = 0 ]
