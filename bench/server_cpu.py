"""Redis's own CPU as a bench sees it: INFO cpu (used_cpu_user + used_cpu_sys, every thread of the server),
read before and after what is measured, summed over every node."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import redis


def cpu_s(clients: Iterable[redis.Redis]) -> float:
    """Every node's CPU so far (user + system), summed."""
    total = 0.0
    for client in clients:
        cpu = client.info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


def per_call_cpu(read_cpu_s: Callable[[], float],
                 calls: Iterable[Callable[[], object]]) -> tuple[list[float], list[float]]:
    """Each call's server CPU (ms), the INFO reads' own cost taken off (the median of empty measurements),
    and its wall time (ms)."""
    empty = []
    for _ in range(20):
        before = read_cpu_s()
        empty.append(read_cpu_s() - before)
    floor = statistics.median(empty)
    cpus, walls = [], []
    for call in calls:
        before, start = read_cpu_s(), time.perf_counter()
        call()
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append(max(0.0, read_cpu_s() - before - floor) * 1000)
    return cpus, walls
