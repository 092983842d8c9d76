#!/usr/bin/env bash
# Loopline's base image from Debian's packages alone, for machines that cannot pull from a hub:
# debootstrap a Debian 12 (bookworm) root filesystem and `docker import` it. With a hub, skip
# this and build on any Debian 12 image: BASE_IMAGE=python:3.11-slim-bookworm (docs/docker.md).
#
#   bash infra/docker/base-image.sh [image]     # default loopline-base:bookworm; kept if present
#
# The image takes this machine's apt sources (its Debian mirror and security suite) and the
# certificate authorities it adds to Debian's (/usr/local/share/ca-certificates, e.g. a proxy's),
# so that it reaches the same package registries as the machine does.
set -euo pipefail
IMAGE=${1:-loopline-base:bookworm}
fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE: present"; exit 0; fi
[ "$(id -u)" = 0 ] || fail "debootstrap needs root"
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
  || fail "could not install debootstrap (Debian's package)"
# The mirror this machine's apt uses (a deb822 .sources file or a one-line sources.list).
mirror=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')}
mirror=${mirror:-$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
[ -n "$mirror" ] || fail "no Debian mirror found in this machine's apt sources: set DEBIAN_MIRROR"

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm (minbase) into a temporary folder"
debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; fail "debootstrap failed (log above)"; }
rm -f "$rootfs.log" "$rootfs/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null \
  || cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$rootfs" update-ca-certificates >/dev/null
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "$IMAGE: imported ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'))"
