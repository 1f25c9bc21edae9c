"""Names of everything the analyzer keeps in Redis (the full table: docs/redis-keys.md)."""

from __future__ import annotations

import time

INGEST_STREAM = "fc:ingest"
FACES = "fc:faces"  # every stored face by capture time, whatever its status: what retention walks
GROUP = "recognisers"
EVENTS_STREAM = "fc:events"
EVENTS_MAXLEN = 100_000
GALLERY_VERSION = "fc:gallery:version"


def face_key(face_id: str) -> str:
    return f"fc:face:{face_id}"


def track_info_key(track_id: str) -> str:
    """A closed edge track's summary (hash); its decided faces are the zset fc:track:{track_id}."""
    return f"fc:trackinfo:{track_id}"


def track_erased_key(track_id: str) -> str:
    """Set when an erasure removed a face of this track: its closing notice, still on its way from the
    edge, must not store a summary again (string, expires after ERASED_TRACK_TTL_S)."""
    return f"fc:trackerased:{track_id}"


# Longer than the default capture window (365 days): a notice captured before that is refused anyway.
ERASED_TRACK_TTL_S = 366 * 86400


def identity_key(identity_id: str) -> str:
    return f"fc:identity:{identity_id}"


def templates_key(identity_id: str) -> str:
    return f"fc:identity:{identity_id}:tmpl"


def mean_key(identity_id: str) -> str:
    """The identity's template: the normalised mean of its enrolment descriptors, float32 bytes."""
    return f"fc:identity:{identity_id}:mean"


def gallery_key(model: str) -> str:
    """Vector set of one descriptor model's identity templates (element: identity_id)."""
    return f"fc:vgallery:{model}"


def enrol_counts_key(model: str) -> str:
    """Hash enrolment key (photos, capped) -> identities: the gallery make-up the threshold depends on."""
    return f"fc:gallery:enrol:{model}"


def history_day(model: str, captured_at_ms: int) -> str:
    """Prefix of one descriptor model's history partitions of one UTC day."""
    return f"fc:history:{model}:{time.strftime('%Y%m%d', time.gmtime(captured_at_ms / 1000))}"


def history_key(model: str, captured_at_ms: int, camera_id: str) -> str:
    """Vector set of every face of one descriptor model one camera captured on one UTC day (element:
    face_id, attribute ts). Camera in the key, not in a FILTER: a camera-filtered search touches only
    its cameras' sets (docs/index-choice.md: p95 1.8 ms against 30 ms at 1M faces); retention drops days."""
    return f"{history_day(model, captured_at_ms)}:{camera_id}"


def history_cameras_key(model: str, captured_at_ms: int) -> str:
    """Set of the cameras with a history partition that day: what an unfiltered search fans out over."""
    return f"{history_day(model, captured_at_ms)}:cameras"


GALLERY_SCHEMA = "fc:gallery:schema"  # set once every identity is in the vector sets (migration done)
