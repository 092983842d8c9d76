#!/usr/bin/env bash
# `make compose-e2e`: the whole stack under Docker Compose, tested end to end, then removed.
#   1. builds the images (`make image`);
#   2. `up -d` as a project of its own (loopline-e2e), and waits until every service is healthy
#      and the bootstrap (topics, bucket, tables) is done;
#   3. runs the `e2e` service: five nightly dates of the demo through the scheduler in the
#      containers, then checks each date's predictions (tests/integration/test_compose.py);
#   4. `down -v`: the containers and the state volume are removed, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
. infra/docker/engine.sh
export COMPOSE_PROJECT_NAME=loopline-e2e
started=$(date +%s)
bash infra/docker/build.sh

show_failure() {
  compose ps
  for service in $(compose ps --services); do
    echo "--- $service (last 30 lines)"; compose logs --no-color --tail 30 "$service" 2>&1 | tail -30
  done
}
trap 'status=$?; [ $status = 0 ] || show_failure; echo "== removing the e2e stack"; compose down -v --remove-orphans >/dev/null 2>&1; exit $status' EXIT

echo "== docker-compose up (every service waits for the health of those it needs)"
compose up -d
bootstrap=$(compose ps -q bootstrap)
[ "$(docker wait "$bootstrap")" = 0 ] || fail "the bootstrap did not complete (its log is below)"
for container in $(compose ps -q); do
  state=$(docker inspect -f '{{.Name}} {{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}/{{.State.ExitCode}}' "$container")
  case "$state" in *" running/healthy/"*|*" exited//0") ;; *) fail "not ready: $state";; esac
done
echo "ready after $(( $(date +%s) - started )) s"

echo "== the nightly loop for five dates, through the scheduler in the containers"
compose run --rm e2e
echo "== memory per container after the loop (docker stats; the kernel's page cache included)"
docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(compose ps -q)
echo "compose-e2e passed in $(( $(date +%s) - started )) s"
