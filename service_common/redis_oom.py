"""Writes that must succeed when Redis is full (maxmemory reached with `noeviction`).

A full Redis refuses every command that may grow memory (SET, HSET, INCR, XADD, SADD...; measured on
Redis 8.2, tests/test_redis_full.py), while DEL, ZREM, HDEL, SREM, XDEL, XTRIM, VREM and EXPIRE, and
MULTI blocks of only those, still run. Retention and erasure are what free memory, so the few small
writes they need (a lock, an erasure's record and queue entry, its audit entry, the request's rate
counter) go through a Lua script flagged `allow-oom`, which Redis runs even then: they may take Redis a
few hundred bytes past the limit, and the deletions that follow give it back.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.crc import key_slot

from service_common.redis_slots import require_one_slot

# ARGV: a command's argument count, then its arguments, then the next command's. All run atomically (one
# script), like a MULTI block, but also when Redis is out of memory.
_BATCH = """#!lua flags=allow-oom
local out, i = {}, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return out
"""

# KEYS[1] field ARGV[1]: set to ARGV[3] only if it still holds ARGV[2] ("" = absent). 1 when set.
_COMPARE_AND_SET = """#!lua flags=allow-oom
local now = redis.call('HGET', KEYS[1], ARGV[1])
if (now or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# One command on one key, KEYS[1] (ARGV: the command's name, then its arguments after the key): declared,
# so Redis Cluster routes it to the key's node, unlike the batch above.
_ONE_KEY = """#!lua flags=allow-oom
return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))
"""

Command = Sequence[object]
_ALL_KEYS = {"DEL", "UNLINK", "EXISTS"}  # commands whose every argument is a key


def _slot(key: object) -> int:
    return key_slot(key.encode() if isinstance(key, str) else bytes(key))  # type: ignore[arg-type]


def atomic_writes(client: redis.Redis, commands: Sequence[Command]) -> list:
    """Run `commands` (each a sequence: name, arguments) atomically per hash slot, even when Redis is full;
    their replies in order. One script per slot their keys are in (Redis Cluster runs a script on one node,
    over one slot), in the order of each slot's first command: callers order their commands so that a
    failure between two slots leaves what a retry finishes. A command's keys are its first argument (all
    its arguments for DEL, UNLINK and EXISTS) and must share one slot."""
    groups: dict[int, tuple[list[object], list[object], list[int]]] = {}
    for n, command in enumerate(commands):
        keys = list(command[1:]) if str(command[0]).upper() in _ALL_KEYS else [command[1]]
        require_one_slot(str(command[0]), keys)
        declared, args, positions = groups.setdefault(_slot(keys[0]), ([], [], []))
        declared += [k for k in keys if k not in declared]
        args += [len(command), *command]
        positions.append(n)
    replies: list = [None] * len(commands)
    for declared, args, positions in groups.values():
        for n, reply in zip(positions, client.eval(_BATCH, len(declared), *declared, *args)):
            replies[n] = reply
    return replies


def write_key(client: redis.Redis, command: str, key: str, *args: object) -> object:
    """`command key *args`, also when Redis is full; on Redis Cluster too (one key, declared)."""
    return client.eval(_ONE_KEY, 1, key, command, *args)


def set_nx_px(client: redis.Redis, key: str, value: object, px: int) -> bool:
    """SET key value NX PX px (a lock), also when Redis is full, on a single Redis or a cluster."""
    return write_key(client, "SET", key, value, "NX", "PX", px) is not None


def compare_and_set_field(client: redis.Redis, key: str, field: str, expected: bytes | None, value: str) -> bool:
    """HSET key field value only if the field still holds `expected` (None: absent), also when Redis is
    full; False when another writer changed it first (read it again and retry)."""
    return bool(client.eval(_COMPARE_AND_SET, 1, key, field, expected or b"", value))
