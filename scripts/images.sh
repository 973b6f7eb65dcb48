#!/usr/bin/env bash
# Builds the compose stack's images on a machine with a Docker engine but no
# container registry (nothing can be pulled):
#   1. the base image hostwright/debian-base:bookworm, imported from a
#      debootstrap root file system that already holds every Debian package any
#      of the stack's images needs (so the Dockerfiles install nothing here).
#      Made once: skipped while the image exists with the current package list;
#      the rootfs tarball stays under .hostwright/images/ so that a removed
#      image is re-imported in seconds instead of bootstrapped again;
#   2. the release binaries (hostwright, securemx-mock, billing-sink), copied
#      into the build contexts under deploy/;
#   3. the stack's images (`compose build`), FROM that base.
# The Dockerfiles take the base as a build argument (BASE_IMAGE, default
# debian:bookworm), so the same files build from the public image elsewhere.
#
# `scripts/images.sh base` stops after step 1; other arguments go to
# `compose build` (e.g. a service name).
# Environment: HW_DEBIAN_MIRROR overrides the mirror read from apt's sources;
# HW_IMAGES_SKIP_CARGO=1 uses the release binaries already in target/release.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/compose.sh
. "$ROOT/scripts/compose.sh"

BASE_IMAGE=hostwright/debian-base:bookworm
SUITE=bookworm
CACHE="$ROOT/.hostwright/images"
# Every package of every image (deploy/*/Dockerfile name theirs again for
# builds from the public image).
BASE_PACKAGES=(
  openssh-server openssh-client
  nginx
  pure-ftpd
  bind9 bind9-utils bind9-dnsutils
  postgresql postgresql-client
  openssl ca-certificates libssl3 curl procps
)
BINARIES=(hostwright securemx-mock billing-sink)
# Build context of each binary (copied to deploy/<dir>/build/).
declare -A CONTEXT=([hostwright]=hostwright [securemx-mock]=securemx [billing-sink]=billing)

log() { echo "images: $*"; }

# The Debian mirror apt already uses (deb822 .sources or one-line .list).
debian_mirror() {
  if [ -n "${HW_DEBIAN_MIRROR:-}" ]; then
    echo "$HW_DEBIAN_MIRROR"
    return
  fi
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        u = ""; s = 0; c = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u = a[1] }
          if ($i ~ /^Suites:/ && (" " $i " ") ~ (" " suite " ")) s = 1
          if ($i ~ /^Components:/ && (" " $i " ") ~ / main /) c = 1
        }
        if (u != "" && s && c) { print u; exit }
      }' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      uri="$(awk -v suite="$SUITE" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite) { print $i; exit }
        }' "$f")"
      [ -n "$uri" ] && break
    done
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Identifies the base's content: a changed package list makes a new base.
base_stamp() {
  printf '%s\n' "$SUITE" minbase "${BASE_PACKAGES[@]}" | sha256sum | cut -c1-16
}

