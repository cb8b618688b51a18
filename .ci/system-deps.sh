#!/usr/bin/env bash
# Installs the Debian packages the test tiers run against, only when they are missing.
# The tests start and stop their own instances on free loopback ports; nothing runs as a service.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the packaged service; the tests run their own instances on free ports.
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  $SUDO service mosquitto stop >/dev/null 2>&1 || true
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  $SUDO service postgresql stop >/dev/null 2>&1 || true
  $SUDO systemctl disable --now victoria-metrics >/dev/null 2>&1 || true
  $SUDO service victoria-metrics stop >/dev/null 2>&1 || true
fi
