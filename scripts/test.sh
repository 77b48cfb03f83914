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

echo "== typecheck" >&2
npm run -s typecheck
echo "== lint" >&2
npm run -s lint
echo "== vitest" >&2
npx vitest run "$@"
