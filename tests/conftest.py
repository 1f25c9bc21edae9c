"""Shared fixtures: a real redis-server on a free port, data set paths, the front end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.stack import RedisServer
from facecodec.datasets import dataset_root

LFW = dataset_root() / "lfw" / "images"


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


def lfw_image(name: str, index: int) -> Path:
    path = LFW / name / f"{name}_{index:04d}.jpg"
    if not path.exists():
        pytest.skip(f"shared data set not available: {path}")
    return path
