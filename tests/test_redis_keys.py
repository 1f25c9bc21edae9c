"""One Redis key schema: every `fc:...` name is built in service_common/redis_keys.py, nowhere else, so
the modules that delete keys (erasure, retention) always name what the writers wrote."""

from __future__ import annotations

import re
from pathlib import Path

from service_common import ids, redis_keys

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
    assert redis_keys.face_key("f1") == "fc:face:f1"
    assert redis_keys.identity_sightings_key("i") == "fc:sightings:identity:i"
    assert redis_keys.camera_sightings_key("c") == "fc:sightings:camera:c"
    assert redis_keys.track_key("t") == "fc:track:t"
    assert redis_keys.history_key("m", 0, "c") == "fc:history:m:19700101:c"
    assert redis_keys.history_cameras_key("m", 0) == "fc:history:m:19700101:cameras"
    assert redis_keys.cluster_part_key("u", "members") == "fc:cluster:u:members"
    assert redis_keys.clusters_lock_key("m") == "fc:clusters:lock:m"
    assert redis_keys.erasure_edge_key("e", "edge-1") == "fc:erasure:e:edge:edge-1"
    assert redis_keys.api_key_key("k") == "fc:key:k"
    assert redis_keys.rate_key("k") == "fc:rate:k"
    assert redis_keys.webhook_key("w") == "fc:webhook:w"
    documented = (ROOT / "docs" / "redis-keys.md").read_text()
    for name in ("fc:faces", "fc:ingest", "fc:events", "fc:audit", "fc:erasures:pending", "fc:retention:lock",
                 "fc:gallery:version", "fc:clusters:size", "fc:webhooks", "fc:webhook:{webhook_id}",
                 "fc:mqtt:announced"):
        assert f"`{name}`" in documented, name


def test_one_id_rule() -> None:
    assert ids.is_id("cam-1.a_B") and ids.is_id("x" * 64)
    assert not ids.is_id("") and not ids.is_id("x" * 65) and not ids.is_id("a b") and not ids.is_id("a:b")
