#!/usr/bin/env bash
# Installs the Debian packages visittag's test suite and drivers need. Idempotent: does nothing
# when everything is present. Run as root (or through sudo). Called by `npm install` (preinstall)
# and by `npm test`; safe to run by hand: `sudo bash scripts/setup-system.sh`.
#
#   pcscd, libpcsclite-dev  PC/SC daemon and headers (nfc-pcsc compiles against them)
#   vsmartcard-vpcd         virtual PC/SC reader driver for pcscd (the suite's virtual card talks to it)
#   mosquitto               external-broker mode tests and the benchmark's reference broker
set -euo pipefail

PACKAGES=(pcscd libpcsclite-dev vsmartcard-vpcd mosquitto mosquitto-clients)
mode="${1:-}"

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "visittag setup: missing system packages (${missing[*]}) and no apt-get here." >&2
  echo "  Install the equivalents of: ${missing[*]} with your package manager." >&2
  [ "$mode" = "--best-effort" ] && exit 0 || exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "visittag setup: missing system packages: ${missing[*]}" >&2
  echo "  Fix: sudo bash scripts/setup-system.sh   (then run npm install again)" >&2
  [ "$mode" = "--best-effort" ] && exit 0 || exit 1
fi

echo "visittag setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian starts services on install where an init system runs; the suite starts its own
# pcscd and mosquitto instances, so stop the system ones to keep the ports and socket free.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now mosquitto pcscd.socket pcscd >/dev/null 2>&1 || true
fi
pkill -x mosquitto >/dev/null 2>&1 || true
echo "visittag setup: done" >&2
