"""Redis Cluster under faults, with real processes on loopback (tests/helpers/redis_cluster.py) and a plain
redis-py RedisCluster client: a primary killed with SIGKILL while a client writes (its replica takes over,
no acknowledged write is lost), slots moved between primaries while a client writes (nothing lost, nothing
on two nodes), and what retention and the health figures need from a cluster (one-key deletes, the
allow-oom lock, the fullest primary's memory)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import yaml
from redis.cluster import RedisCluster

from cloud_analyzer.retention import HistoryDays
from service_common.redis_keys import (
    HISTORY_DAYS,
    RETENTION_LOCK,
    history_cameras_key,
    history_days_member,
    history_key,
)
from service_common.redis_memory import redis_memory
from service_common.redis_oom import set_nx_px
from tests.helpers import wait_until
from tests.helpers.redis_cluster import LocalCluster

DAY_MS = 86_400_000
pytestmark = pytest.mark.slow  # each forms a cluster (a few seconds) and waits for failovers or slot moves


class Writer(threading.Thread):
    """Writes k:0, k:1, ... until stopped; a key counts as acknowledged once SET answered and, with
    `replicas`, WAIT says that many replicas have it (what a caller that needs durability waits for). A
    failed write is retried, the same key, after a short pause."""

    def __init__(self, client: RedisCluster, replicas: int = 0) -> None:
        super().__init__(daemon=True)
        self.client, self.replicas = client, replicas
        self.acked: dict[str, int] = {}
        self.written: set[str] = set()  # every key a SET answered, acknowledged or not
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"k:{i}"
            try:
                self.client.set(key, i)
                self.written.add(key)
                if not self.replicas or self.client.execute_command(
                        "WAIT", self.replicas, 500, target_nodes=self.client.get_node_from_key(key)) >= self.replicas:
                    self.acked[key] = i
                i += 1
            except redis.RedisError:
                self.failures += 1
                time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        self.join(30)


def test_a_primary_killed_with_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as cluster:
        writer = Writer(cluster.client(), replicas=1)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 200, timeout_s=60)
        victim = cluster.primary_of("k:0")
        cluster.kill(victim)
        started = time.monotonic()
        cluster.wait_failover()
        failover_s = time.monotonic() - started
        assert victim not in cluster.primaries and len(cluster.primaries) == 3
        promoted = cluster.primary_of("k:0")  # the replica that took the victim's slots
        with cluster.node_client(promoted) as c:
            held_at_failover = c.dbsize()
        cluster.restart(victim)  # it rejoins as the replica of the node that took its slots
        acked_at_failover = len(writer.acked)
        wait_until(lambda: len(writer.acked) >= acked_at_failover + 200, timeout_s=60)  # writes go on after it
        writer.finish()

        assert victim not in cluster.primaries
        with cluster.node_client(promoted) as c:
            assert c.dbsize() > held_at_failover  # the victim's slots take writes again, on its successor
        reader = cluster.client()
        values = reader.mget_nonatomic(list(writer.acked))
        assert [int(v) for v in values] == list(writer.acked.values())  # every acknowledged write is there
        assert failover_s < 30


def test_slots_move_between_primaries_while_a_client_writes(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, replicas=0) as cluster:
        client = cluster.client()
        for i in range(3000):  # some keys in the slots that move before the move starts
            client.set(f"k:pre:{i}", i)
        source, target = cluster.owner(0), cluster.owner(16383)
        writer = Writer(cluster.client())
        writer.start()
        wait_until(lambda: len(writer.acked) >= 100, timeout_s=60)
        moved = cluster.migrate_slots(0, 299, target)
        wait_until(lambda: len(writer.acked) >= 600, timeout_s=60)
        writer.finish()

        assert moved > 0 and cluster.owner(0) is target and cluster.owner(299) is target
        with cluster.node_client(source) as src, cluster.node_client(target) as dst:
            assert all(src.execute_command("CLUSTER COUNTKEYSINSLOT", s) == 0 for s in range(300))
            assert sum(dst.execute_command("CLUSTER COUNTKEYSINSLOT", s) for s in range(300)) > 0
        reader = cluster.client()
        assert [int(v) for v in reader.mget_nonatomic(list(writer.acked))] == list(writer.acked.values())
        assert [int(v) for v in reader.mget_nonatomic([f"k:pre:{i}" for i in range(3000)])] == list(range(3000))
        total = 0
        for node in cluster.primaries:
            with cluster.node_client(node) as c:
                total += c.dbsize()
        assert total == 3000 + len(writer.written)  # each key on exactly one primary


def test_retention_deletes_history_days_and_takes_its_lock_on_a_cluster(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, replicas=0) as cluster:
        client = cluster.client()
        now = int(time.time() * 1000)
        old = now - 5 * DAY_MS
        vector = (np.ones(8, np.float32) / 8**0.5).tobytes()
        cameras = [f"cam-{i}" for i in range(12)]  # partitions spread over every primary
        for ts in (old, now):
            for camera in cameras:
                client.execute_command("VADD", history_key("m1", ts, camera), "FP32", vector, f"f-{camera}")
                client.sadd(history_cameras_key("m1", ts), camera)
        # Today's day is indexed as a decision indexes it; the old one only by the one-time scan of every node.
        client.zadd(HISTORY_DAYS, {history_days_member("m1", now): now - now % DAY_MS})
        assert len({cluster.primary_of(history_key("m1", old, c)).port for c in cameras}) == 3

        assert HistoryDays(client).drop_before(now - 2 * DAY_MS) == 1
        assert not any(client.exists(history_key("m1", old, c)) for c in cameras)
        assert not client.exists(history_cameras_key("m1", old))
        assert all(client.exists(history_key("m1", now, c)) for c in cameras)
        assert client.zrange(HISTORY_DAYS, 0, -1) == [history_days_member("m1", now).encode()]

        assert set_nx_px(client, RETENTION_LOCK, 1, 5000) and not set_nx_px(client, RETENTION_LOCK, 1, 5000)

        assert not redis_memory(client).full
        full = cluster.primary_of(RETENTION_LOCK)
        probe = next(k for k in (f"p:{i}" for i in range(1000)) if cluster.primary_of(k) is full)
        with cluster.node_client(full) as c:
            c.config_set("maxmemory-policy", "noeviction")
            c.config_set("maxmemory", 1)  # this primary only: the fullest one is what health reports
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set(probe, 1)
        memory = redis_memory(client)
        assert memory.full and memory.max_bytes == 1
        client.delete(RETENTION_LOCK)
        assert set_nx_px(client, RETENTION_LOCK, 1, 5000)  # the lock, on the full primary


def test_the_compose_init_command_forms_a_password_protected_cluster_once(tmp_path: Path) -> None:
    """docker-compose.yml's `redis-cluster-init` command, run as a process against six password-protected
    empty nodes (its node names swapped for loopback ports): a cluster of 3 primaries, each with one replica;
    run again, it changes nothing, also after a failover swapped a primary and its replica (compose's `up`
    starts the one-shot again)."""
    root = Path(__file__).resolve().parent.parent
    argv = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["redis-cluster-init"]["command"]
    password_file = tmp_path / "redis_password"
    password_file.write_text("s3cret-for-the-test\n")
    with LocalCluster(tmp_path / "nodes", password_file=password_file, form_now=False) as cluster:
        names = [a for a in argv if a.startswith("redis-node-")]
        ports = dict(zip(names, (f"127.0.0.1:{n.port}" for n in cluster.nodes), strict=True))
        local = [ports.get(a, str(password_file) if a == "/run/secrets/redis_password" else a) for a in argv]
        def init() -> None:
            done = subprocess.run([sys.executable, *local[1:]], cwd=root, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr

        def layout() -> tuple[list[tuple[str, int]], set[str], list[str]]:
            view = cluster.view()
            roles = sorted((n["flags"].replace("myself,", ""), len(n["slots"])) for n in view)
            primaries = {n["id"] for n in view if n["slots"]}
            return roles, primaries, sorted(n["primary"] for n in view if not n["slots"])

        init()
        init()
        roles, primaries, followed = layout()
        assert roles == [("master", 1)] * 3 + [("slave", 0)] * 3
        assert followed == sorted(primaries)  # one replica each
        victim = cluster.nodes[0]
        cluster.kill(victim)
        cluster.wait_failover()
        cluster.restart(victim)  # back as the replica of its former replica
        swapped = layout()
        assert swapped[1] != primaries and cluster.node_id(victim) not in swapped[1]
        init()
        assert layout() == swapped
        client = cluster.client()
        client.set("k", "v")
        assert client.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=cluster.nodes[0].port).ping()
