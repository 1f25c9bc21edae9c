"""The one Redis key schema: every `fc:...` key the services use is named here, and only here.

Key values never change (they are data on disk); only where they are built. Each key has one owner, the
module that writes it; others may read it. The table with types, fields and retention is
docs/redis-keys.md.

Owners (who writes) and readers, by group:
- faces, the ingest stream and its group, sightings, tracks, cameras, events: cloud_analyzer/store.py;
  read by cloud_reconstructor/store.py (`face_key` and FACE_VIEW_FIELDS only), history, clusters.
- identities, templates (and their ids), the name index, the gallery's vector sets, counts and version:
  cloud_analyzer/identities.py;
  read by cloud_analyzer/gallery.py and routers/history.py.
- history partitions: cloud_analyzer/store.py, with each decision; read by cloud_analyzer/history.py.
- unknown-face clusters and their lock: cloud_analyzer/clusters.py.
- corrections (per face) and negative examples (per identity): cloud_analyzer/corrections.py; read by
  cloud_analyzer/decision.py (negatives); erasure and retention delete them with faces and identities.
- erasures: cloud_analyzer/erasure.py (queued by Eraser); cloud_analyzer/edge_eraser.py confirms each edge.
- the retention lock: cloud_analyzer/retention.py; Idempotency-Key answers: cloud_analyzer/idempotency.py.
- webhooks and the event publishers' consumer groups (webhooks, mqtt) on the events stream, the identities
  announced to Home Assistant: cloud_analyzer/events/.
- API keys and rate counters: service_common/access/keys.py and ratelimit.py; the audit stream:
  service_common/access/audit.py; used by both cloud services.

Erasure and retention delete what other modules wrote; they stay correct because every module builds
the same names from these functions.
"""

from __future__ import annotations

import calendar
import hashlib
import time

PREFIX = "fc:"

# --- faces, ingest, sightings, events (cloud_analyzer/store.py) ----------------------------------------
INGEST_STREAM = "fc:ingest"
GROUP = "recognisers"  # the ingest stream's consumer group: one consumer per worker thread
FACES = "fc:faces"  # every stored face by capture time, whatever its status: what retention walks
EVENTS_STREAM = "fc:events"
EVENTS_MAXLEN = 100_000
EVENTS_GROUP_WEBHOOKS = "webhooks"  # the events stream's consumer group of the webhook deliverer
EVENTS_GROUP_MQTT = "mqtt"  # the events stream's consumer group of the MQTT publisher
SIGHTINGS = "fc:sightings"  # face_id by capture time (ms), every decided face
CAMERAS = "fc:cameras"  # camera_id by last capture time (ms)
EDGES_SEEN = "fc:edges:seen"  # hash: edge_id -> when it last delivered on Ingest (ms, analyzer clock)

# The fields of a face record the reconstructor reads (the analyzer's ingest writes them).
FACE_VIEW_FIELDS = ("base_layer", "edge_id", "enhancement_levels")


def face_key(face_id: str) -> str:
    """A face's record (hash); `face_key("*")` is the pattern of every face record."""
    return f"fc:face:{face_id}"


def identity_sightings_key(identity_id: str) -> str:
    """Sightings of one identity (zset, face_id by capture time)."""
    return f"fc:sightings:identity:{identity_id}"


def camera_sightings_key(camera_id: str) -> str:
    """Sightings of one camera (zset, face_id by capture time)."""
    return f"fc:sightings:camera:{camera_id}"


def fusion_descriptor_key(face_id: str) -> str:
    """A recently decided face's decoded descriptor for fusing its camera's next faces (string, expires)."""
    return f"fc:fusion:{face_id}"


def track_key(track_id: str) -> str:
    """The decided faces of one edge track (zset, face_id by capture time)."""
    return f"fc:track:{track_id}"


def track_info_key(track_id: str) -> str:
    """A closed edge track's summary (hash); its decided faces are `track_key(track_id)`."""
    return f"fc:trackinfo:{track_id}"


def track_erased_key(track_id: str) -> str:
    """Set when an erasure removed a face of this track: its closing notice, still on its way from the
    edge, must not store a summary again (string, expires after ERASED_TRACK_TTL_S)."""
    return f"fc:trackerased:{track_id}"


