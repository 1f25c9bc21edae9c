"""The face and gallery shard counts (FACECODEC_FACE_SHARDS, FACECODEC_GALLERY_SHARDS: service_common/
key_layout.py) and their hash tags (service_common/redis_keys.py, spread_tag): each shard's tag lies in its
own even share of the 16384 slots, so a count divisible by the primaries puts the same number of shards on
each (the memory per primary follows); bad counts stop a service at its start; a Redis written with other
counts is refused by the reconstructor as by the analyzer (tests/test_key_migration.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from cloud_reconstructor.store import FaceIndex
from devstack.redis_cluster import slot_ranges
from service_common.key_layout import InvalidLayout, LayoutMismatch, shard_counts
from service_common.redis_keys import KEY_LAYOUT, LAYOUT, SLOTS, spread_tag

ROOT = Path(__file__).resolve().parent.parent


def _primary(slot: int, primaries: int) -> int:
    """Which primary holds `slot`, with the slots split as devstack.redis_cluster assigns them."""
    return next(n for n, (first, last) in enumerate(slot_ranges(primaries)) if first <= slot <= last)


def _per_primary(tags: list[str], primaries: int) -> list[int]:
    held = Counter(_primary(key_slot(tag.encode()), primaries) for tag in tags)
    return [held[n] for n in range(primaries)]


@pytest.mark.parametrize("count", [16, 48, 96])
def test_each_shard_tag_lies_in_its_own_share_of_the_slots(count: int) -> None:
    tags = [spread_tag("f", n, count) for n in range(count)]
    assert len(set(tags)) == count and all(tag.startswith(f"f{n}.") for n, tag in enumerate(tags))
    for n, tag in enumerate(tags):
        assert SLOTS * n // count <= key_slot(tag.encode()) < SLOTS * (n + 1) // count, (n, tag)


@pytest.mark.parametrize("prefix", ["f", "g"])
def test_a_count_divisible_by_the_primaries_puts_as_many_shards_on_each(prefix: str) -> None:
    tags48 = [spread_tag(prefix, n, 48) for n in range(48)]
    assert _per_primary(tags48, 3) == [16, 16, 16]
    assert _per_primary(tags48, 6) == [8] * 6
    assert _per_primary(tags48, 1) == [48]
    for count in (3, 6):  # gallery shards as many as the primaries: one each
        assert _per_primary([spread_tag(prefix, n, count) for n in range(count)], count) == [1] * count
    assert _per_primary([spread_tag(prefix, n, 6) for n in range(6)], 3) == [2, 2, 2]
    # 16 does not divide by 6: a shard whose share straddles two primaries lands on either; none is empty.
    held = _per_primary([spread_tag(prefix, n, 16) for n in range(16)], 6)
    assert sum(held) == 16 and min(held) >= 2 and max(held) > 2, held


def _layout_of(env: dict[str, str]) -> subprocess.CompletedProcess:
    """What service_common.redis_keys builds in a fresh process with these variables (read at import)."""
    script = ("import json; from service_common import redis_keys as k; print(json.dumps({'layout': k.LAYOUT, "
              "'faces': k.FACE_TAGS, 'gallery': k.GALLERY_TAGS, 'streams': k.INGEST_STREAMS, "
              "'identities': k.IDENTITY_INDEXES, 'face': k.face_key('abc'), 'identity': k.identity_key('abc')}))")
    base = {k: v for k, v in os.environ.items() if k not in ("FACECODEC_FACE_SHARDS", "FACECODEC_GALLERY_SHARDS",
                                                              "FACECODEC_CLUSTER_SHARDS")}
    return subprocess.run([sys.executable, "-c", script], env={**base, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_the_default_counts_keep_the_names_existing_data_has() -> None:
    done = _layout_of({})
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert built["layout"] == "faces=16 gallery=1"
    assert built["faces"][:4] == ["f0.23", "f1.20", "f2.10", "f3.13"] and built["gallery"] == ["g0"]
    assert built["identity"] == "fc:{g0}:identity:abc"
    assert json.loads(_layout_of({"FACECODEC_FACE_SHARDS": ""}).stdout)["layout"] == "faces=16 gallery=1"


def test_the_counts_come_from_the_environment() -> None:
    done = _layout_of({"FACECODEC_FACE_SHARDS": "48", "FACECODEC_GALLERY_SHARDS": "6"})
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert built["layout"] == "faces=48 gallery=6"
    assert built["faces"] == [spread_tag("f", n, 48) for n in range(48)]
    assert built["gallery"] == [spread_tag("g", n, 6) for n in range(6)]  # several gallery shards: spread too
    assert len(set(built["streams"])) == 48 and len(set(built["identities"])) == 6
    assert built["face"].startswith("fc:{f") and built["face"].split("}")[0][4:] in built["faces"]
    assert built["identity"].split("}")[0][4:] in built["gallery"]


@pytest.mark.parametrize("value", ["0", "-3", "abc", "2.5", "4096"])
def test_a_bad_count_stops_the_service_naming_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACECODEC_FACE_SHARDS", value)
    with pytest.raises(InvalidLayout, match=f"FACECODEC_FACE_SHARDS='{value}'"):
        shard_counts()
    done = _layout_of({"FACECODEC_GALLERY_SHARDS": value})  # at import: the process does not start
    assert done.returncode != 0 and f"InvalidLayout: FACECODEC_GALLERY_SHARDS='{value}'" in done.stderr, done.stderr


def test_a_reconstructor_with_other_counts_than_the_data_refuses(redis_client: redis.Redis, redis_server) -> None:
    faces = FaceIndex(redis_server.url, 5.0)
    faces.check_layout()  # nothing recorded yet (no analyzer has started): nothing to compare
    redis_client.set(KEY_LAYOUT, LAYOUT)
    faces.check_layout()
    redis_client.set(KEY_LAYOUT, LAYOUT.replace("faces=", "faces=9"))
    with pytest.raises(LayoutMismatch, match="FACECODEC_FACE_SHARDS"):
        faces.check_layout()
