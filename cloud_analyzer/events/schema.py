"""One event's content: what the workers write to the events stream and what every channel sends.

The stream holds flat string fields (Redis streams hold nothing else); `Event` is their typed form, the
same JSON on SSE, webhooks and MQTT."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# What every decision event carries, in this order in the stream. Empty string: none.
FIELDS = ("type", "face_id", "camera_id", "captured_at_ms", "decided_at_ms", "status", "identity_id",
          "identity_name", "cluster_id", "track_id", "quality", "similarity", "threshold", "fpir")


def decision_fields(face: dict[str, Any], status: str, identity_id: str | None, identity_name: str | None,
                    cluster_id: str | None, similarity: str, threshold: str, fpir: str,
                    decided_at_ms: int) -> dict[str, str | int]:
    """The stream fields of one decision (`similarity`, `threshold`, `fpir` already formatted as the
    face record stores them)."""
    return {"type": "face.recognised" if identity_id else f"face.{status}", "face_id": face["face_id"],
            "camera_id": face["camera_id"], "captured_at_ms": int(face["captured_at_ms"]),
            "decided_at_ms": decided_at_ms, "status": status, "identity_id": identity_id or "",
            "identity_name": identity_name or "", "cluster_id": cluster_id or "",
            "track_id": face.get("track_id") or "", "quality": face.get("quality_score") or "",
            "similarity": similarity, "threshold": threshold, "fpir": fpir}


class Event(BaseModel):
    """A decision (or a later relabelling) as every channel sends it."""

    id: str = Field(description="the events stream's id: SSE's `id:`, `Last-Event-ID` resumes after it")
    type: str = Field(description="face.recognised | face.unknown | face.low_quality | face.error | "
                                  "face.relabelled | face.corrected")
    face_id: str
    camera_id: str
    captured_at_ms: int
    decided_at_ms: int | None = None
    status: str
    identity_id: str | None = None
    identity_name: str | None = None
    cluster_id: str | None = None
    track_id: str | None = None
    quality: float | None = Field(None, description="the edge's 0-1 quality score")
    similarity: float | None = None
    threshold: float | None = None
    fpir: float | None = Field(None, description="false positive identification rate of the decision")
    action: str | None = Field(None, description="face.corrected: reject | reassign (docs/corrections.md)")
    previous_identity_id: str | None = Field(None, description="face.corrected: who the face was named as")
    rejected_identity_id: str | None = Field(None, description="face.corrected: whose negative example it became")
    corrected_by: str | None = Field(None, description="face.corrected: the API key id that corrected it")

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[str, str]) -> Event:
        def opt(name: str) -> str | None:
            return fields.get(name) or None

        def num(name: str) -> float | None:
            value = fields.get(name) or ""
            try:
                return float(value) if value else None
            except ValueError:
                return None

        kind = fields.get("type", "")
        status = fields.get("status") or ("recognised" if kind in ("face.recognised", "face.relabelled")
                                          else kind.removeprefix("face."))
        decided = fields.get("decided_at_ms") or ""
        return cls(id=entry_id, type=kind, face_id=fields.get("face_id", ""), camera_id=fields.get("camera_id", ""),
                   captured_at_ms=int(fields.get("captured_at_ms") or 0),
                   decided_at_ms=int(decided) if decided.isdigit() else None, status=status,
                   identity_id=opt("identity_id"), identity_name=opt("identity_name"), cluster_id=opt("cluster_id"),
                   track_id=opt("track_id"), quality=num("quality"), similarity=num("similarity"),
                   threshold=num("threshold"), fpir=num("fpir") if "fpir" in fields else num("decision_fpir"),
                   action=opt("action"), previous_identity_id=opt("previous_identity_id"),
                   rejected_identity_id=opt("rejected_identity_id"), corrected_by=opt("key_id"))


class EventFilter(BaseModel):
    """Which events a subscriber (an SSE client, a webhook) wants: every given field must match."""

    camera_id: str | None = None
    identity_id: str | None = None
    status: str | None = None
    cluster_id: str | None = None

    def matches(self, event: Event) -> bool:
        return all(want is None or getattr(event, name) == want for name, want in self)

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self if v is not None}


def decode_entry(entry_id: bytes | str, raw: dict[bytes, bytes]) -> Event:
    """An events stream entry as redis-py returns it."""
    return Event.from_stream(entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                             {k.decode(): v.decode() for k, v in raw.items()})


def stream_id(value: str) -> tuple[int, int]:
    """A stream id as numbers, for ordering (`"1700000000000-3"` -> (1700000000000, 3))."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)
