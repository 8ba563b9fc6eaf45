#!/usr/bin/env bash
# Build (once) and print the path of a real livekit-server binary, for integration tests.
#
#   bin=$(scripts/livekit_server.sh)        # builds on first use, then reuses the cached binary
#   scripts/livekit_server.sh --print-version
#
# The binary is built from the livekit-server Go module with the machine's Go toolchain and
# cached outside the repository, in
#   ${LIVEKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator/livekit-server}/<version>/
# livekit-server's go.mod may carry `replace` directives (v1.13.6+ do), which `go install
# module@version` refuses: so the module source is downloaded into the Go module cache, copied
# to a writable temp folder and built there.
#
# stdout carries only the binary's absolute path; all progress goes to stderr.
set -euo pipefail

# v1.13.6+ replace pion modules with livekit forks (github.com/livekit/{webrtc-pion,ice,dtls})
# that the Go module proxy does not serve; v1.13.5 is the newest release that builds from it.
LIVEKIT_SERVER_VERSION=v1.13.5
LIVEKIT_SERVER_MODULE=github.com/livekit/livekit-server

log() { printf 'livekit_server.sh: %s\n' "$*" >&2; }
die() { printf 'livekit_server.sh: error: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  "") ;;
  --print-version) printf '%s\n' "$LIVEKIT_SERVER_VERSION"; exit 0 ;;
  -h|--help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 0 ;;
  *) die "unknown argument: $1 (expected no argument, --print-version or --help)" ;;
esac

cache_root="${LIVEKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator/livekit-server}"
dest_dir="$cache_root/$LIVEKIT_SERVER_VERSION"
bin="$dest_dir/livekit-server"

binary_works() { [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; }

if binary_works; then
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "step 'check toolchain': go is not on PATH"
mkdir -p "$dest_dir" || die "step 'create cache dir': cannot create $dest_dir"
dest_dir="$(cd "$dest_dir" && pwd -P)"
bin="$dest_dir/livekit-server"

# Serialise concurrent callers: whoever gets the lock first builds, the others then reuse.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dest_dir/.build.lock" || die "step 'lock': cannot open $dest_dir/.build.lock"
  log "waiting for build lock $dest_dir/.build.lock"
  flock 9 || die "step 'lock': flock failed on $dest_dir/.build.lock"
  if binary_works; then
    printf '%s\n' "$bin"
    exit 0
  fi
else
  log "flock not found; building without a lock"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/livekit-server-build.XXXXXX")" \
  || die "step 'create temp dir' failed"
tmp_bin=""
cleanup() {
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
  if [[ -n "$tmp_bin" ]]; then rm -f "$tmp_bin"; fi
}
trap cleanup EXIT

log "building $LIVEKIT_SERVER_MODULE@$LIVEKIT_SERVER_VERSION with $(go version) (takes minutes)"
start=$SECONDS

# Run `go mod download` outside any module so a go.mod/go.work around us cannot interfere.
mod_json="$(cd "$work" && GOFLAGS= GOWORK=off \
  go mod download -json "$LIVEKIT_SERVER_MODULE@$LIVEKIT_SERVER_VERSION")" \
  || die "step 'go mod download $LIVEKIT_SERVER_MODULE@$LIVEKIT_SERVER_VERSION' failed: $mod_json"
mod_dir="$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$mod_dir" && -f "$mod_dir/go.mod" ]] \
  || die "step 'locate module source': no usable Dir in go mod download output: $mod_json"

src="$work/src"
cp -R "$mod_dir" "$src" || die "step 'copy module source' from $mod_dir failed"
chmod -R u+w "$src" || die "step 'make source writable' failed"

tmp_bin="$(mktemp "$dest_dir/.livekit-server.tmp.XXXXXX")" || die "step 'create temp binary' failed"
log "go build -o $tmp_bin ./cmd/server  (in $src)"
(cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off \
  go build -trimpath -o "$tmp_bin" ./cmd/server) \
  || die "step 'go build ./cmd/server' failed (see the go output above)"

"$tmp_bin" --version >/dev/null 2>&1 \
  || die "step 'check built binary': $tmp_bin --version does not run"
chmod 0755 "$tmp_bin"
mv -f "$tmp_bin" "$bin" || die "step 'install binary' to $bin failed"
tmp_bin=""

log "built $bin in $((SECONDS - start)) s ($("$bin" --version 2>&1 | head -n 1))"
printf '%s\n' "$bin"
