"""The one place a Redis client is made: standalone Redis or Redis Cluster, chosen by the URL.

- `redis://host:port/db` (or `rediss://` for TLS): one Redis, the embedded default.
- `redis+cluster://host:port,host:port` (or `rediss+cluster://`): Redis Cluster; the hosts are seeds,
  the client learns the rest of the cluster from them. A user and password in the URL apply to every
  node; no database number (a cluster has only database 0).

Both modes use the same key schema (service_common/redis_keys.py: hash tags keep what one script or
transaction touches in one slot), so the code above this module is the same for both. The password file
(`redis_password_file`) and TLS (`rediss`) work in both modes. Reads may go to replicas in cluster mode
(`read_from_replicas`): for what tolerates replication lag only, so the services keep it off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster

from service_common.redis_auth import redis_password
from service_common.redis_slots import checked_client

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The seed nodes of a cluster URL (host, port), in order."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    seeds = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis cluster URL: {part!r} is not host:port")
        seeds.append((host.strip("[]"), int(port)))
    return seeds


def _cluster_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    options: dict[str, Any] = {"ssl": CLUSTER_SCHEMES[parts.scheme]}
    if user:
        options["username"] = unquote(user)
    if password:
        options["password"] = unquote(password)
    return options


def connect(url: str, password_file: Path | None = None, timeout_s: float | None = None,
            read_from_replicas: bool = False, **kwargs: Any) -> redis.Redis:
    """A client of the Redis (or Redis Cluster) at `url`. `timeout_s`: socket and connect timeout, with
    retries on timeout. The same object answers both modes (RedisCluster has redis.Redis's commands)."""
    options: dict[str, Any] = {**redis_password(password_file), **kwargs}
    if timeout_s is not None:
        options.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=True)
    if is_cluster_url(url):
        options.pop("health_check_interval", None)
        if read_from_replicas:
            options["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
        client: Any = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster_seeds(url)],
                                   **{**_cluster_options(url), **options})
        return client
    return checked_client(redis.Redis.from_url(url, **options))


def connect_async(url: str, password_file: Path | None = None, **kwargs: Any) -> aioredis.Redis:
    """The asyncio client of the same Redis (or Redis Cluster): the SSE hub's reader."""
    options: dict[str, Any] = {**redis_password(password_file), **kwargs}
    if is_cluster_url(url):
        client: Any = AsyncRedisCluster(startup_nodes=[AsyncClusterNode(h, p) for h, p in cluster_seeds(url)],
                                        **{**_cluster_options(url), **options})
        return client
    return aioredis.Redis.from_url(url, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))



def node_clients(client: Any) -> list[redis.Redis]:
    """A client per server: the one Redis, or every node of the cluster (primaries and replicas), for what
    each server does on its own (rewriting its files, reporting its memory)."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_nodes()]
    return [client]
