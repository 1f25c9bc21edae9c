"""Redis Cluster's one rule, checked on a standalone Redis too: every multi-key command, Lua script and
MULTI transaction touches keys of one hash slot only (service_common/redis_keys.py gives what must share
a slot the same hash tag).

Redis Cluster refuses a cross-slot command (CROSSSLOT); a standalone Redis runs it. So that the standalone
test suite catches such code as well, `checked_client` wraps a standalone client, when FC_REDIS_SLOT_CHECK=1
is set (tests/conftest.py sets it for the test process and the services it starts), in a client that
computes each command's keys (redis-py's own commands parser, as RedisCluster does) and their slots
(`key_slot`), and raises CrossSlotError before sending a command, script or transaction that spans slots.
Off (the default), the client is returned as it is: no cost in production.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from redis._parsers.commands import CommandsParser
from redis.client import Pipeline
from redis.crc import key_slot

ENV = "FC_REDIS_SLOT_CHECK"
# Commands whose keys are not where the command table says (or that name none): checked by hand or skipped.
_EVAL = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
_NO_KEYS = {"SCRIPT", "PING", "INFO", "CONFIG", "FLUSHDB", "FLUSHALL", "CLUSTER", "CLIENT", "COMMAND",
            "BGREWRITEAOF", "BGSAVE", "TIME", "DBSIZE", "SCAN", "MEMORY", "LASTSAVE", "MULTI", "EXEC",
            "DISCARD", "UNWATCH", "WATCH", "ECHO", "DEBUG", "SLOWLOG", "ROLE", "SHUTDOWN", "AUTH", "SELECT",
            "HELLO", "READONLY", "READWRITE", "RANDOMKEY", "KEYS", "WAIT", "WAITAOF", "PUBLISH"}


_PARSER: CommandsParser | None = None  # the server's command table, read once


class CrossSlotError(redis.ResponseError):
    """What Redis Cluster would answer (CROSSSLOT), raised on a standalone Redis by the slot check."""


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def slots_of(keys: list[Any]) -> set[int]:
    return {key_slot(k.encode() if isinstance(k, str) else bytes(k)) for k in keys}


def require_one_slot(what: str, keys: list[Any]) -> None:
    """Raise CrossSlotError when `keys` span more than one slot."""
    if len(slots_of(keys)) > 1:
        raise CrossSlotError(f"CROSSSLOT {what} touches keys of several slots: {sorted(map(_text, keys))}")


def _text(key: Any) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


class _Keys:
    """The keys of a command, by redis-py's commands parser (it asks the server once for its table)."""

    def __init__(self, client: redis.Redis) -> None:
        self.plain = redis.Redis(connection_pool=client.connection_pool)  # not checked: no recursion

    def of(self, args: tuple[Any, ...]) -> list[Any]:
        name = _text(args[0]).upper().partition(" ")[0]
        if name in _EVAL:
            return list(args[3 : 3 + int(args[2])])
        if name in _NO_KEYS or len(args) < 2:
            return []
        global _PARSER
        if _PARSER is None:  # one command table per process: COMMAND's reply is large (a full Redis notices)
            _PARSER = CommandsParser(self.plain)
        try:
            return list(_PARSER.get_keys(self.plain, *args) or [])
        except redis.RedisError:  # a command the table does not know: nothing to check
            return []


class CheckedPipeline(Pipeline):
    """A pipeline that refuses a cross-slot command and, as a transaction, any command (watched keys, reads
    while watching, queued commands) in another slot than the others: Redis Cluster runs a transaction on
    the one connection of its slot's node."""

    def __init__(self, *args: Any, keys: _Keys, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = keys
        self._touched: list[Any] = []

    def watch(self, *names: Any) -> Any:
        self._touched += names
        require_one_slot("WATCH", self._touched)
        return super().watch(*names)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        keys = self._keys.of(args)
        require_one_slot(_text(args[0]), keys)
        if self.transaction:
            self._touched += keys
            require_one_slot("MULTI", self._touched)
        return super().execute_command(*args, **kwargs)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.scripts:  # redis-py's cluster pipeline sends EVALSHA without loading the script: NOSCRIPT
            raise CrossSlotError("a Lua script queued on a pipeline: Redis Cluster's pipelines do not load it")
        return super().execute(raise_on_error)

    def reset(self) -> None:
        super().reset()
        self._touched = []


class CheckedRedis(redis.Redis):
    """A standalone client that refuses what Redis Cluster would refuse as cross-slot."""

    _slot_keys: _Keys

    def execute_command(self, *args: Any, **options: Any) -> Any:
        require_one_slot(_text(args[0]), self._slot_keys.of(args))
        return super().execute_command(*args, **options)

    # Redis Cluster's client splits these by slot (one command per slot, counts summed): so do these.
    def delete(self, *names: Any) -> int:
        return self._split("DEL", names)

    def unlink(self, *names: Any) -> int:
        return self._split("UNLINK", names)

    def exists(self, *names: Any) -> int:
        return self._split("EXISTS", names)

    def touch(self, *names: Any) -> int:
        return self._split("TOUCH", names)

    def _split(self, command: str, names: tuple[Any, ...]) -> int:
        by_slot: dict[int, list[Any]] = {}
        for name in names:
            by_slot.setdefault(next(iter(slots_of([name]))), []).append(name)
        return sum(int(self.execute_command(command, *group)) for group in by_slot.values())

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return CheckedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint,
                               keys=self._slot_keys)


def checked_client(client: redis.Redis) -> redis.Redis:
    """`client`, checked for cross-slot use when FC_REDIS_SLOT_CHECK=1 (the tests), else as it is."""
    if not enabled():
        return client
    client.__class__ = CheckedRedis
    client._slot_keys = _Keys(client)  # type: ignore[attr-defined]
    return client


def unchecked(client: redis.Redis) -> redis.Redis:
    """The same standalone Redis without the slot check: for what runs on a standalone Redis only and spans
    slots on purpose (renaming the keys of the layout before hash tags)."""
    if isinstance(client, CheckedRedis):
        return redis.Redis(connection_pool=client.connection_pool)
    return client
