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

One schema for standalone Redis and Redis Cluster. What one Lua script, MULTI transaction or multi-key
command touches shares a hash tag (the `{...}` part: Redis Cluster hashes only that), so it is in one
slot (service_common/redis_slots.py checks it in the tests, on a standalone Redis too):
- `{f<n>}` (written `{f<n>.<k>}`: FACE_TAGS), n = crc32(face_id) mod FACE_SHARDS: a face's record,
  fusion descriptor and corrections, and shard n's ingest stream, face index and sighting index (ingest
  and a decision's face step: one slot);
- `{g<n>}` (`{g0}` for one shard, else `{g<n>.<k>}`: GALLERY_TAGS), n = crc32(identity_id) mod
  GALLERY_SHARDS: an identity's record, templates, mean and negatives, and gallery shard n's vector sets,
  enrolment counts, version, identity index, name index and template owners (an enrolment: one slot);
- the `.<k>` of a sharded tag (`spread_tag`) puts shard n in the n-th of even slot ranges, so the shards
  spread evenly over a cluster's primaries;
- `{i:<identity_id>}`: an identity's sightings; `{cam:<camera_id>}`: a camera's sightings;
  `{t:<track_id>}`: a track's faces, summary and erasure mark;
- `{clusters}` (one cluster shard, the default) or `{c<n>.<k>}` (CLUSTER_TAGS), n = crc32(cluster_id) mod
  CLUSTER_SHARDS: a cluster's hash and parts, and shard n's centroid sets, indexes, erasure counter, merge
  journals and locks (a join: one slot); `{erasures}`, `{keys}`,
  `{audit}`, `{denied}`, `{webhooks}`: one tag per group a script or transaction spans.
