"""Shared fixtures: a real redis-server on a free port, the front end. Helpers live in tests/helpers/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from devstack.stack import RedisServer
from tests.helpers.servers import serve_analyzer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
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