build_base() {
  local stamp tarball have
  stamp="$(base_stamp)"
  have="$(docker image inspect -f '{{ index .Config.Labels "org.hostwright.base-stamp" }}' \
    "$BASE_IMAGE" 2>/dev/null || true)"
  if [ "$have" = "$stamp" ]; then
    log "base $BASE_IMAGE cached"
    return
  fi
  mkdir -p "$CACHE"
  tarball="$CACHE/debian-base-$SUITE-$stamp.tar"
  if ! [ -s "$tarball" ]; then
    local mirror rootfs t0
    mirror="$(debian_mirror)"
    rootfs="$CACHE/rootfs-$stamp"
    rm -rf "$rootfs"
    t0=$SECONDS
    log "debootstrap --variant=minbase $SUITE from $mirror (once; takes about a minute)"
    local inc
    inc="$(IFS=,; echo "${BASE_PACKAGES[*]}")"
    if ! debootstrap --variant=minbase --include="$inc" "$SUITE" "$rootfs" "$mirror" \
      >"$CACHE/debootstrap.log" 2>&1; then
      echo "images: debootstrap failed; see $CACHE/debootstrap.log" >&2
      tail -n 20 "$CACHE/debootstrap.log" >&2
      exit 1
    fi
    # No secret may be baked into an image: the packages' postinst scripts
    # generated host keys, an rndc key, a snakeoil key and a PostgreSQL
    # cluster; the containers get theirs from the `secrets` volume.
    rm -f "$rootfs"/etc/ssh/ssh_host_* "$rootfs"/etc/bind/rndc.key \
      "$rootfs"/etc/ssl/private/ssl-cert-snakeoil.key "$rootfs"/etc/ssl/certs/ssl-cert-snakeoil.pem
    rm -rf "$rootfs"/var/lib/postgresql/*/main "$rootfs"/etc/postgresql/*/main
    : >"$rootfs/etc/machine-id"
    echo "deb $mirror $SUITE main" >"$rootfs/etc/apt/sources.list"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    # Older tarballs of another package list are of no further use.
    find "$CACHE" -maxdepth 1 -name "debian-base-$SUITE-*.tar" ! -name "$(basename "$tarball")" -delete
    log "rootfs ready in $((SECONDS - t0)) s: $tarball ($(du -h "$tarball" | cut -f1))"
  fi
  log "importing $BASE_IMAGE from $tarball"
  local t1=$SECONDS
  docker import \
    --change "LABEL org.hostwright.base-stamp=$stamp" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
  log "imported in $((SECONDS - t1)) s"
}

# Copies SRC to DST only when it changed: an unchanged file keeps the image
# build cached.
sync_file() {
  mkdir -p "$(dirname "$2")"
  if ! cmp -s "$1" "$2"; then
    cp "$1" "$2.tmp"
    mv "$2.tmp" "$2"
  fi
}

build_binaries() {
  if [ "${HW_IMAGES_SKIP_CARGO:-0}" != 1 ]; then
    local args=(-p hostwright -p hostwright-securemx -p hostwright-billing)
    for b in "${BINARIES[@]}"; do args+=(--bin "$b"); done
    log "cargo build --release --locked ${args[*]}"
    (cd "$ROOT" && cargo build --release --locked "${args[@]}")
  fi
  for b in "${BINARIES[@]}"; do
    [ -x "$ROOT/target/release/$b" ] || { echo "images: target/release/$b missing" >&2; exit 1; }
    sync_file "$ROOT/target/release/$b" "$ROOT/deploy/${CONTEXT[$b]}/build/usr/local/bin/$b"
  done
  # hostwright's image also carries the playbooks and the trusted keys
  # (build/ is laid out as the image's file system).
  local ctx="$ROOT/deploy/hostwright/build"
  sync_file "$ROOT/examples/keys/trusted-keys.toml" "$ctx/etc/hostwright/trusted-keys.toml"
  local pb="$ctx/usr/share/hostwright/playbooks"
  (cd "$ROOT/playbooks" && find . -type f -print0) | while IFS= read -r -d '' f; do
    sync_file "$ROOT/playbooks/$f" "$pb/$f"
  done
  # Files gone from playbooks/ must leave the image too.
  (cd "$pb" && find . -type f -print0) | while IFS= read -r -d '' f; do
    [ -e "$ROOT/playbooks/$f" ] || rm -f "$pb/$f"
  done
}

build_images() {
  local t0=$SECONDS buildlog="$CACHE/build.log"
  mkdir -p "$CACHE"
  log "building the stack's images FROM $BASE_IMAGE (log: $buildlog)"
  # The classic builder uses the local base and never pulls it; BuildKit
  # would try the registry for a FROM it cannot resolve, so keep it off.
  if ! DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 HW_BASE_IMAGE="$BASE_IMAGE" \
    compose build "$@" >"$buildlog" 2>&1; then
    tail -n 40 "$buildlog" >&2
    echo "images: compose build failed; see $buildlog" >&2
    exit 1
  fi
  log "images built in $((SECONDS - t0)) s: $(grep -c '^Step 1/' "$buildlog" || true) image(s), $(grep -c '^Step ' "$buildlog" || true) step(s) of which $(grep -c 'Using cache' "$buildlog" || true) cached"
}

t0=$SECONDS
build_base
if [ "${1:-}" = base ]; then
  exit 0
fi
build_binaries
build_images "$@"
log "done in $((SECONDS - t0)) s"
