"""Streams outbox records to the cloud's Ingest service; removes each only after its ack."""

from __future__ import annotations

import logging
import threading

import grpc
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc

from edge_encoder.outbox import Outbox

log = logging.getLogger(__name__)


class Uploader:
    def __init__(self, outbox: Outbox, address: str, batch: int, timeout_s: float, retry_max_s: float) -> None:
        self.outbox = outbox
        self.address = address
        self.batch, self.timeout_s, self.retry_max_s = batch, timeout_s, retry_max_s
        self.channel = grpc.insecure_channel(address)
        self.stub = ingest_pb2_grpc.IngestStub(self.channel)
        self.acked = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.outbox.wakeup.set()
        self._thread.join(timeout=5)
        self.channel.close()

    def upload_once(self) -> int:
        """Send one batch of pending records; returns how many were acknowledged. Raises grpc.RpcError."""
        pending = self.outbox.pending(self.batch)
        if not pending:
            return 0
        self.outbox.mark_attempt([face_id for face_id, _ in pending])
        records = [ingest_pb2.FaceRecord.FromString(record) for _, record in pending]
        done = 0
        for ack in self.stub.Ingest(iter(records), timeout=self.timeout_s):
            if ack.status in (ingest_pb2.IngestAck.ACCEPTED, ingest_pb2.IngestAck.DUPLICATE):
                self.outbox.remove(ack.face_id)
            elif ack.status in (ingest_pb2.IngestAck.REJECTED, ingest_pb2.IngestAck.CONFLICT):
                log.error("cloud rejected face %s: %s", ack.face_id, ack.error)
                self.outbox.reject(ack.face_id, ack.error)
            done += 1
        self.acked += done
        return done

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self.outbox.wakeup.clear()
            try:
                sent = self.upload_once()
                backoff, self.last_error = 0.5, ""
            except grpc.RpcError as exc:
                self.last_error = f"{exc.code().name}: {exc.details()}"
                log.warning("upload to %s failed (%s); retrying in %.1fs", self.address, self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
                continue
            if not sent:
                self.outbox.wakeup.wait(1.0)
