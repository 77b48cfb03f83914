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

echo "== typecheck" >&2
npm run -s typecheck
echo "== lint" >&2
npm run -s lint
echo "== vitest (node $(node --version))" >&2
npx vitest run "$@"
# The other Node majors (scripts/node-matrix.sh: Node binaries and headers from the npm registry's `node` package,
# native addons rebuilt per major in a cached copy of the tree; CONTRIBUTING.md, "Node versions"). Opt-in for
# now (VISITTAG_NODE_MATRIX=1, majors in VISITTAG_NODE_MAJORS, default 22): on Node 24 better-sqlite3 12 aborts
# when a statement is collected after its environment is gone, and on Node 22 the device crash test confirms too
# few taps; both are open findings (CHANGELOG.md, "Node versions (open)").
if [ "${VISITTAG_NODE_MATRIX:-0}" = 1 ]; then
  echo "== vitest on the other Node majors (${VISITTAG_NODE_MAJORS:-22})" >&2
  VISITTAG_NODE_MAJORS="${VISITTAG_NODE_MAJORS:-22}" bash scripts/node-matrix.sh "$@"
fi
