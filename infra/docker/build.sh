#!/usr/bin/env bash
# Build Loopline's image (infra/docker/Dockerfile) from this checkout's files that git tracks
# or would track (ignored ones, like .venv and .loopline, stay out of the context).
#
#   bash infra/docker/build.sh      # BASE_IMAGE=... to build on another Debian 12 image
#
# The image is tagged loopline:<version in pyproject.toml>, the tag docker-compose.yaml runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
. infra/docker/engine.sh
BASE_IMAGE=${BASE_IMAGE:-loopline-base:bookworm}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
if [ "$BASE_IMAGE" = loopline-base:bookworm ]; then bash infra/docker/base-image.sh "$BASE_IMAGE"; fi
# The Go module proxy this machine uses (the image fetches a Go toolchain from it).
goproxy=$(go env GOPROXY 2>/dev/null) || fail "Go is needed to name the Go module proxy (go env GOPROXY); make setup needs it too"
echo "building loopline:$version on $BASE_IMAGE"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
git ls-files -z --cached --others --exclude-standard \
  | tar --null --files-from=- --ignore-failed-read -c 2>/dev/null \
  | DOCKER_BUILDKIT=0 docker build --force-rm -f infra/docker/Dockerfile --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg "GOPROXY=$goproxy" -t "loopline:$version" - > "$log" 2>&1 \
  || { tail -40 "$log" >&2; fail "docker build failed (its last lines are above)"; }
echo "loopline:$version: built ($(docker image inspect --format '{{.Size}}' "loopline:$version" | awk '{printf "%.1f GB", $1 / 1e9}'))"
