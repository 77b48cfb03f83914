#!/usr/bin/env bash
# Installs the Debian packages visittag's test suite and drivers need. Idempotent: does nothing
# when everything is present. Run as root (or through sudo). Called by `npm install` (preinstall)
# and by `npm test`; safe to run by hand: `sudo bash scripts/setup-system.sh`.
#
#   pcscd, libpcsclite-dev  PC/SC daemon and headers (nfc-pcsc compiles against them)
#   vsmartcard-vpcd         virtual PC/SC reader driver for pcscd (the suite's virtual card talks to it)
#   mosquitto               external-broker mode tests and the benchmark's reference broker
#                           (MQTT 5, shared subscriptions, the dynamic security plugin)
#   postgresql              the PostgreSQL store's tests start throw-away clusters from its server
#                           binaries (no system cluster is left running)
#   prometheus              promtool checks and unit-tests the alert rules in ops/prometheus/ (the server
#                           itself is stopped like the others)
#   debootstrap             builds the Debian root in which the reader's .deb is installed and removed
#   iproute2                `ss`: a test reads the MQTT listener's accept-queue depth (mqtt.listenBacklog)
#
# A production install (`npm ci --omit=dev` on a reader, where npm sets NODE_ENV=production) gets only
# what the device needs at run time and install time: pcscd and libpcsclite-dev. It never gets the
# suite's virtual reader (pcscd would list it beside the real one) and never has a service stopped.
set -euo pipefail

mode="${1:-}"
runtime_only=false
if [ "${NODE_ENV:-}" = "production" ] || printf '%s\n' "${npm_config_omit:-}" | grep -qx dev; then
  runtime_only=true
fi
if [ "$runtime_only" = true ]; then
  PACKAGES=(pcscd libpcsclite-dev)
else
  # chromium: the web app's end-to-end and accessibility tests (test/web, playwright-core drives it)
  PACKAGES=(pcscd libpcsclite-dev vsmartcard-vpcd mosquitto mosquitto-clients postgresql prometheus debootstrap iproute2 chromium)
fi

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
clusters_before=""
if command -v pg_lsclusters >/dev/null 2>&1; then clusters_before="$(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}')"; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian starts services on install where an init system runs; the suite starts its own
# pcscd and mosquitto instances, so on a development machine stop the ones this run just installed
# (never on a production install, and never a service that was there before).
if [ "$runtime_only" = false ]; then
  units=()
  for p in "${missing[@]}"; do
    case "$p" in
      mosquitto) units+=(mosquitto) ;;
      pcscd) units+=(pcscd.socket pcscd) ;;
      postgresql) units+=(postgresql) ;;
      prometheus) units+=(prometheus) ;;
    esac
  done
  if [ "${#units[@]}" -gt 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
  fi
  case " ${missing[*]} " in *" mosquitto "*) pkill -x mosquitto >/dev/null 2>&1 || true ;; esac
  # Debian's postgresql creates and starts a `main` cluster on install; the suite makes its own
  # throw-away clusters, so stop the ones this run created (they stay on disk, stopped).
  case " ${missing[*]} " in *" postgresql "*)
    if command -v pg_lsclusters >/dev/null 2>&1; then
      pg_lsclusters -h 2>/dev/null | while read -r ver name _port status _rest; do
        if ! printf '%s\n' "$clusters_before" | grep -qx "$ver/$name" && [ "${status%%,*}" = online ]; then
          pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
        fi
      done
    fi
    ;;
  esac
fi
echo "visittag setup: done" >&2
