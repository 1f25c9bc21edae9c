"""Edge outbox and enhancement store: durable across reopen, bounded, dead letters kept."""

from __future__ import annotations

from pathlib import Path

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.outbox import Outbox


def test_outbox_survives_reopen_and_removes_only_acked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for i in range(5):
        box.put(f"face{i}", f"record{i}".encode())
    box.put("face0", b"duplicate put is ignored")
    box.remove("face1")
    box.reject("face2", "bad base layer")
    box.close()

    reopened = Outbox(tmp_path / "o.sqlite3")
    assert [f for f, _ in reopened.pending(10)] == ["face0", "face3", "face4"]
    assert reopened.pending(10)[0][1] == b"record0"
    assert reopened.rejected_count() == 1
    assert reopened.pending(2) == [("face0", b"record0"), ("face3", b"record3")]


def test_enhancement_store_evicts_oldest_by_count_and_bytes(tmp_path: Path) -> None:
    store = EnhancementStore(tmp_path / "e.sqlite3", max_faces=3, max_bytes=10_000)
    for i in range(5):
        store.put(f"f{i}", bytes([i]) * 100, levels=2)
    assert store.get("f0") is None and store.get("f1") is None
    assert store.get("f4") == (bytes([4]) * 100, 2)
    assert store.stats() == {"faces": 3, "bytes": 300}

    store.put("big", b"x" * 9_950, levels=1)  # over the byte bound: older faces go first
    assert store.get("big") is not None
    assert store.stats()["bytes"] <= 10_000
