#!/usr/bin/env bash
# Build the browser page's bundle (orchestrator/web/static/build/app.js) from
# orchestrator/web/package-lock.json: `npm ci` when the lock changed since the last install,
# then esbuild. Needs Node.js 18+ and npm; exits 3 (saying so) when they are missing, so
# `make run` can go on without the page's script. With --check it type-checks the sources
# (tsc, strict) instead of bundling them: `make lint` runs that.
set -euo pipefail
mode="${1:-build}"
cd "$(dirname "$0")/../orchestrator/web"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "build_web.sh: Node.js and npm are not installed (Debian: apt-get install nodejs npm)" >&2
  exit 3
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 18 ]; then
  echo "build_web.sh: Node.js $(node --version) is too old; the page needs Node.js 18 or newer" >&2
  exit 3
fi
# npm records what it installed in node_modules/.package-lock.json: reinstall when the lock
# is newer (or nothing is installed yet).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ "$mode" = "--check" ]; then
  npm run --silent typecheck >&2
else
  npm run --silent build >&2
fi
