"""Append-only audit trail: every pixel view, biometric search, listing, enrolment, deletion, erasure
and key change, and a per-client summary of denied attempts, in one Redis stream shared by all services
and replicas.

    fc:audit (AUDIT_STREAM)   stream   at, key_id, key_name, action, outcome, status, client, face_id, identity_id,
                        layers, detail
    fc:audit:dropped (AUDIT_DROPPED)   int   entries the safety cap ever removed (0 unless it was hit)

Nothing in the services deletes or edits entries. Retention is by time: each append trims entries
older than `retention_days` (XADD MINID), so no volume of requests can push a recent entry out.
`max_entries` is only a memory guard: if the stream ever holds more, the oldest go, the count is added to
`fc:audit:dropped` (shown by the analyzer's `GET /v1/health`) and an error is logged for each append
that dropped some.

Every field is sanitised here, whatever the caller passes: ids that break the id rule become
`invalid:<sha256 prefix>`, text loses control characters and is bounded.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import redis

from service_common import request_id
from service_common.ids import HEX32_PATTERN, KEY_ID_PATTERN, audit_safe
from service_common.redis_keys import AUDIT_DROPPED, AUDIT_STREAM

log = logging.getLogger(__name__)

FIELDS = ("key_id", "key_name", "action", "outcome", "status", "client", "face_id", "identity_id", "layers",
          "detail")
SCAN_CAP = 200_000  # entries one query may scan for its filters, newest first
DAY_MS = 86_400_000
TEXT_MAX = {"key_name": 64, "action": 64, "outcome": 16, "client": 64, "layers": 32, "detail": 500}
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# KEYS: stream, dropped counter; ARGV: min id (ms), cap, then field/value pairs.
# allow-oom: written even when Redis is full (service_common/redis_oom.py): an erasure or a denied view
# is recorded, not lost.
APPEND = """#!lua flags=allow-oom
local id = redis.call('XADD', KEYS[1], 'MINID', ARGV[1], '*', unpack(ARGV, 3))
local dropped = 0
if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[2]) then
  dropped = redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[2]))
  redis.call('INCRBY', KEYS[2], dropped)
end
return {id, dropped}
"""


def clean_text(value: object, limit: int) -> str:
    """Printable, one line, at most `limit` characters."""
    return CONTROL.sub("?", str(value))[:limit]


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
    request_id: str = ""  # the request's X-Request-ID (service_common/request_id.py): its logs, other services


class AuditLog:
    def __init__(self, client: redis.Redis, max_entries: int = 10_000_000, retention_days: float = 365) -> None:
        self.r, self.max_entries, self.retention_days = client, max_entries, retention_days
        self._append = client.register_script(APPEND)

    def record(self, action: str, outcome: str, status: int, *, key_id: str = "", key_name: str = "",
               client: str = "", face_id: str = "", identity_id: str = "", layers: str = "",
               detail: str = "") -> str:
        fields = {"key_id": audit_safe(key_id, KEY_ID_PATTERN), "key_name": key_name, "action": action,
                  "outcome": outcome, "status": int(status), "client": client, "face_id": audit_safe(face_id),
                  "identity_id": audit_safe(identity_id, HEX32_PATTERN), "layers": layers, "detail": detail,
                  "request_id": request_id.current() or ""}
        fields = {k: clean_text(v, TEXT_MAX.get(k, 64)) for k, v in fields.items()}
        min_id = max(0, int(time.time() * 1000 - self.retention_days * DAY_MS))
        entry_id, dropped = self._append(keys=[AUDIT_STREAM, AUDIT_DROPPED],
                                         args=[min_id, self.max_entries, *(x for kv in fields.items() for x in kv)])
        if dropped:
            log.error("audit stream over its cap of %d entries: %d oldest entries dropped (raise *_AUDIT_MAX_ENTRIES "
                      "or find who writes so much)", self.max_entries, dropped)
        return entry_id.decode()

    def dropped(self) -> int:
        """Entries the safety cap has removed, ever (retention by time is not counted: that is policy)."""
        return int(self.r.get(AUDIT_DROPPED) or 0)

    def query(self, since_ms: int | None = None, until_ms: int | None = None, key_id: str | None = None,
              action: str | None = None, face_id: str | None = None, identity_id: str | None = None,
              before: str | None = None, limit: int = 100) -> tuple[list[AuditEntry], str | None]:
        """Entries matching every given filter, newest first; the second value continues the listing
        (pass it as `before`) when more may match."""
        if before == "0-0":  # nothing is older than the first possible id (and Redis refuses "(0-0")
            return [], None
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
                      detail=f.get("detail", ""), request_id=f.get("request_id", ""))
