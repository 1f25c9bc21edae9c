"""Streams outbox records to the cloud's Ingest service; removes each only after its ack.

A failed upload acknowledges nothing, so every face not acknowledged stays in the outbox and is sent
again after a back-off (0.5 s doubling to `retry_max_s`), at least as long as the cloud asked with
`grpc-retry-pushback-ms` (its answer while its Redis is full, capped at `retry_max_s`).

The thread never dies quietly: a row that cannot be read is quarantined (the outbox's `rejected`
table) so it cannot block the rows behind it, any other failure is logged, counted and retried with
back-off, and `health()` says when records have waited too long without a successful upload.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.message import DecodeError

from edge_encoder.outbox import Outbox
from service_common.tls import TlsFiles, secure_or_insecure_channel

log = logging.getLogger(__name__)
UNREADABLE = "unreadable outbox record (not a FaceRecord); quarantined on the edge"


class Uploader:
    def __init__(self, outbox: Outbox, address: str, batch: int, timeout_s: float, retry_max_s: float,
                 stall_s: float = 300.0, tls: TlsFiles | None = None, server_name: str | None = None) -> None:
        """tls: None, plaintext; else TLS to the analyzer (verified against tls.ca, or `server_name` in its
        certificate), presenting this edge's certificate as client certificate."""
        self.outbox = outbox
        self.address = address
        self.batch, self.timeout_s, self.retry_max_s, self.stall_s = batch, timeout_s, retry_max_s, stall_s
        self.channel = secure_or_insecure_channel(address, tls, server_name or None)
        self.stub = ingest_pb2_grpc.IngestStub(self.channel)
        self.acked = 0
        self.quarantined = 0  # rows that could not be read back, moved to `rejected`
        self.errors = 0  # upload attempts that failed, of any kind
        self.last_error = ""
        self.last_success = time.time()  # a backlog counts as stalled only this long after start, too
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.outbox.wakeup.set()
        self._thread.join(timeout=5)
        self.channel.close()

    def _records(self, pending: list[tuple[str, bytes]]) -> list[ingest_pb2.FaceRecord]:
        """The readable records; unreadable rows go to quarantine at once (retrying cannot mend them)."""
        records = []
        for face_id, raw in pending:
            try:
                records.append(ingest_pb2.FaceRecord.FromString(raw))
            except DecodeError:
                log.error("outbox row %s cannot be read; quarantined", face_id)
                self.outbox.reject(face_id, UNREADABLE)
                self.quarantined += 1
        return records

    def upload_once(self) -> int:
        """Send one batch of pending records; returns how many were acknowledged or quarantined.
        Raises grpc.RpcError."""
        pending = self.outbox.pending(self.batch)
        if not pending:
            return 0
        self.outbox.mark_attempt([face_id for face_id, _ in pending])
        records = self._records(pending)
        done = len(pending) - len(records)
        if not records:
            return done
        for ack in self.stub.Ingest(iter(records), timeout=self.timeout_s):
            if ack.status in (ingest_pb2.IngestAck.ACCEPTED, ingest_pb2.IngestAck.DUPLICATE):
                self.outbox.remove(ack.face_id)
            elif ack.status in (ingest_pb2.IngestAck.REJECTED, ingest_pb2.IngestAck.CONFLICT):
                log.error("cloud rejected face %s: %s", ack.face_id, ack.error)
                self.outbox.reject(ack.face_id, ack.error)
            self.acked += 1
            done += 1
        return done

    def health(self) -> dict:
        """stalled: records have waited longer than stall_s and no upload has succeeded for as long
        (or the thread is gone)."""
        oldest = self.outbox.oldest_pending()
        now = time.time()
        age = None if oldest is None else max(0.0, now - oldest)
        waiting = age is not None and age > self.stall_s and now - self.last_success > self.stall_s
        dead = self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set()
        return {"stalled": waiting or dead, "running": not dead,
                "oldest_pending_s": None if age is None else round(age, 1),
                "last_success_s_ago": round(now - self.last_success, 1), "quarantined": self.quarantined,
                "errors": self.errors}

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self.outbox.wakeup.clear()
            try:
                sent = self.upload_once()
            except grpc.RpcError as exc:
                self.last_error = f"{exc.code().name}: {exc.details()}"
                backoff = max(backoff, min(pushback_s(exc), self.retry_max_s))
                log.warning("upload to %s failed (%s); retrying in %.1fs", self.address, self.last_error, backoff)
            except Exception:  # a bug or a broken disk must not end uploads for good: log, count, retry
                self.last_error = "internal error; see the edge's log"
                log.exception("upload to %s failed unexpectedly; retrying in %.1fs", self.address, backoff)
            else:
                backoff, self.last_error, self.last_success = 0.5, "", time.time()
                if not sent:
                    self.outbox.wakeup.wait(1.0)
                continue
            self.errors += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.retry_max_s)


def pushback_s(exc: grpc.RpcError) -> float:
    """The wait the server asked for (`grpc-retry-pushback-ms` trailer), 0 if none."""
    trailers = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else None
    for key, value in trailers or ():
        if key == "grpc-retry-pushback-ms":
            try:
                return max(int(value), 0) / 1000
            except ValueError:
                return 0.0
    return 0.0
