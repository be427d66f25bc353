#!/usr/bin/env bash
# System tools the checks need beyond Python and npm: promtool (Prometheus's rule checker)
# and chromium (the console's browser tests drive it with Playwright; `playwright install`
# is never used). Installs them from Debian when missing and this user can; says what to
# install otherwise.
set -euo pipefail
if ! [ -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing chromium (Debian package chromium, for the console's browser tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  else
    echo "chromium is missing: install it (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi
command -v promtool >/dev/null && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing promtool (Debian package prometheus)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  # The package starts a Prometheus server; Herald's checks need only its promtool.
  (systemctl stop prometheus || pkill -x prometheus) >/dev/null 2>&1 || true
  exit 0
fi
echo "promtool is missing: install Prometheus's tools (Debian: apt-get install prometheus)" >&2
exit 1
