"""The gallery in Redis vector sets: exact scores, per-model spaces, one truth for every replica."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cloud_analyzer.erasure import Eraser
from cloud_analyzer.gallery import SEARCH_EF, Gallery, shard_ef
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from facecodec.openset import identity_template
from service_common.redis_client import connect
from service_common.redis_keys import GALLERY_SCHEMA, GALLERY_SHARDS, identities_of, identity_key, templates_key


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_two_replicas_search_one_gallery_with_exact_scores(redis_server, redis_client) -> None:
    rng = np.random.default_rng(1)
    one, other = Store(redis_client), Store(connect(redis_server.url))
    people = {f"{i:032x}": unit(rng, 3) for i in range(200)}
    for identity_id, templates in people.items():
        one.add_identity(identity_id, f"person {identity_id[-3:]}", templates, "m1")
    gallery = Gallery(other)  # another replica: nothing loaded, nothing to reload
    target = next(iter(people))
    probe = identity_template(people[target][:2])
    view, matches = gallery.search(probe, "m1", k=5)
    assert view.size == 200 and view.enrol_counts == {3: 200}
    assert matches[0].identity_id == target
    exact = float(identity_template(people[target]) @ probe)
    assert abs(matches[0].similarity - exact) < 1e-6  # the exact cosine, not the quantised one
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
    assert gallery.search(probe, "another-model", 5)[1] == []  # spaces never mix

    one.add_templates(target, unit(rng, 2), "m1", keep=4)  # seen by the other replica at once
    view2, _ = gallery.search(probe, "m1", 5)
    assert view2.version > view.version and view2.enrol_counts == {3: 200}  # 4 photos count as 3 (capped)
    Eraser(redis_client).identity(target, with_sightings=False, key_id="t")
    view3, after = gallery.search(probe, "m1", 5)
    assert target not in {m.identity_id for m in after} and view3.size == 199
    assert view3.enrol_counts == {3: 199}


def test_identities_enrolled_before_vector_sets_are_indexed_once(redis_client) -> None:
    store = Store(redis_client)
    rng = np.random.default_rng(2)
    templates = unit(rng, 2)
    # What an older analyzer wrote: the identity and its templates, no vector set.
    redis_client.hset(identity_key("a" * 32), mapping={"identity_id": "a" * 32, "name": "Old", "templates": 2,
                                                          "created_at_ms": 1, "descriptor_model": "m1"})
    redis_client.rpush(templates_key("a" * 32), *[t.tobytes() for t in templates])
    redis_client.zadd(identities_of("a" * 32), {"a" * 32: 1})
    assert Gallery(store).search(templates[0], "m1", 1)[1] == []
    assert store.index_gallery() == 1 and redis_client.get(GALLERY_SCHEMA) == b"1"
    assert Gallery(store).search(templates[0], "m1", 1)[1][0].name == "Old"
    assert store.index_gallery() == 0  # once


def _nodes(client) -> list:  # type: ignore[no-untyped-def]
    """The Redis servers behind `client`: itself, or a cluster's primaries."""
    if hasattr(client, "get_primaries"):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def test_search_explores_as_far_as_configured(redis_client) -> None:
    """VSIM is given the exploration factor (the vector set's default missed about one probe in four at 100k
    identities: bench/gallery_ef.py), a setting's own or the measured default."""
    store = Store(redis_client)
    rng = np.random.default_rng(3)
    templates = unit(rng, 20)
    for i, template in enumerate(templates):
        store.add_identity(f"{i:032x}", f"person {i}", template[None], "m1")
    nodes = _nodes(redis_client)
    for node in nodes:  # every command logged, with its arguments
        node.config_set("slowlog-log-slower-than", 0)
        node.slowlog_reset()
    try:
        assert Gallery(store, ef=321).search(templates[4], "m1", 1)[1][0].identity_id == f"{4:032x}"
        assert Gallery(store).search(templates[5], "m1", 1)[1][0].identity_id == f"{5:032x}"
        logged = [entry["command"] for node in nodes for entry in node.slowlog_get(128)]
    finally:
        for node in nodes:
            node.config_set("slowlog-log-slower-than", 10_000)
    searches = [command for command in logged if command.startswith(b"VSIM")]
    assert len(searches) == 2 * GALLERY_SHARDS
    # Each shard explores its share of the gallery's EF: ceil(EF / shards), at least COUNT.
    assert sum(f" EF {-(-321 // GALLERY_SHARDS)}".encode() in command for command in searches) == GALLERY_SHARDS
    assert sum(f" EF {-(-SEARCH_EF // GALLERY_SHARDS)}".encode() in command for command in searches) == GALLERY_SHARDS
    assert shard_ef(1, 16) == 16  # never below the candidates asked for
    assert shard_ef(None, 16) is None  # VSIM's own default


def test_search_ef_setting_defaults_to_the_measured_value_and_is_checked() -> None:
    assert AnalyzerSettings().gallery_search_ef == SEARCH_EF
    assert AnalyzerSettings(gallery_search_ef=64).gallery_search_ef == 64
    with pytest.raises(ValidationError):
        AnalyzerSettings(gallery_search_ef=0)
