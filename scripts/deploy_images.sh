#!/usr/bin/env bash
# Build the container images with podman, on a machine that can pull nothing.
#
#   scripts/deploy_images.sh bases     # local stand-ins for the pinned upstream bases (cached)
#   scripts/deploy_images.sh build     # bases, then the orchestrator and Piper worker images
#   scripts/deploy_images.sh env       # print the podman/compose environment (eval-able)
#
# Bases. The Dockerfiles pin upstream images (docker.io/library/debian:<dated>-slim, and
# docker.io/library/redis for the compose files). Where they cannot be pulled, this script
# makes stand-ins and tags them with the same names: Debian with `debootstrap --variant=minbase`
# from the mirror that apt's own source list names (read at run time), slimmed the way the
# upstream `-slim` images are; Redis as Debian's redis-server (the same 7.0.15) on that base.
# Each base is saved once as an archive under
#   ${VOICE_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator}/images/
# and loaded from there when podman's storage lacks it, so debootstrap runs once per machine.
#
# Builds install from PyPI with this machine's pip configuration and CA bundle given to the
# build as secrets (mounted for the one RUN that downloads, never stored in a layer):
# pip's highest-priority config file and the bundle pip uses (PIP_CERT, pip's `cert`, then
# SSL_CERT_FILE). Builds use the host network, as a pull would.
#
# podman reads deploy/podman/containers.conf unless CONTAINERS_CONF names another file.
# Environment: IMAGE_REGISTRY (default localhost), IMAGE_TAG (default: the project version).
# stdout carries only what `env` prints; progress goes to stderr.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd -P)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}"
cache_root="${VOICE_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voice-orchestrator}"
image_cache="$cache_root/images"
registry="${IMAGE_REGISTRY:-localhost}"
tag="${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n 1)}"
ORCHESTRATOR_IMAGE="$registry/voice-orchestrator/orchestrator:$tag"
PIPER_IMAGE="$registry/voice-orchestrator/tts-piper:$tag"

log() { printf 'deploy_images.sh: %s\n' "$*" >&2; }
die() { printf 'deploy_images.sh: error: %s\n' "$*" >&2; exit 1; }

# The single source of each pinned base name is the file that uses it.
debian_base="$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$repo/docker/Dockerfile.orchestrator" | head -n 1)"
redis_base="$(sed -n 's/^ *image: \(docker.io\/library\/redis:[^ ]*\)$/\1/p' "$repo/docker-compose.prod.yml" | head -n 1)"
[[ -n "$debian_base" ]] || die "no 'ARG BASE_IMAGE=' in docker/Dockerfile.orchestrator"
[[ -n "$redis_base" ]] || die "no docker.io/library/redis image in docker-compose.prod.yml"
suite="$(printf '%s' "$debian_base" | sed -n 's/.*:\([a-z]*\)-.*/\1/p')"
[[ -n "$suite" ]] || die "cannot read the Debian suite from $debian_base"

# The first Debian archive URI (not -security) that apt's source list uses for $suite.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v s="$suite" '$1 == "deb" && $0 !~ /security/ {
        for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == s) { print $i; exit } break }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # deb822 stanzas: print the URIs of a stanza whose Suites has $suite, unless security.
    awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" } {
        uris = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Types:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
          if ($i ~ /^Suites:/) { n = split($i, w, /[ \t]+/); for (j = 2; j <= n; j++) if (w[j] == s) ok = 1 }
        }
        if (ok && deb && uris !~ /security/) { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f"
  done
}

apt_security_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    grep -v '^[[:space:]]*#' "$f" | grep -Eo '[a-z]+://[^ ]*security[^ ]*' | head -n 1
  done | head -n 1
}

cache_file() { printf '%s/%s.tar' "$image_cache" "$(printf '%s' "$1" | tr '/:@' '___')"; }

# Make the image present in podman's storage: already there, loaded from the cache, or built.
ensure_base() {
  local image="$1" builder="$2" archive
  archive="$(cache_file "$image")"
  if podman image exists "$image"; then
    log "base $image: present"
  elif [[ -s "$archive" ]] && podman load -q -i "$archive" >&2 && podman image exists "$image"; then
    log "base $image: loaded from $archive"
  else
    "$builder" "$image"
    mkdir -p "$image_cache"
    podman save -q --format docker-archive -o "$archive.tmp" "$image" >&2
    mv -f "$archive.tmp" "$archive"
    log "base $image: built and cached in $archive"
  fi
}

