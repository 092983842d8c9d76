# Loopline: the two commands are `make demo` and `make test` (see README).
SHELL := /bin/bash
# The stack's state folder (LOOPLINE_STATE_DIR moves it: a second stack, e.g. the cluster profile's).
STATE := $(abspath $(or $(LOOPLINE_STATE_DIR),.loopline))
export LOOPLINE_STATE_DIR := $(STATE)
ENV := source $(STATE)/env &&
CLUSTER := LOOPLINE_PROFILE=cluster LOOPLINE_STATE_DIR=$(abspath .loopline-cluster)
PIPELINE ?= card_fraud

.PHONY: setup up down status demo test test-unit test-outages test-cluster image compose-e2e check-kubernetes bench bench-scale lock clean

setup:            ## install system packages, the pinned venv, jars; generate local settings
	bash infra/setup.sh

up: setup         ## start every service and wait until healthy
	python3 infra/stack.py up

down:             ## stop every service the stack started
	python3 infra/stack.py down

status:
	python3 infra/stack.py status

demo: up          ## a demo pipeline's loop through the real scheduler (PIPELINE=card_fraud | bike_demand)
	$(ENV) PIPELINE=$(PIPELINE) .venv/bin/python infra/demo.py

test: up          ## set up what the tests need and run the whole suite (but the outage drills)
	$(ENV) .venv/bin/python -m pytest -q -p no:cacheprovider -m "not outage and not cluster and not compose" --durations=25

test-outages: up  ## stop each service in the middle of scoring, retry, compare with an undisturbed run (~10 min)
	$(ENV) .venv/bin/python -m pytest -q -p no:cacheprovider -m outage tests/integration

test-cluster:     ## the cluster profile in .loopline-cluster (3 brokers, Spark standalone, Celery): its loop and failovers
	$(CLUSTER) $(MAKE) up
	$(CLUSTER) bash -c 'source $$LOOPLINE_STATE_DIR/env && .venv/bin/python -m pytest -q -p no:cacheprovider -m cluster tests/integration'; \
	  status=$$?; $(CLUSTER) $(MAKE) down; exit $$status

image:            ## Loopline's image for docker-compose.yaml (and its base, from Debian's packages)
	bash infra/docker/build.sh

compose-e2e:      ## Docker Compose: build, bring up, five nightly dates through its scheduler, check, remove
	bash infra/docker/compose-e2e.sh

check-kubernetes: setup  ## check infra/kubernetes: helm template, CRD schemas, kubernetes-validate (docs/deploy-kubernetes.md)
	$(ENV) .venv/bin/python infra/kubernetes/check.py

test-unit: setup  ## the tests that need no service
	$(ENV) .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/dags

bench: up         ## benchmarks against in-run baselines; results in benchmarks/results/
	$(ENV) .venv/bin/python benchmarks/ingest.py
	$(ENV) .venv/bin/python benchmarks/validate.py
	$(ENV) .venv/bin/python benchmarks/score.py
	$(ENV) .venv/bin/python benchmarks/loop_view.py
	$(ENV) .venv/bin/python benchmarks/nightly.py

bench-scale: up   ## the nightly stages at 1M and 10M events on this profile's stack (LOOPLINE_PROFILE=cluster: the cluster's)
	$(ENV) .venv/bin/python benchmarks/scale.py

lock:             ## re-pin requirements.txt from requirements.in
	.venv/bin/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header --generate-hashes

clean: down       ## remove all local state (data, logs, generated secrets)
	rm -rf $(STATE)
