#!/bin/sh
# Installs the Debian packages the test-suite needs, only when they are missing.
# Idempotent and quiet when everything is present. Needs root (CI and dev machines run as root).
set -eu
need=""
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need="$need chromium"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
else
    SUDO=""
fi
echo "installing Debian packages:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
