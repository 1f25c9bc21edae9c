"""A real Redis Cluster on loopback ports for fault tests: primaries and replicas from the same redis-server
binary as every other test (formed by devstack.redis_cluster), a primary killed with SIGKILL and its
replica's failover awaited, and slots moved between primaries while clients keep going (CLUSTER SETSLOT
IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE: what `redis-cli --cluster reshard` does).

    with LocalCluster(tmp_path) as cluster:       # 3 primaries + 3 replicas, about a second
        client = cluster.client()                 # a redis-py RedisCluster
        killed = cluster.primary_of("key")
        cluster.kill(killed)                      # SIGKILL
        cluster.wait_failover()
        cluster.restart(killed)                   # back, as a replica
        cluster.migrate_slots(0, 99, cluster.primaries[1])
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from devstack.redis_cluster import form
from devstack.stack import RedisServer, port_is_free

NODE_TIMEOUT_MS = 1000  # how long a primary may be silent before its replica takes over (compose: 5000)


class LocalCluster:
    def __init__(self, root: Path, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS,
                 password_file: Path | None = None, form_now: bool = True) -> None:
        """password_file: every node asks for that password (replicas give it to their primary, as compose's
        nodes do); form_now: False leaves the nodes empty and unjoined, for a test that forms them itself."""
        self.nodes, self.password_file, self.form_now = [], password_file, form_now
        auth = ("--masterauth", password_file.read_text().strip()) if password_file else ()
        for i in range(primaries * (1 + replicas)):
            data = root / f"node-{i}"
            args = ("--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
                    "--cluster-node-timeout", str(node_timeout_ms), *auth)
            self.nodes.append(RedisServer(data, port=cluster_port({n.port for n in self.nodes}),
                                          password_file=password_file, extra_args=args))
        self.primary_count = primaries
        self.killed: list[RedisServer] = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        if self.form_now:
            address = [("127.0.0.1", n.port) for n in self.nodes]
            form(address[: self.primary_count], address[self.primary_count :], self.password, timeout_s=30)

    @property
    def password(self) -> str | None:
        return self.password_file.read_text().strip() if self.password_file else None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @property
    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n not in self.killed]

    @property
    def primaries(self) -> list[RedisServer]:
        """The live nodes that hold slots now (a promoted replica included)."""
        owners = {int(n["address"].rsplit(":", 1)[1]) for n in self.view() if n["slots"] and "fail" not in n["flags"]}
        return [n for n in self.live if n.port in owners]

    @property
    def url(self) -> str:
        """A seed list of every node, in the form the services' *_REDIS_URL takes for a cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def client(self, **kwargs: object) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.live],
                            password=self.password, **kwargs)

    def node_client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, password=self.password, decode_responses=True)

    def view(self, node: RedisServer | None = None) -> list[dict]:
        """CLUSTER NODES as `node` (default: the first live node) sees it."""
        with self.node_client(node or self.live[0]) as c:
            return [{"id": v["node_id"], "address": k.split("@")[0], "flags": v["flags"], "primary": v["master_id"],
                     "slots": v["slots"]} for k, v in c.execute_command("CLUSTER NODES").items()]

    def node_id(self, node: RedisServer) -> str:
        with self.node_client(node) as c:
            return c.execute_command("CLUSTER MYID")

    def primary_of(self, key: str) -> RedisServer:
        with self.node_client(self.live[0]) as c:
            slot = int(c.execute_command("CLUSTER KEYSLOT", key))
        return self.owner(slot)

    def owner(self, slot: int) -> RedisServer:
        for n in self.view():
            if "fail" not in n["flags"] and any(int(lo) <= slot <= int(hi) for lo, hi in _ranges(n["slots"])):
                port = int(n["address"].rsplit(":", 1)[1])
                return next(s for s in self.live if s.port == port)
        raise LookupError(f"no live primary serves slot {slot}")

    def kill(self, node: RedisServer) -> None:
        """SIGKILL: no shutdown, no last write to disk or to its replica."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait()
        self.killed.append(node)

    def restart(self, node: RedisServer, timeout_s: float = 30.0) -> None:
        """Start a killed node again: from its nodes.conf it rejoins, as a replica of whoever took its slots."""
        node.start()
        self.killed.remove(node)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.node_client(node) as c:
                if c.info("replication").get("master_link_status") == "up":
                    return
            time.sleep(0.1)
        raise TimeoutError("the restarted node did not catch up with its primary")

    def wait_failover(self, timeout_s: float = 30.0) -> None:
        """Until every live node sees the whole slot range served by live primaries (cluster_state ok)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if all(self._state(n) == "ok" for n in self.live) and len(self.primaries) == self.primary_count:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise TimeoutError("no failover within the timeout")

    def _state(self, node: RedisServer) -> str:
        with self.node_client(node) as c:
            return c.execute_command("CLUSTER INFO")["cluster_state"]

    def migrate_slots(self, first: int, last: int, target: RedisServer, batch: int = 100) -> int:
        """Move slots first..last to `target`, slot by slot, with their keys, while clients go on (ASK
        redirects during a slot's move, MOVED after). Returns how many keys moved."""
        target_id, moved = self.node_id(target), 0
        for slot in range(first, last + 1):
            source = self.owner(slot)
            if source is target:
                continue
            source_id = self.node_id(source)
            with self.node_client(source) as src, self.node_client(target) as dst:
                dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
                src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
                while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
                    auth = ("AUTH", self.password) if self.password else ()
                    src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, *auth, "KEYS", *keys)
                    moved += len(keys)
                dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)  # the target first, then the source
                src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            for other in self.primaries:
                if other not in (source, target):
                    with self.node_client(other) as c:
                        c.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        return moved


def cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too: below the ephemeral range, which the
    bus port of an ephemeral port could pass or collide with."""
    while True:
        port = random.randrange(20_000, 30_000)
        if port not in taken and port_is_free(port) and port_is_free(port + 10_000):
            return port


def _ranges(slots: list) -> list[tuple[str, str]]:
    """redis-py's parsed slots: ["lo", "hi"] pairs (a single slot as ["n"]); importing/migrating marks skipped."""
    out = []
    for entry in slots:
        parts = list(entry) if isinstance(entry, list | tuple) else str(entry).split("-")
        if parts and str(parts[0]).startswith("["):
            continue
        out.append((parts[0], parts[-1]))
    return out
