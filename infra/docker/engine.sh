# Sourced by the Docker scripts: a running Docker engine and a `compose` command, installed from
# Debian's packages (docker.io, docker-compose) when missing, and the engine started if it is not.
fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
if ! command -v dockerd >/dev/null || ! { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
  [ "$(id -u)" = 0 ] || fail "need root to install Docker (Debian's docker.io and docker-compose), or install them yourself"
  echo "installing Debian's docker.io and docker-compose"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null \
    || fail "apt-get could not install docker.io docker-compose"
fi
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "the Docker engine is not running and only root may start it (systemctl start docker)"
  echo "starting the Docker engine (log: /var/log/dockerd.log)"
  if command -v systemctl >/dev/null && systemctl start docker 2>/dev/null; then :; else
    (setsid dockerd >> /var/log/dockerd.log 2>&1 < /dev/null &)
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "the Docker engine did not start: see /var/log/dockerd.log"
fi
# Compose v2 (`docker compose`) where the engine has it, else Debian's docker-compose (v1).
compose() { if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi; }
