"""One Redis key schema: every `fc:...` name is built in service_common/redis_keys.py, nowhere else, so
the modules that delete keys (erasure, retention) always name what the writers wrote."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from redis.crc import key_slot

from service_common import ids, redis_keys
from service_common.redis_slots import slots_of

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PACKAGES = ("service_common", "edge_encoder", "cloud_analyzer", "cloud_reconstructor")
SCHEMA = ROOT / "service_common" / "redis_keys.py"
# A string literal (any prefix: f, r, b, ...) that starts with the key prefix.
KEY_LITERAL = re.compile(r"""(?<![\w])[rRbBfFuU]{0,2}(["'])fc:""")


def key_literals(files: list[Path], root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{n}: {line.strip()}"
            for path in files for n, line in enumerate(path.read_text().splitlines(), 1)
            if KEY_LITERAL.search(line)]


def test_no_module_but_the_schema_spells_a_key() -> None:
    files = [p for package in SERVICE_PACKAGES for p in sorted((ROOT / package).rglob("*.py")) if p != SCHEMA]
    assert files
    assert key_literals(files) == []


def test_the_check_sees_every_kind_of_literal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('a = "fc:x"\nb = f\'fc:{a}\'\nc = rb"fc:y"\nd = "not fc:here"\n# `fc:face:{id}` in prose\n')
    assert [hit.split(":")[1] for hit in key_literals([bad], tmp_path)] == ["1", "2", "3"]


def test_key_values_are_the_documented_ones() -> None:
    """Key names are data on disk: building them in one place must not change them."""
    shard = zlib.crc32(b"f1") % redis_keys.FACE_SHARDS
    assert redis_keys.face_key("f1") == f"fc:{{{redis_keys.FACE_TAGS[shard]}}}:face:f1"
    assert redis_keys.ingest_stream_of("f1") == f"fc:{{{redis_keys.FACE_TAGS[shard]}}}:ingest"
    # The default 16 shards keep their names whatever this process's count (tests/test_key_layout.py).
    assert [redis_keys.spread_tag("f", n, 16) for n in range(4)] == ["f0.23", "f1.20", "f2.10", "f3.13"]
    assert redis_keys.identity_sightings_key("i") == "fc:{i:i}:sightings"
    assert redis_keys.camera_sightings_key("c") == "fc:{cam:c}:sightings"
    assert redis_keys.track_key("t") == "fc:{t:t}:faces"
    gallery = zlib.crc32(b"a" * 32) % redis_keys.GALLERY_SHARDS  # 1 shard unless FACECODEC_GALLERY_SHARDS
    assert redis_keys.identity_key("a" * 32) == f"fc:{{{redis_keys.GALLERY_TAGS[gallery]}}}:identity:" + "a" * 32
    assert redis_keys.history_key("m", 0, "c") == "fc:history:m:19700101:c"
    assert redis_keys.history_cameras_key("m", 0) == "fc:history:m:19700101:cameras"
    if redis_keys.CLUSTER_SHARDS == 1:  # the names from before cluster shards, unchanged
        assert redis_keys.cluster_part_key("u", "members") == "fc:{clusters}:cluster:u:members"
        assert redis_keys.clusters_lock_key("m") == "fc:{clusters}:lock:m"
        assert redis_keys.LAYOUT == f"faces=16 gallery={redis_keys.GALLERY_SHARDS}"
    else:
        tag = redis_keys.CLUSTER_TAGS[zlib.crc32(b"u") % redis_keys.CLUSTER_SHARDS]
        assert redis_keys.cluster_part_key("u", "members") == f"fc:{{{tag}}}:cluster:u:members"
        assert redis_keys.clusters_lock_key("m", 2) == f"fc:{{{redis_keys.CLUSTER_TAGS[2]}}}:lock:m"
        assert redis_keys.LAYOUT.endswith(f" clusters={redis_keys.CLUSTER_SHARDS}")
    assert redis_keys.erasure_edge_key("e", "edge-1") == "fc:{erasures}:erasure:e:edge:edge-1"
    assert redis_keys.api_key_key("k") == "fc:{keys}:key:k"
    assert redis_keys.rate_key("k") == "fc:rate:k"
    assert redis_keys.webhook_key("w") == "fc:{webhooks}:webhook:w"
    documented = (ROOT / "docs" / "redis-keys.md").read_text()
    for name in ("fc:{f<n>}:faces", "fc:{f<n>}:ingest", "fc:events", "fc:{audit}:stream", "fc:{erasures}:pending",
                 "fc:retention:lock", "fc:{g<n>}:gallery:version", "fc:{clusters}:size", "fc:{webhooks}:all",
                 "fc:{webhooks}:webhook:{webhook_id}", "fc:mqtt:announced", "fc:keyschema"):
        assert f"`{name}`" in documented, name


def test_what_a_script_or_transaction_spans_shares_a_slot() -> None:
    """The groups one script or transaction touches hash to one slot each (Redis Cluster's one rule)."""
    k = redis_keys
    face, identity = "3f2a9c", "b" * 32
    shard = k.face_shard(face)
    groups = [
        [k.face_key(face), k.ingest_stream_of(face), k.faces_key(shard), k.sightings_key(shard),
         k.fusion_descriptor_key(face), k.corrections_key(face)],
        [k.identity_key(identity), k.templates_key(identity), k.mean_key(identity), k.negatives_key(identity),
         k.gallery_of("m", identity), k.enrol_counts_of("m", identity), k.gallery_version_of(identity),
         k.identities_of(identity), k.template_owners_of(identity), k.name_index_of("Ann", identity)],
        [redis_keys.track_key("t"), redis_keys.track_info_key("t"), redis_keys.track_erased_key("t")],
        *([k.clusters_key(c), k.cluster_sizes_key(c), k.cluster_of_key(c), k.cluster_gone_key(c),
           k.cluster_moves_key(c), k.cluster_moved_key(c), k.unknown_vset_key("m", c), k.clusters_lock_key("m", c),
           *(key for u in ("u", "v", "w", "x", "y", "z") if k.cluster_shard(u) == c
             for key in (k.cluster_key(u), k.cluster_part_key(u, "faces")))]
          for c in range(k.CLUSTER_SHARDS)),
        [k.ERASURES, k.ERASURES_PENDING, k.erasure_key("e"), k.erasure_edge_key("e", "x")],
        [redis_keys.API_KEYS, redis_keys.api_key_key("k")],
        [redis_keys.AUDIT_STREAM, redis_keys.AUDIT_DROPPED],
        [redis_keys.DENIALS_PENDING, redis_keys.denial_window_key(0, "c", "k")],
        [redis_keys.WEBHOOKS, redis_keys.webhook_key("w")],
    ]
    for keys in groups:
        assert len(slots_of(keys)) == 1, keys
    # Face shards spread over the slots (and so over a cluster's nodes), not onto one.
    assert len(slots_of(list(redis_keys.INGEST_STREAMS))) == redis_keys.FACE_SHARDS
    assert len(slots_of(list(redis_keys.CLUSTER_INDEXES))) == redis_keys.CLUSTER_SHARDS


def test_cluster_shards_spread_over_the_slots() -> None:
    """Each of C cluster shards' tags hashes into its own C-th of the slots, so C primaries with even slot
    ranges get one shard each (the tags of any count, whatever this process's FACECODEC_CLUSTER_SHARDS)."""
    for shards in (2, 3, 6):
        tags = [redis_keys.spread_tag("c", s, shards) for s in range(shards)]
        slots = [key_slot(f"fc:{{{t}}}:all".encode()) for t in tags]
        assert [slot * shards // 16384 for slot in slots] == list(range(shards)), (shards, tags)


def test_one_id_rule() -> None:
    assert ids.is_id("cam-1.a_B") and ids.is_id("x" * 64)
    assert not ids.is_id("") and not ids.is_id("x" * 65) and not ids.is_id("a b") and not ids.is_id("a:b")
