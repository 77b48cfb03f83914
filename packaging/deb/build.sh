#!/usr/bin/env bash
# Builds the reader's Debian package from the firmware bundle:
#   dist/deb/visittag-reader_<version>_<arch>.deb
# Run it on the kind of machine the readers are (a Raspberry Pi OS arm64 build host for Pis): the bundle itself is
# architecture-independent JavaScript, but the native addons it loads (better-sqlite3 and the PC/SC binding) are
# compiled for this machine's CPU and this Node major, so the package is per architecture and depends on the same
# Node major (`nodejs (>= N), nodejs (<< N+1)`, N >= 20).
#
# Usage: bash packaging/deb/build.sh [OUT_DIR]     (needs: node_modules installed with the PC/SC driver, dpkg-deb)
# Prints the path of the .deb.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/packaging/deb"
out="${1:-$repo/dist/deb}"
cd "$repo"

version="$(node -p "require('./package.json').version")"
arch="$(dpkg --print-architecture)"
major="$(node -p "process.versions.node.split('.')[0]")"
if [ "$major" -lt 20 ]; then
  echo "packaging: Node $major is too old; build with Node 20 or newer" >&2
  exit 1
fi
for addon in better-sqlite3/build/Release/better_sqlite3.node @pokusew/pcsclite/build/Release/pcsclite.node; do
  if [ ! -f "node_modules/$addon" ]; then
    echo "packaging: node_modules/$addon is missing. Fix: sudo bash scripts/setup-system.sh && npm ci" >&2
    exit 1
  fi
done

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
app="$root/opt/visittag"
mkdir -p "$app/bin" "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/polkit-1/rules.d" "$root/etc/modprobe.d" "$root/usr/share/doc/visittag-reader"

# The firmware bundle and the shim that runs it.
npx tsx device/scripts/bundle.ts "$app/dist/bundle/device" >&2
cp bin/visittag-device.js "$app/bin/visittag-device.js"
chmod 0755 "$app/bin/visittag-device.js"
printf '{ "name": "visittag-reader", "version": "%s", "private": true, "type": "module" }\n' "$version" >"$app/package.json"
ln -s /opt/visittag/bin/visittag-device.js "$root/usr/bin/visittag-device"

# The packages the bundle leaves external (native code), with their run-time dependencies.
node "$here/copy-runtime-modules.mjs" "$repo/node_modules" "$app/node_modules" better-sqlite3 nfc-pcsc >&2

# System integration: the unit (its Documentation= points into the package), polkit rules, the pn533 blacklist.
sed 's#^Documentation=.*#Documentation=file:///usr/share/doc/visittag-reader/README.md#' \
  device/systemd/visittag-device.service >"$root/lib/systemd/system/visittag-device.service"
cp "$here/files/60-visittag-pcscd.rules" "$here/files/61-visittag-timesyncd.rules" "$root/etc/polkit-1/rules.d/"
cp "$here/files/blacklist-visittag-nfc.conf" "$root/etc/modprobe.d/"
cp device/README.md "$root/usr/share/doc/visittag-reader/README.md"
cp docs/technician.md "$root/usr/share/doc/visittag-reader/technician.md"

size_kb="$(du -sk "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAJOR@/$major/" -e "s/@NEXT@/$((major + 1))/" \
  -e "s/@SIZE@/$size_kb/" "$here/control.in" >"$root/DEBIAN/control"
cp "$here/conffiles" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done

mkdir -p "$out"
deb="$out/visittag-reader_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
