"""gRPC client for an edge's EnhancementStore: explicit deadline, bounded retries on UNAVAILABLE."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc

from cloud_reconstructor.metrics import ReconstructorMetrics
from service_common import request_id
from service_common.tls import Channels, TlsFiles

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class EdgeFetchError(RuntimeError):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class EdgeClients:
    """One channel per edge address, reused across requests. tls: None, plaintext; else TLS verified
    against tls.ca, presenting tls.cert as client certificate (files read once, here)."""

    def __init__(self, timeout_s: float, retries: int, tls: TlsFiles | None = None,
                 metrics: ReconstructorMetrics | None = None, names: dict[str, str] | None = None) -> None:
        """`names`: address -> edge id, the `edge` label of the fetch metrics (addresses not named: "other")."""
        self.timeout_s, self.retries = timeout_s, retries
        self.metrics, self.names = metrics or ReconstructorMetrics(), names or {}
        self._channels = Channels(tls)

    def _stub(self, address: str) -> enhancement_pb2_grpc.EnhancementStoreStub:
        return enhancement_pb2_grpc.EnhancementStoreStub(self._channels.get(address))

    def fetch(self, address: str, face_id: str, max_level: int) -> bytes:
        request = enhancement_pb2.FetchRequest(face_id=face_id, max_level=max_level)
        return self._call(address, lambda stub, meta: stub.Fetch(request, timeout=self.timeout_s,
                                                                 metadata=meta).container)

    def _call(self, address: str, call: Callable[[enhancement_pb2_grpc.EnhancementStoreStub, tuple], bytes]) -> bytes:
        """`call(stub, metadata)`, retried on UNAVAILABLE; the request's id goes along as x-request-id."""
        edge = self.names.get(address, "other")
        metadata = request_id.grpc_metadata()
        with self.metrics.fetch_seconds.labels(edge).time():
            for attempt in range(self.retries + 1):
                try:
                    return call(self._stub(address), metadata)
                except grpc.RpcError as exc:
                    if exc.code() not in RETRYABLE or attempt == self.retries:
                        self.metrics.fetch_failures.labels(edge, exc.code().name).inc()
                        raise EdgeFetchError(exc.code(),
                                             f"edge {address}: {exc.code().name}: {exc.details()}") from exc
                    time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def fetch_snapshot(self, address: str, face_id: str) -> bytes:
        """The scene snapshot the edge keeps of a face (JPEG)."""
        request = enhancement_pb2.SnapshotRequest(face_id=face_id)
        return self._call(address, lambda stub, meta: stub.FetchSnapshot(request, timeout=self.timeout_s,
                                                                         metadata=meta).jpeg)

    def close(self) -> None:
        self._channels.close()