build_debian() {
  local image="$1" mirror security rootfs
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (scripts/system_deps.sh installs it)"
  mirror="$(apt_mirror | head -n 1)"
  [[ -n "$mirror" ]] || die "no '$suite' source in /etc/apt/sources.list or /etc/apt/sources.list.d/"
  security="$(apt_security_mirror)"
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/debian-rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this very folder
  trap "rm -rf '$rootfs'" RETURN
  log "debootstrap --variant=minbase $suite from $mirror (a few minutes, once)"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >&2 \
    || die "debootstrap $suite $mirror failed (see above)"
  # What the upstream -slim images do: no docs, man pages or locales, apt cleans after itself.
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -f "$rootfs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$suite" "$suite"
    if [[ -n "$security" ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$security" "$suite"
    fi
  } > "$rootfs/etc/apt/sources.list.d/debian.sources"
  : > "$rootfs/etc/hostname"
  : > "$rootfs/etc/resolv.conf"
  tar --numeric-owner --xattrs -C "$rootfs" -c . \
    | podman import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL org.opencontainers.image.description=local stand-in for $image (debootstrap $suite, Debian $(cat "$rootfs/etc/debian_version"))" \
        - "$image" >&2
}

build_redis() {
  local image="$1" version
  version="$(printf '%s' "$image" | sed -n 's/.*:\([0-9.]*\)-.*/\1/p')"
  ensure_base "$debian_base" build_debian
  log "building $image from Debian's redis-server $version"
  # Like the upstream image: user redis is 999:999 and owns /data, redis-server is the command.
  podman build --network host --format docker --pull=never -t "$image" -f - "$repo/docker" >&2 <<EOF
FROM $debian_base
RUN groupadd --system --gid 999 redis \\
 && useradd --system --uid 999 --gid 999 --home-dir /data --no-create-home redis \\
 && apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* \\
 && redis-server --version | grep -q "v=$version " \\
 && mkdir -p /data && chown 999:999 /data
WORKDIR /data
USER 999:999
EXPOSE 6379
CMD ["redis-server"]
EOF
}

bases() {
  command -v podman >/dev/null 2>&1 || die "podman is not installed (scripts/system_deps.sh installs it)"
  ensure_base "$debian_base" build_debian
  ensure_base "$redis_base" build_redis
}

pip_config_file() {
  local f
  for f in "${PIP_CONFIG_FILE:-}" "${VIRTUAL_ENV:+$VIRTUAL_ENV/pip.conf}" \
           "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" "$HOME/.pip/pip.conf" \
           /etc/xdg/pip/pip.conf /etc/pip.conf; do
    if [[ -n "$f" && -f "$f" ]]; then printf '%s\n' "$f"; return; fi
  done
}

ca_bundle() {
  local f
  for f in "${PIP_CERT:-}" "$(python3 -m pip config get global.cert 2>/dev/null || true)" \
           "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n "$f" && -f "$f" ]]; then printf '%s\n' "$f"; return; fi
  done
}

build_image() {
  local image="$1" dockerfile="$2" conf ca
  local -a secrets=()
  conf="$(pip_config_file)"
  ca="$(ca_bundle)"
  [[ -n "$conf" ]] && secrets+=(--secret "id=pip_conf,src=$conf")
  [[ -n "$ca" ]] && secrets+=(--secret "id=ca_bundle,src=$ca")
  log "building $image from $dockerfile${conf:+ (pip config $conf)}${ca:+ (CA bundle $ca)}"
  local start=$SECONDS
  podman build --network host --format docker --pull=never --layers \
    "${secrets[@]}" -f "$repo/$dockerfile" -t "$image" "$repo" >&2 \
    || die "podman build of $image failed (see above)"
  log "built $image in $((SECONDS - start)) s, $(podman image inspect --format '{{.Size}}' "$image") bytes"
}

case "${1:-build}" in
  bases) bases ;;
  build)
    bases
    build_image "$ORCHESTRATOR_IMAGE" docker/Dockerfile.orchestrator
    build_image "$PIPER_IMAGE" docker/Dockerfile.tts
    ;;
  env)
    printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
    printf 'export ORCHESTRATOR_IMAGE=%q PIPER_IMAGE=%q\n' "$ORCHESTRATOR_IMAGE" "$PIPER_IMAGE"
    ;;
  -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2 ;;
  *) die "unknown command: $1 (expected bases, build, env or --help)" ;;
esac
