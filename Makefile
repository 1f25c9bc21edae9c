# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv, install the project at the versions in constraints.txt (the lock file) and fetch
# the pretrained face models once.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt

.PHONY: setup system system-compose demo test test-cluster test-fast compose-test lint lock

setup: $(STAMP)

# pip, setuptools and wheel come from the lock first, so the project is built by the locked setuptools
# (no isolated build environment that would fetch the newest one).
$(STAMP): pyproject.toml $(LOCK) nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip setuptools wheel
	$(PY) -m pip install --quiet -c $(LOCK) --no-build-isolation -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps -r nodeps.txt
	$(PY) -m facecodec.assets
	touch $(STAMP)

# System packages some tests need and pip cannot bring: mosquitto (the MQTT tests' broker), chromium and
# chromium-driver (the console's browser tests, tests/test_console.py). Debian/Ubuntu only; fails loudly
# where apt-get is missing (CI must not skip those tests silently). Elsewhere install them yourself: the
# tests skip, with the reason, when they are missing outside CI.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -z "$$missing" ]; then \
		echo "system packages: present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "error:$$missing missing and apt-get is not available: install them" >&2; exit 1; \
	fi

# Podman for tests/test_compose_run.py (docker-compose.yml run for real): podman with runc (the
# settings it runs with: deploy/podman/containers.conf), the CNI dnsname plugin (containers find each
# other by service name), podman-compose, and debootstrap for the local Debian base image. Same rules as `system`: apt-get or a loud failure; outside CI the test skips without them.
COMPOSE_TOOLS := podman runc podman-compose debootstrap
system-compose:
	@missing=""; for tool in $(COMPOSE_TOOLS); do \
		command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; done; \
	[ -x /usr/lib/cni/dnsname ] || missing="$$missing golang-github-containernetworking-plugin-dnsname"; \
	if [ -z "$$missing" ]; then \
		echo "podman, runc, dnsname, podman-compose, debootstrap: present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "error:$$missing missing and apt-get is not available: install them" >&2; exit 1; \
	fi

demo: setup
	$(PY) -m devstack.demo

test: setup
	$(PY) -m pytest -q

# The service tests that use the suite's Redis, again against a real Redis Cluster (3 primaries on loopback
# ports, the same redis-server: tests/helpers/redis_cluster.py; FC_TEST_REDIS=cluster makes tests/conftest.py
# hand it out). Every module that writes Redis is covered: ingest, decisions, clusters, gallery, identities,
# corrections, erasure, retention, history, events, webhooks, MQTT, access, the reconstructor, the API
# fuzzer. Left out: tests that start their own standalone Redis on purpose (the stack as processes:
# test_stack, test_e2e, test_faults, test_scale_out, test_secure_stack, test_snapshots, test_quickstart,
# the compose tests; test_redis_full, test_erasure_on_redis_disk; test_key_migration, the old layout being
# standalone only; test_redis_client starts clusters of its own) and those that use no Redis.
CLUSTER_TESTS := test_redis_keys test_decision_steps test_gallery test_fusion test_retention test_clusters \
	test_cluster_shards test_face_shard_count test_key_layout \
	test_analyzer test_corrections test_identities_api test_erasure_reach test_webhooks test_access \
	test_events_sse test_scopes test_gate test_compreface_api test_error_bodies test_problems \
	test_ingest_limits test_tls test_edge_uploader test_mqtt test_reconstructor_api test_face_file_rest \
	test_operations test_edge_containers test_resilience test_api_fuzz
# With 3 gallery shards and 3 cluster-state shards (`make test` runs the defaults, 1): the sharded gallery's
# merged search and listings, merges of clusters across shards.
test-cluster: setup
	FC_TEST_REDIS=cluster FACECODEC_GALLERY_SHARDS=3 FACECODEC_CLUSTER_SHARDS=3 $(PY) -m pytest -q \
		$(CLUSTER_TESTS:%=tests/%.py)

# docker-compose.yml built and run with Podman (the images, health, the demo's flow, an edge restart), and
# its `cluster` profile (3 primaries + 3 replicas, the demo's flow, a primary killed and failed over).
compose-test: setup system-compose
	$(PY) -m pytest -q -m compose tests/test_compose_run.py tests/test_compose_cluster_run.py

# The inner loop: everything but the slow and end-to-end tests.
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not e2e and not compose"

lint: setup
	$(VENV)/bin/ruff check .

# Re-resolve every dependency from the registries and rewrite the lock (README, 'Upgrading dependencies').
lock:
	$(PYTHON) scripts/lock.py