Keys written only alone (the events stream, history partitions, locks, ...) have no tag. A decision's
writes in other slots than its face's are made in steps that are safe to repeat and against an erasure
in between (cloud_analyzer/store.py). Data stored under the names before hash tags is renamed once at
the analyzer's start on a standalone Redis (cloud_analyzer/key_migration.py, KEY_SCHEMA).
"""

from __future__ import annotations

import calendar
import hashlib
import time
import zlib

from redis.crc import key_slot

from service_common.key_layout import layout_text, shard_counts

PREFIX = "fc:"
KEY_SCHEMA = "fc:keyschema"  # the key layout's version: KEY_SCHEMA_VERSION once the names have hash tags
KEY_SCHEMA_VERSION = 2
KEY_MIGRATION_LOCK = "fc:keyschema:lock"  # the replica renaming keys of the old layout (expires)
KEY_LAYOUT = "fc:keyschema:layout"  # the shard counts the data was written with: a service with others refuses

# Face shards: a face's keys and its share of the ingest stream, face index and sighting index live under
# `{f<n>}`. Gallery shards: vector sets searched in one pipeline and merged by the exact re-rank (reads scale
# through replicas, not through more shards). Cluster-state shards: each unknown-face cluster lives in shard
# crc32(cluster_id) mod CLUSTER_SHARDS, with that shard's centroid sets, indexes, erasure counter and locks
# (cloud_analyzer/clusters.py); one (the default) keeps the single `{clusters}` tag, more spread the
# clusters' memory and traffic over a cluster's primaries. All three chosen before the first start
# (FACECODEC_FACE_SHARDS, default 16; FACECODEC_GALLERY_SHARDS and FACECODEC_CLUSTER_SHARDS, default 1:
# service_common/key_layout.py), the same for every service; KEY_LAYOUT keeps them, and a service started
# with other counts refuses to run. Changing one moves every face, identity or cluster (a migration, not a
# setting).
FACE_SHARDS, GALLERY_SHARDS, CLUSTER_SHARDS = shard_counts()
LAYOUT = layout_text(FACE_SHARDS, GALLERY_SHARDS, CLUSTER_SHARDS)
SLOTS = 16384  # Redis Cluster's hash slots


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def face_shard(face_id: str) -> int:
    return _crc(face_id) % FACE_SHARDS


def gallery_shard(identity_id: str) -> int:
    return _crc(identity_id) % GALLERY_SHARDS


def spread_tag(prefix: str, shard: int, count: int) -> str:
    """The hash tag of shard `shard` of `count` of one family: `<prefix><shard>.<k>`, the first `.k` suffix
    that hashes into the shard-th count-th of the 16384 slots. Primaries take even ranges of slots
    (`redis-cli --cluster create`, devstack.redis_cluster), so the shards spread over them as evenly as the
    counts allow, exactly so when `count` is divisible by the primaries (48 shards: 16/16/16 on 3, 8 each on
    6; 16 shards: 5/6/5 and 3/2/3/3/2/3). Bare `f<n>` tags fell 4/8/4 and 4/0/4/4/0/4 for 16."""
    first, last = SLOTS * shard // count, SLOTS * (shard + 1) // count
    k = 0
    while not first <= key_slot(f"{prefix}{shard}.{k}".encode()) < last:
        k += 1
    return f"{prefix}{shard}.{k}"


FACE_TAGS = tuple(spread_tag("f", s, FACE_SHARDS) for s in range(FACE_SHARDS))  # face shard n's hash tag
# Gallery shard n's hash tag: one shard keeps the bare `g0` its data was written with; several are spread.
GALLERY_TAGS = ("g0",) if GALLERY_SHARDS == 1 else tuple(spread_tag("g", s, GALLERY_SHARDS)
                                                         for s in range(GALLERY_SHARDS))


def _f(face_id: str) -> str:
    return f"fc:{{{FACE_TAGS[face_shard(face_id)]}}}"


def _g(identity_id: str) -> str:
    return _gallery(gallery_shard(identity_id))


def _gallery(shard: int) -> str:
    return f"fc:{{{GALLERY_TAGS[shard]}}}"


# --- faces, ingest, sightings, events (cloud_analyzer/store.py) ----------------------------------------
GROUP = "recognisers"  # each ingest stream's consumer group: one consumer per worker thread
EVENTS_STREAM = "fc:events"
EVENTS_MAXLEN = 100_000
EVENTS_GROUP_WEBHOOKS = "webhooks"  # the events stream's consumer group of the webhook deliverer
EVENTS_GROUP_MQTT = "mqtt"  # the events stream's consumer group of the MQTT publisher
CAMERAS = "fc:cameras"  # camera_id by last capture time (ms)
EDGES_SEEN = "fc:edges:seen"  # hash: edge_id -> when it last delivered on Ingest (ms, analyzer clock)

# The fields of a face record the reconstructor reads (the analyzer's ingest writes them).
FACE_VIEW_FIELDS = ("base_layer", "edge_id", "enhancement_levels")


def face_key(face_id: str) -> str:
    """A face's record (hash)."""
    return f"{_f(face_id)}:face:{face_id}"


FACE_RECORDS_PATTERN = "fc:{f*}:face:*"  # every face record (SCAN MATCH)


def ingest_stream_key(shard: int) -> str:
    """One face shard's ingest stream (face_id, request_id); consumer group GROUP."""
    return f"fc:{{{FACE_TAGS[shard]}}}:ingest"


def ingest_stream_of(face_id: str) -> str:
    return ingest_stream_key(face_shard(face_id))


def faces_key(shard: int) -> str:
    """One face shard's stored faces by capture time (zset), whatever their status: what retention walks."""
    return f"fc:{{{FACE_TAGS[shard]}}}:faces"


def sightings_key(shard: int) -> str:
    """One face shard's decided faces by capture time (ms) (zset): listings merge the shards."""
    return f"fc:{{{FACE_TAGS[shard]}}}:sightings"


INGEST_STREAMS = tuple(ingest_stream_key(s) for s in range(FACE_SHARDS))
FACE_INDEXES = tuple(faces_key(s) for s in range(FACE_SHARDS))
SIGHTINGS_SHARDS = tuple(sightings_key(s) for s in range(FACE_SHARDS))


