#!/usr/bin/env bash
# System packages the tests and `make run` use from Debian: installed when missing.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Monitoring tests: a real Prometheus (with promtool) and Alertmanager (with amtool).
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# Deploy kit tests: podman (with runc) runs the images, debootstrap makes the base images,
# caddy validates the Caddyfile.
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
# Encoder tests: FAAD2 decodes our ADTS AAC independently of the FFmpeg that wrote it.
command -v faad >/dev/null 2>&1 || need+=(faad)
# Listening tests and the barge-in benchmark: the listener speaks in espeak-ng's voices.
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# The browser page: Node.js and npm build its bundle (from orchestrator/web/package-lock.json);
# its tests drive Debian's Chromium with Playwright, with a font to render the screenshot.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "missing ${need[*]}: install them with apt-get (root needed)" >&2
  exit 1
fi
