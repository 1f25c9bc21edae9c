"""One client factory for standalone Redis and Redis Cluster (service_common/redis_client.py), and the slot
check that makes a standalone Redis refuse what a cluster would (service_common/redis_slots.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from devstack.stack import RedisServer
from service_common.redis_client import cluster_seeds, connect, is_cluster_url
from service_common.redis_slots import CrossSlotError
from tests.helpers import wait_until
from tests.helpers.redis_cluster import LocalCluster


def test_cluster_urls_name_their_seeds() -> None:
    url = "rediss+cluster://ops:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"
    assert is_cluster_url(url) and not is_cluster_url("redis://127.0.0.1:6379/0")
    assert cluster_seeds(url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    with pytest.raises(ValueError, match="host:port"):
        cluster_seeds("redis+cluster://node-without-port")


def test_a_cluster_with_a_password_file_serves_every_slot(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret-from-a-file\n")
    cluster = LocalCluster(tmp_path / "cluster", replicas=0, password_file=secret)
    cluster.start()
    try:
        client = connect(cluster.url, secret, timeout_s=5)
        assert isinstance(client, RedisCluster)
        keys = [f"k{i}" for i in range(50)]  # slots on every node: no MOVED reaches the caller
        for key in keys:
            client.set(key, key)
        assert [client.get(k) for k in keys] == [k.encode() for k in keys]
        with pytest.raises((redis.RedisError, RedisClusterException), match="authenticated"):  # no password
            connect(cluster.url, timeout_s=5).ping()
    finally:
        cluster.stop()


def test_the_slot_check_refuses_on_one_redis_what_a_cluster_would(redis_server, redis_client) -> None:
    if not isinstance(redis_server, RedisServer):
        pytest.skip("standalone only: a cluster refuses these itself")
    with pytest.raises(CrossSlotError):
        redis_client.eval("return 1", 2, "{a}x", "{b}x")
    with pytest.raises(CrossSlotError), redis_client.pipeline(transaction=True) as pipe:
        pipe.watch("{a}x")
        pipe.get("{b}x")  # a read while watching goes to the watched slot's node on a cluster
    with pytest.raises(CrossSlotError):
        redis_client.pipeline(transaction=True).set("{a}x", 1).set("{b}x", 1).execute()
    with pytest.raises(CrossSlotError):
        redis_client.zunionstore("{a}u", ["{a}x", "{b}x"])
    # One slot: fine; a pipeline without a transaction and multi-key DEL are split as a cluster client does.
    assert redis_client.pipeline(transaction=True).set("{a}x", 1).set("{a}y", 2).execute() == [True, True]
    assert redis_client.pipeline(transaction=False).set("{a}x", 1).set("{b}x", 1).execute() == [True, True]
    assert redis_client.delete("{a}x", "{a}y", "{b}x") == 3


def test_reads_from_replicas_see_what_the_primaries_wrote(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", replicas=1)
    cluster.start()
    try:
        writer = connect(cluster.url, timeout_s=5)
        for i in range(30):  # keys on every primary: their replicas' offsets move, so CLUSTER SLOTS lists them
            writer.set(f"r{i}", i)
        with cluster.node_client(cluster.nodes[0]) as node:
            wait_until(lambda: sum(len(e) - 3 for e in node.execute_command("CLUSTER SLOTS")) == 3, 30, 0.1,
                       "the replicas listed")
        reader = connect(cluster.url, timeout_s=5, read_from_replicas=True)
        roles = {n.server_type for n in reader.get_nodes()}
        assert roles == {"primary", "replica"} and len(reader.get_nodes()) == 6
        wait_until(lambda: [reader.get(f"r{i}") for i in range(30)] == [str(i).encode() for i in range(30)],
                   10, 0.05, "replicas caught up")
    finally:
        cluster.stop()
