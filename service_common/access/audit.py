"""Append-only audit trail: every pixel view, enrolment, deletion, erasure and key change, and every
denied attempt, in one Redis stream shared by all services and replicas.

    fc:audit (AUDIT_STREAM)   stream   at, key_id, key_name, action, outcome, status, client, face_id, identity_id,
                        layers, detail

Nothing in the services deletes or edits entries; the stream is capped at `max_entries` (oldest
dropped first; size it to cover the audit retention your policy asks for).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from service_common.redis_keys import AUDIT_STREAM
from service_common.redis_oom import atomic_writes

FIELDS = ("key_id", "key_name", "action", "outcome", "status", "client", "face_id", "identity_id", "layers",
          "detail")
SCAN_CAP = 200_000  # entries one query may scan for its filters, newest first


@dataclass(frozen=True)
class AuditEntry:
    id: str
    at_ms: int
    key_id: str
    key_name: str
    action: str
    outcome: str  # ok | denied | failed
    status: int
    client: str
    face_id: str
    identity_id: str
    layers: str
    detail: str


class AuditLog:
    def __init__(self, client: redis.Redis, max_entries: int = 10_000_000) -> None:
        self.r, self.max_entries = client, max_entries

    def record(self, action: str, outcome: str, status: int, *, key_id: str = "", key_name: str = "",
               client: str = "", face_id: str = "", identity_id: str = "", layers: str = "",
               detail: str = "") -> str:
        fields = {"key_id": key_id, "key_name": key_name, "action": action, "outcome": outcome, "status": status,
                  "client": client, "face_id": face_id, "identity_id": identity_id, "layers": layers,
                  "detail": detail[:500]}
        # Written even when Redis is full: an erasure or a denied view is recorded, not lost.
        args = [x for item in fields.items() for x in item]
        (entry_id,) = atomic_writes(self.r, [("XADD", AUDIT_STREAM, "MAXLEN", "~", self.max_entries, "*", *args)])
        return entry_id.decode()

    def query(self, since_ms: int | None = None, until_ms: int | None = None, key_id: str | None = None,
              action: str | None = None, face_id: str | None = None, identity_id: str | None = None,
              before: str | None = None, limit: int = 100) -> tuple[list[AuditEntry], str | None]:
        """Entries matching every given filter, newest first; the second value continues the listing
        (pass it as `before`) when more may match."""
        hi = f"({before}" if before else (str(until_ms) if until_ms is not None else "+")
        lo = str(since_ms) if since_ms is not None else "-"
        wanted = {"key_id": key_id, "action": action, "face_id": face_id, "identity_id": identity_id}
        wanted = {k: v for k, v in wanted.items() if v}
        out: list[AuditEntry] = []
        scanned, last = 0, None
        while len(out) < limit and scanned < SCAN_CAP:
            rows = self.r.xrevrange(AUDIT_STREAM, max=hi, min=lo, count=500)
            if not rows:
                return out, None
            for raw_id, raw in rows:
                scanned += 1
                last = raw_id.decode()
                f = {k.decode(): v.decode() for k, v in raw.items()}
                if all(f.get(k) == v for k, v in wanted.items()):
                    out.append(_entry(last, f))
                    if len(out) == limit:
                        break
            hi = f"({last}"
        return out, last if (len(out) == limit or scanned >= SCAN_CAP) else None

    def __len__(self) -> int:
        return int(self.r.xlen(AUDIT_STREAM))


def _entry(entry_id: str, f: dict[str, str]) -> AuditEntry:
    return AuditEntry(id=entry_id, at_ms=int(entry_id.split("-")[0]), key_id=f.get("key_id", ""),
                      key_name=f.get("key_name", ""), action=f.get("action", ""), outcome=f.get("outcome", ""),
                      status=int(f.get("status") or 0), client=f.get("client", ""), face_id=f.get("face_id", ""),
                      identity_id=f.get("identity_id", ""), layers=f.get("layers", ""),
                      detail=f.get("detail", ""))