def identity_sightings_key(identity_id: str) -> str:
    """Sightings of one identity (zset, face_id by capture time)."""
    return f"fc:{{i:{identity_id}}}:sightings"


def camera_sightings_key(camera_id: str) -> str:
    """Sightings of one camera (zset, face_id by capture time)."""
    return f"fc:{{cam:{camera_id}}}:sightings"


def fusion_descriptor_key(face_id: str) -> str:
    """A recently decided face's decoded descriptor for fusing its camera's next faces (string, expires)."""
    return f"{_f(face_id)}:fusion:{face_id}"


def track_key(track_id: str) -> str:
    """The decided faces of one edge track (zset, face_id by capture time)."""
    return f"fc:{{t:{track_id}}}:faces"


def track_info_key(track_id: str) -> str:
    """A closed edge track's summary (hash); its decided faces are `track_key(track_id)`."""
    return f"fc:{{t:{track_id}}}:info"


def track_erased_key(track_id: str) -> str:
    """Set when an erasure removed a face of this track: its closing notice, still on its way from the
    edge, must not store a summary again (string, expires after ERASED_TRACK_TTL_S)."""
    return f"fc:{{t:{track_id}}}:erased"


# Longer than the default capture window (365 days): a notice captured before that is refused anyway.
ERASED_TRACK_TTL_S = 366 * 86400

# --- identities and the gallery (cloud_analyzer/identities.py) -----------------------------------------
GALLERY_SCHEMA = "fc:gallery:schema"  # set once every identity is in the vector sets (migration done)


def identities_key(shard: int) -> str:
    """One gallery shard's identity_ids by creation time (ms) (zset)."""
    return f"{_gallery(shard)}:identities"


def gallery_version_key(shard: int) -> str:
    """Bumped on every change of gallery shard `shard` (int); the gallery's version is the shards' sum."""
    return f"{_gallery(shard)}:gallery:version"


def template_owners_key(shard: int) -> str:
    """template_id -> identity_id (hash) of the identities of one gallery shard."""
    return f"{_gallery(shard)}:templates:owner"


IDENTITY_INDEXES = tuple(identities_key(s) for s in range(GALLERY_SHARDS))


# The same keys named by the identity they serve (its gallery shard's).
def identities_of(identity_id: str) -> str:
    return identities_key(gallery_shard(identity_id))


def gallery_version_of(identity_id: str) -> str:
    return gallery_version_key(gallery_shard(identity_id))


def template_owners_of(identity_id: str) -> str:
    return template_owners_key(gallery_shard(identity_id))


def name_index_of(name: str, identity_id: str) -> str:
    return identity_name_key(name, gallery_shard(identity_id))


def gallery_of(model: str, identity_id: str) -> str:
    return gallery_key(model, gallery_shard(identity_id))


def enrol_counts_of(model: str, identity_id: str) -> str:
    return enrol_counts_key(model, gallery_shard(identity_id))


def identity_key(identity_id: str) -> str:
    return f"{_g(identity_id)}:identity:{identity_id}"


def templates_key(identity_id: str) -> str:
    return f"{_g(identity_id)}:identity:{identity_id}:tmpl"


def template_info_key(identity_id: str) -> str:
    """What each template is (list of JSON: template_id, source, face_id, quality, added_at_ms), in the
    order of `templates_key`'s vectors; the two lists are only ever rewritten together."""
    return f"{_g(identity_id)}:identity:{identity_id}:tmplinfo"


def identity_name_key(name: str, shard: int) -> str:
    """Identities of one exact name in one gallery shard (set of identity_id): the by-name lookup. Hashed,
    so that a name of any characters makes a well-formed key."""
    return identity_name_key_of_digest(hashlib.sha256(name.encode()).hexdigest()[:40], shard)