# Longer than the default capture window (365 days): a notice captured before that is refused anyway.
ERASED_TRACK_TTL_S = 366 * 86400

# --- identities and the gallery (cloud_analyzer/identities.py) -----------------------------------------
IDENTITIES = "fc:identities"  # identity_id by creation time (ms)
GALLERY_VERSION = "fc:gallery:version"
GALLERY_SCHEMA = "fc:gallery:schema"  # set once every identity is in the vector sets (migration done)


def identity_key(identity_id: str) -> str:
    return f"fc:identity:{identity_id}"


def templates_key(identity_id: str) -> str:
    return f"fc:identity:{identity_id}:tmpl"


def template_info_key(identity_id: str) -> str:
    """What each template is (list of JSON: template_id, source, face_id, quality, added_at_ms), in the
    order of `templates_key`'s vectors; the two lists are only ever rewritten together."""
    return f"fc:identity:{identity_id}:tmplinfo"


def identity_name_key(name: str) -> str:
    """Identities of one exact name (set of identity_id): the by-name lookup. Hashed, so that a name
    of any characters makes a well-formed key."""
    return f"fc:identityname:{hashlib.sha256(name.encode()).hexdigest()[:40]}"


TEMPLATE_OWNERS = "fc:templates:owner"  # template_id -> identity_id (hash): a template found by its id alone
IDENTITY_SCHEMA = "fc:identities:schema"  # 2 once every identity has template ids and is in the name index


def idempotency_key(key_id: str, scope: str, idempotency_key: str) -> str:
    """The first answer of a creating POST sent with this `Idempotency-Key` by this API key (string,
    JSON: the request's fingerprint, status and body; expires after IDEMPOTENCY_TTL_S)."""
    digest = hashlib.sha256(f"{scope}\n{idempotency_key}".encode()).hexdigest()[:40]
    return f"fc:idem:{key_id}:{digest}"


IDEMPOTENCY_TTL_S = 24 * 3600


def mean_key(identity_id: str) -> str:
    """The identity's template: the normalised mean of its enrolment descriptors, float32 bytes."""
    return f"fc:identity:{identity_id}:mean"


def gallery_key(model: str) -> str:
    """Vector set of one descriptor model's identity templates (element: identity_id)."""
    return f"fc:vgallery:{model}"


def enrol_counts_key(model: str) -> str:
    """Hash enrolment key (photos, capped) -> identities: the gallery make-up the threshold depends on."""
    return f"fc:gallery:enrol:{model}"


# --- history (written with each decision by cloud_analyzer/store.py, read by history.py) ---------------
HISTORY_PATTERN = "fc:history:*"  # every partition: scanned once, for the days written before HISTORY_DAYS


def history_pattern(model: str) -> str:
    """Every history partition of one descriptor model."""
    return f"fc:history:{model}:*"


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


HISTORY_DAYS = "fc:history:days"  # zset: `{model}:{yyyymmdd}` by the day's start (ms): what retention walks
HISTORY_DAYS_SCHEMA = "fc:history:days:schema"  # set once the days written before HISTORY_DAYS are in it


def history_days_member(model: str, captured_at_ms: int) -> str:
    """One descriptor model's UTC day in HISTORY_DAYS (added with each decision that writes history)."""
    return history_day(model, captured_at_ms).removeprefix("fc:history:")


def parse_history_key(key: str) -> tuple[str, int] | None:
    """(model, the day's start in ms) of a `history_key` partition or `history_cameras_key` set; None for
    any other key under HISTORY_PATTERN."""
    head, sep, _camera = key.rpartition(":")
    prefix, _, day = head.rpartition(":")
    if not (sep and prefix.startswith("fc:history:") and len(day) == 8 and day.isdigit()):
        return None
    return prefix.removeprefix("fc:history:"), calendar.timegm(time.strptime(day, "%Y%m%d")) * 1000


# --- corrections and negative examples (cloud_analyzer/corrections.py) ----------------------------------
def corrections_key(face_id: str) -> str:
    """The corrections people made to one face's decision (list of JSON, oldest first). Not under
    `face_key`: `face_key("*")` matches face records only."""
    return f"fc:corrections:{face_id}"


