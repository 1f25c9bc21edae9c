"""Shared fixtures: a real redis-server on a free port (or, with FC_TEST_REDIS=cluster, a real 3-primary
Redis Cluster: `make test-cluster`), the front end, the compose images. Helpers live in tests/helpers/.

Every Redis client the tests and the services they start make is slot-checked (FC_REDIS_SLOT_CHECK=1,
service_common/redis_slots.py): a script, transaction or multi-key command spanning hash slots fails on
a standalone Redis as it would on Redis Cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from devstack.stack import RedisServer
from service_common.redis_client import connect
from service_common.redis_slots import ENV as SLOT_CHECK_ENV
from tests.helpers.redis_cluster import LocalCluster
from tests.helpers.servers import serve_analyzer

os.environ[SLOT_CHECK_ENV] = "1"  # before any client is made; inherited by the services tests start
CLUSTER = os.environ.get("FC_TEST_REDIS") == "cluster"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | LocalCluster]:
    """The suite's Redis: `.url` is what the services are given (a cluster URL in cluster mode)."""
    # No replicas, and a node timeout that a loaded machine's pauses do not reach: no failover mid-suite.
    server = LocalCluster(tmp_path_factory.mktemp("redis-cluster"), replicas=0, node_timeout_ms=15_000,
                          appendonly=False) if CLUSTER else RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = connect(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def front_end():
    from facecodec.frontend import FaceFrontEnd

    return FaceFrontEnd()


@pytest.fixture(scope="module")
def analyzer(redis_server):
    """A real analyzer over a flushed Redis (REST url, Ingest stub), one per test module."""
    with serve_analyzer(redis_server.url) as served:
        yield served


@pytest.fixture(scope="session")
def compose_images() -> None:
    """The images docker-compose.yml runs, built once for the compose tests (tests/test_compose_run.py,
    tests/test_compose_cluster_run.py). Without Podman they skip, except under CI, where that fails."""
    from devstack import compose

    if not compose.podman_available():
        if os.environ.get("CI"):
            pytest.fail("podman and podman-compose are missing: `make system-compose` installs them")
        pytest.skip("podman and podman-compose are not installed (`make system-compose`)")
    compose.ensure_debian_base()
    compose.build()
