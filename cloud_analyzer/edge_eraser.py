"""The edges' part of erasures: sends each queued (erasure, edge) pair's face ids to that edge's Erase
until it confirms, and records the answer in the erasure's report (cloud_analyzer/erasure.py queues
them and keeps the reports)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import grpc
import redis
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc

from cloud_analyzer.erasure import CHUNK, report_from_json, report_to_json
from service_common import request_id
from service_common.access import AuditLog
from service_common.redis_keys import ERASURES_PENDING, erasure_edge_key, erasure_key
from service_common.redis_oom import compare_and_set_field

log = logging.getLogger(__name__)


class EdgeEraser:
    """Sends queued erasures to the edges that hold the faces, until each confirms. Any analyzer replica
    may run one: Erase is idempotent, so two replicas sending the same erasure is harmless."""

    def __init__(self, client: redis.Redis, edges: Mapping[str, str], channel_for, timeout_s: float = 10.0,
                 period_s: float = 2.0) -> None:
        self.r, self.edges, self.channel_for = client, edges, channel_for
        self.audit = AuditLog(client)  # each edge's confirmation joins the erasure's audit trail
        self.timeout_s, self.period_s = timeout_s, period_s
        self._stop, self._wakeup = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-eraser", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wake(self) -> None:
        """Run a round now (after a new erasure) rather than at the next period."""
        self._wakeup.set()

    def run_once(self) -> int:
        """One attempt at every pending (erasure, edge) pair; returns how many were confirmed."""
        confirmed = 0
        for raw in self.r.smembers(ERASURES_PENDING):
            erasure_id, edge_id = raw.decode().split("|", 1)
            try:
                if self._send(erasure_id, edge_id):
                    confirmed += 1
            except redis.RedisError:
                raise
            except Exception as exc:  # one edge's failure must not stop the others
                log.exception("erasure %s at edge %s failed", erasure_id, edge_id)
                self._update(erasure_id, edge_id, last_error=f"internal error: {type(exc).__name__}")
        return confirmed

    def _send(self, erasure_id: str, edge_id: str) -> bool:
        address = self.edges.get(edge_id)
        if address is None:
            self._update(erasure_id, edge_id, last_error="edge not configured (ANALYZER_EDGES); will retry")
            return False
        key = erasure_edge_key(erasure_id, edge_id)
        face_ids = sorted(f.decode() for f in self.r.smembers(key))
        stub = enhancement_pb2_grpc.EnhancementStoreStub(self.channel_for(address))
        rid = request_id.valid(self.r.hget(erasure_key(erasure_id), "request_id"))
        metadata = ((request_id.GRPC_KEY, rid),) if rid else ()  # the erasing request's id, to the edge's logs
        erased = not_held = 0
        for start in range(0, len(face_ids), CHUNK):
            chunk = face_ids[start : start + CHUNK]
            try:
                reply = stub.Erase(enhancement_pb2.EraseRequest(face_ids=chunk, erasure_id=erasure_id),
                                   timeout=self.timeout_s, metadata=metadata)
            except grpc.RpcError as exc:
                self._update(erasure_id, edge_id, last_error=f"{exc.code().name}; will retry")
                return False
            erased, not_held = erased + reply.erased, not_held + reply.not_held
            self.r.srem(key, *chunk)  # confirmed chunks are not sent again
        self.r.srem(ERASURES_PENDING, f"{erasure_id}|{edge_id}")
        self._update(erasure_id, edge_id, status="confirmed", erased=erased, not_held=not_held, last_error="")
        self.audit.record("erasure.confirmed", "ok", 200, key_name="edge-eraser",
                          detail=f"erasure {erasure_id}: edge {edge_id} erased {erased}, {not_held} not held")
        log.info("erasure %s confirmed by edge %s: %d erased, %d not held", erasure_id, edge_id, erased, not_held)
        return True

    def _update(self, erasure_id: str, edge_id: str, **changes: Any) -> None:
        key = erasure_key(erasure_id)
        while True:  # compare-and-set, not WATCH/MULTI: it must also work when Redis is full
            raw = self.r.hget(key, "report")
            if raw is None:
                return
            report = report_from_json(json.loads(raw))
            edge = report.edges[edge_id]
            if edge.status == "confirmed" and changes.get("status") != "confirmed":
                return  # another replica confirmed it meanwhile
            for k, v in changes.items():
                setattr(edge, k, getattr(edge, k) + v if k in ("erased", "not_held") else v)
            if compare_and_set_field(self.r, key, "report", raw, json.dumps(report_to_json(report))):
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning("edge eraser: redis error %s; retrying", exc)
            self._wakeup.wait(self.period_s)
            self._wakeup.clear()