def negatives_key(identity_id: str) -> str:
    """Faces people said are not this identity (hash: face_id -> 8-byte added-at ms + float32 descriptor),
    at most MAX_NEGATIVES (cloud_analyzer/corrections.py) per identity."""
    return f"fc:identity:{identity_id}:neg"


# --- unknown-face clusters (cloud_analyzer/clusters.py) ------------------------------------------------
CLUSTERS = "fc:clusters"  # cluster_id by last seen (ms)
CLUSTER_SIZES = "fc:clusters:size"  # cluster_id by size
CLUSTER_OF = "fc:clusters:of"  # face_id -> cluster_id
CLUSTER_PARTS = ("members", "faces", "score", "cameras")  # the per-cluster keys beside its hash


def unknown_vset_key(model: str) -> str:
    """Vector set of one descriptor model's cluster centroids (element: cluster_id)."""
    return f"fc:vunknown:{model}"


def cluster_key(cluster_id: str) -> str:
    return f"fc:cluster:{cluster_id}"


def cluster_part_key(cluster_id: str, part: str) -> str:
    """One of a cluster's CLUSTER_PARTS."""
    return f"fc:cluster:{cluster_id}:{part}"


def clusters_lock_key(model: str) -> str:
    """Held while a replica changes the clusters of one descriptor model."""
    return f"fc:clusters:lock:{model}"


# --- erasures (cloud_analyzer/erasure.py) --------------------------------------------------------------
ERASURES_PENDING = "fc:erasures:pending"  # `{erasure_id}|{edge_id}` pairs not yet confirmed
ERASURES = "fc:erasures"  # zset: every erasure id by when it was requested (ms): GET /v1/erasures
# Set (to the time, ms) by an erasure: Redis's files still hold what it erased until they are rewritten.
# Cleared by the replica that starts the rewrite (cloud_analyzer/compaction.py).
ERASURES_COMPACT = "fc:erasures:compact"
ERASURES_COMPACT_LOCK = "fc:erasures:compact:lock"  # the last rewrite's replica; expires after one interval


def erasure_key(erasure_id: str) -> str:
    """What an erasure removed and each edge's status (hash, field `report`)."""
    return f"fc:erasure:{erasure_id}"


def erasure_edge_key(erasure_id: str, edge_id: str) -> str:
    """Face ids one edge still has to erase for one erasure (set)."""
    return f"fc:erasure:{erasure_id}:edge:{edge_id}"


# --- retention (cloud_analyzer/retention.py) -----------------------------------------------------------
RETENTION_LOCK = "fc:retention:lock"  # the replica running this round (expires after one interval)

# --- access: keys, rate limits, audit (service_common/access) ------------------------------------------
API_KEYS = "fc:keys"  # key_id by creation time (ms)
AUDIT_STREAM = "fc:audit"


def api_key_key(key_id: str) -> str:
    """One API key's record (hash: name, scopes, sha256, ...)."""
    return f"fc:key:{key_id}"


def rate_key(name: str) -> str:
    """A sliding-window rate log (zset: one member per admitted request, scored by its time in ms;
    expires one window after the last): `name` is a key id, or `denied:<client>` for a client's denials."""
    return f"fc:rate:{name}"


AUDIT_DROPPED = "fc:audit:dropped"  # int: entries the audit stream's safety cap ever removed
DENIALS_PENDING = "fc:denied:pending"  # zset: denial window hashes by the end of their window (ms)


def denial_window_key(window_start_ms: int, client: str, key_id: str) -> str:
    """Denials of one client (and key, if one was presented and valid) in one window (hash: client
    key_id first s401 s403 s429 window_start_ms); summarised into one audit entry, then deleted."""
    return f"fc:denied:{window_start_ms}:{client}:{key_id}"


# --- event publishers (cloud_analyzer/events/) ---------------------------------------------------------
WEBHOOKS = "fc:webhooks"  # webhook ids by creation time (zset)
MQTT_ANNOUNCED = "fc:mqtt:announced"  # identity ids announced to Home Assistant (set): removed ones get an empty config


def webhook_key(webhook_id: str) -> str:
    """One webhook (hash): url, secret, filters, state and delivery counters."""
    return f"fc:webhook:{webhook_id}"