IDENTITY_SCHEMA = "fc:identities:schema"  # 2 once every identity has template ids and is in the name index


def idempotency_key(key_id: str, scope: str, idempotency_key: str) -> str:
    """The first answer of a creating POST sent with this `Idempotency-Key` by this API key (string,
    JSON: the request's fingerprint, status and body; expires after IDEMPOTENCY_TTL_S)."""
    digest = hashlib.sha256(f"{scope}\n{idempotency_key}".encode()).hexdigest()[:40]
    return f"fc:idem:{key_id}:{digest}"


IDEMPOTENCY_TTL_S = 24 * 3600


def mean_key(identity_id: str) -> str:
    """The identity's template: the normalised mean of its enrolment descriptors, float32 bytes."""
    return f"{_g(identity_id)}:identity:{identity_id}:mean"


def gallery_key(model: str, shard: int) -> str:
    """Vector set of one descriptor model's identity templates in one gallery shard (element: identity_id)."""
    return f"{_gallery(shard)}:vgallery:{model}"


def enrol_counts_key(model: str, shard: int) -> str:
    """Hash enrolment key (photos, capped) -> identities of one gallery shard: the gallery make-up the
    threshold depends on (summed over the shards)."""
    return f"{_gallery(shard)}:gallery:enrol:{model}"


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
    `face_key`."""
    return f"{_f(face_id)}:corrections:{face_id}"


def negatives_key(identity_id: str) -> str:
    """Faces people said are not this identity (hash: face_id -> 8-byte added-at ms + float32 descriptor),
    at most MAX_NEGATIVES (cloud_analyzer/corrections.py) per identity."""
    return f"{_g(identity_id)}:identity:{identity_id}:neg"


# --- unknown-face clusters (cloud_analyzer/clusters.py) ------------------------------------------------
# Cluster shard n's hash tag: `clusters` with one shard (the names before cluster shards), else `c<n>.<k>`
# spread over the slots as the face shards are.
CLUSTER_TAGS = ("clusters",) if CLUSTER_SHARDS == 1 else tuple(spread_tag("c", s, CLUSTER_SHARDS)
                                                                for s in range(CLUSTER_SHARDS))
CLUSTER_PARTS = ("members", "faces", "score", "cameras")  # the per-cluster keys beside its hash


def cluster_shard(cluster_id: str) -> int:
    """The shard a cluster lives in, for its whole life (a new cluster's random id spreads them evenly)."""
    return _crc(cluster_id) % CLUSTER_SHARDS


def _c(shard: int) -> str:
    return f"fc:{{{CLUSTER_TAGS[shard]}}}"


def clusters_key(shard: int) -> str:
    """One cluster shard's cluster_ids by last seen (ms) (zset): listings merge the shards."""
    return f"{_c(shard)}:all"


def cluster_sizes_key(shard: int) -> str:
    """One cluster shard's cluster_ids by size (zset)."""
    return f"{_c(shard)}:size"


def cluster_of_key(shard: int) -> str:
    """face_id -> cluster_id of the faces in one cluster shard's clusters (hash): a lookup asks every shard."""
    return f"{_c(shard)}:of"


def cluster_gone_key(shard: int) -> str:
    """Bumped (int) in every cluster shard whenever erasure or retention takes faces out of the clusters: a
    join that read a face before commits nothing (it WATCHes its shard's), then finds the face gone. A
    counter, not the ids: nothing of an erased face stays."""
    return f"{_c(shard)}:forgotten"


def cluster_moves_key(shard: int) -> str:
    """Journal of cross-shard merges out of this shard (hash: source cluster_id -> target cluster_id): set
    with the source's `moving_to` mark before anything moves, removed with the source (clusters.py)."""
    return f"{_c(shard)}:moves"


def cluster_moved_key(shard: int) -> str:
    """Journal of cross-shard merges into this shard (hash: source cluster_id -> target cluster_id): set in
    the transaction that adds the source's faces to the target, so a restart never adds them twice."""
    return f"{_c(shard)}:moved"


CLUSTER_INDEXES = tuple(clusters_key(s) for s in range(CLUSTER_SHARDS))
CLUSTER_SIZE_INDEXES = tuple(cluster_sizes_key(s) for s in range(CLUSTER_SHARDS))
CLUSTER_OF_SHARDS = tuple(cluster_of_key(s) for s in range(CLUSTER_SHARDS))
CLUSTER_GONE_SHARDS = tuple(cluster_gone_key(s) for s in range(CLUSTER_SHARDS))
# Shard 0's names: with one cluster shard, the only ones (and those the old layout is renamed to).
CLUSTERS, CLUSTER_SIZES, CLUSTER_OF, CLUSTER_GONE = (CLUSTER_INDEXES[0], CLUSTER_SIZE_INDEXES[0],
                                                     CLUSTER_OF_SHARDS[0], CLUSTER_GONE_SHARDS[0])


def unknown_vset_key(model: str, shard: int = 0) -> str:
    """Vector set of one descriptor model's cluster centroids in one cluster shard (element: cluster_id)."""
    return f"{_c(shard)}:vunknown:{model}"


def cluster_key(cluster_id: str) -> str:
    return f"{_c(cluster_shard(cluster_id))}:cluster:{cluster_id}"


def cluster_part_key(cluster_id: str, part: str) -> str:
    """One of a cluster's CLUSTER_PARTS."""
    return f"{cluster_key(cluster_id)}:{part}"


def clusters_lock_key(model: str, shard: int = 0) -> str:
    """Held while a replica changes the clusters of one descriptor model in one cluster shard."""
    return f"{_c(shard)}:lock:{model}"


# --- erasures (cloud_analyzer/erasure.py) --------------------------------------------------------------
ERASURES_PENDING = "fc:{erasures}:pending"  # `{erasure_id}|{edge_id}` pairs not yet confirmed
ERASURES = "fc:{erasures}:all"  # zset: every erasure id by when it was requested (ms): GET /v1/erasures
# Set (to the time, ms) by an erasure: Redis's files still hold what it erased until they are rewritten.
# Cleared by the replica that starts the rewrite (cloud_analyzer/compaction.py).
ERASURES_COMPACT = "fc:erasures:compact"
ERASURES_COMPACT_LOCK = "fc:erasures:compact:lock"  # the last rewrite's replica; expires after one interval


def erasure_key(erasure_id: str) -> str:
    """What an erasure removed and each edge's status (hash, field `report`)."""
    return f"fc:{{erasures}}:erasure:{erasure_id}"


def erasure_edge_key(erasure_id: str, edge_id: str) -> str:
    """Face ids one edge still has to erase for one erasure (set)."""
    return f"fc:{{erasures}}:erasure:{erasure_id}:edge:{edge_id}"


# --- retention (cloud_analyzer/retention.py) -----------------------------------------------------------
RETENTION_LOCK = "fc:retention:lock"  # the replica running this round (expires after one interval)

# --- access: keys, rate limits, audit (service_common/access) ------------------------------------------
API_KEYS = "fc:{keys}:all"  # key_id by creation time (ms)
AUDIT_STREAM = "fc:{audit}:stream"


def api_key_key(key_id: str) -> str:
    """One API key's record (hash: name, scopes, sha256, ...)."""
    return f"fc:{{keys}}:key:{key_id}"


def rate_key(name: str) -> str:
    """A sliding-window rate log (zset: one member per admitted request, scored by its time in ms;
    expires one window after the last): `name` is a key id, or `denied:<client>` for a client's denials."""
    return f"fc:rate:{name}"


AUDIT_DROPPED = "fc:{audit}:dropped"  # int: entries the audit stream's safety cap ever removed
DENIALS_PENDING = "fc:{denied}:pending"  # zset: denial window hashes by the end of their window (ms)


def denial_window_key(window_start_ms: int, client: str, key_id: str) -> str:
    """Denials of one client (and key, if one was presented and valid) in one window (hash: client
    key_id first s401 s403 s429 window_start_ms); summarised into one audit entry, then deleted."""
    return f"fc:{{denied}}:{window_start_ms}:{client}:{key_id}"


# --- event publishers (cloud_analyzer/events/) ---------------------------------------------------------
WEBHOOKS = "fc:{webhooks}:all"  # webhook ids by creation time (zset)
MQTT_ANNOUNCED = "fc:mqtt:announced"  # identity ids announced to Home Assistant (set): removed ones get an empty config


def webhook_key(webhook_id: str) -> str:
    """One webhook (hash): url, secret, filters, state and delivery counters."""
    return f"fc:{{webhooks}}:webhook:{webhook_id}"


# --- the layout before hash tags (KEY_SCHEMA absent): renamed once by cloud_analyzer/key_migration.py ------
LEGACY_PREFIX = "fc:"  # every old name; no old name starts with "fc:{", every new tagged one does
LEGACY_FACES, LEGACY_SIGHTINGS, LEGACY_INGEST = "fc:faces", "fc:sightings", "fc:ingest"  # split by face shard
LEGACY_IDENTITIES, LEGACY_TEMPLATE_OWNERS = "fc:identities", "fc:templates:owner"  # split by gallery shard
LEGACY_GALLERY_VERSION = "fc:gallery:version"
LEGACY_DENIALS_PENDING, LEGACY_DENIAL_PREFIX = "fc:denied:pending", "fc:denied:"
# Whole keys renamed as they are: old name -> new name.
# The cluster indexes: renamed (one cluster shard) or split by each cluster's shard (several).
LEGACY_CLUSTERS, LEGACY_CLUSTER_SIZES, LEGACY_CLUSTER_OF = "fc:clusters", "fc:clusters:size", "fc:clusters:of"
LEGACY_RENAMED = {
    LEGACY_CLUSTERS: CLUSTERS, LEGACY_CLUSTER_SIZES: CLUSTER_SIZES, LEGACY_CLUSTER_OF: CLUSTER_OF,
    "fc:erasures:pending": ERASURES_PENDING, "fc:erasures": ERASURES, "fc:keys": API_KEYS,
    "fc:audit": AUDIT_STREAM, "fc:audit:dropped": AUDIT_DROPPED, "fc:webhooks": WEBHOOKS,
}
# Per-id keys, by the regular expression of the old name; the key builder above gives the new one.
_ID = r"[A-Za-z0-9_.-]{1,64}"
LEGACY_PER_ID = {
    "face": rf"fc:face:({_ID})", "fusion": rf"fc:fusion:({_ID})", "corrections": rf"fc:corrections:({_ID})",
    "identity_sightings": rf"fc:sightings:identity:({_ID})", "camera_sightings": rf"fc:sightings:camera:({_ID})",
    "track": rf"fc:track:({_ID})", "track_info": rf"fc:trackinfo:({_ID})", "track_erased": rf"fc:trackerased:({_ID})",
    "identity": rf"fc:identity:({_ID})(:tmpl|:tmplinfo|:mean|:neg)?", "cluster": rf"fc:cluster:({_ID})(?::(\w+))?",
    "vunknown": r"fc:vunknown:(.+)", "erasure": rf"fc:erasure:({_ID})(?::edge:({_ID}))?", "key": rf"fc:key:({_ID})",
    "webhook": rf"fc:webhook:({_ID})", "identity_name": r"fc:identityname:([0-9a-f]{40})",
    "gallery": r"fc:vgallery:(.+)", "enrol_counts": r"fc:gallery:enrol:(.+)", "cluster_lock": r"fc:clusters:lock:(.+)",
}


def identity_name_key_of_digest(digest: str, shard: int) -> str:
    """`identity_name_key` by the name's digest (what an old key name holds)."""
    return f"{_gallery(shard)}:identityname:{digest}"
