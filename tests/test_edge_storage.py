"""Edge outbox and enhancement store: durable across reopen, bounded, dead letters kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_encoder.enhancement_store import EnhancementStore, StoredFace
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
    assert store.get("f4") == StoredFace(bytes([4]) * 100, 2)
    assert store.stats() == {"faces": 3, "bytes": 300, "evicted": 2}

    store.put("big", b"x" * 9_950, levels=1)  # over the byte bound: older faces go first
    assert store.get("big") is not None
    assert store.stats()["bytes"] <= 10_000


def test_enhancement_store_counts_stay_true_to_the_table_through_every_change(tmp_path: Path) -> None:
    """The store keeps its face count and bytes in memory; every way a face comes or goes must agree
    with the table, also after reopening."""
    path = tmp_path / "e.sqlite3"
    store = EnhancementStore(path, max_faces=6, max_bytes=100_000)
    for i in range(9):
        store.put(f"f{i}", b"c" * (10 + i), levels=3, source=b"s" * i)
    store.put("f8", b"again" * 3, levels=3)  # the same face stored again replaces it
    store.keep_layers("f7", b"more layers" * 5)
    store.erase(["f5", "nosuch"])
    store.expire(older_than=0.0)

    def truth(s: EnhancementStore) -> dict[str, int]:
        count, total = s._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        return {"faces": count, "bytes": total}

    stats = store.stats()
    assert {k: stats[k] for k in ("faces", "bytes")} == truth(store) and stats["evicted"] == 3
    store.close()
    reopened = EnhancementStore(path, max_faces=6, max_bytes=100_000)
    assert {k: reopened.stats()[k] for k in ("faces", "bytes")} == truth(reopened)


def test_enhancement_store_keeps_layers_coded_later_in_place(tmp_path: Path) -> None:
    store = EnhancementStore(tmp_path / "e.sqlite3", max_faces=2, max_bytes=10_000)
    store.put("a", b"base", levels=5, source=b"crop" * 10)
    store.put("b", b"base", levels=5, source=b"crop" * 10)
    store.keep_layers("a", b"base+layer3")  # a fetch coded a layer: "a" keeps its (oldest) place
    assert store.get("a") == StoredFace(b"base+layer3", 5, b"crop" * 10)
    assert store.stats()["bytes"] == len(b"base+layer3") + 40 + len(b"base") + 40
    store.put("c", b"base", levels=5)
    assert store.get("a") is None and store.get("b") is not None
    store.keep_layers("a", b"late")  # evicted meanwhile: stays gone
    assert store.get("a") is None


def test_enhancement_store_opens_a_store_written_before_deferred_coding(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE faces (seq INTEGER PRIMARY KEY AUTOINCREMENT, face_id TEXT UNIQUE NOT NULL,"
               " container BLOB NOT NULL, levels INTEGER NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO faces (face_id, container, levels, size, created) VALUES ('old', x'0102', 5, 2, 0)")
    db.commit()
    db.close()
    store = EnhancementStore(path, max_faces=10, max_bytes=10_000)
    assert store.get("old") == StoredFace(b"\x01\x02", 5, None)
    store.put("new", b"base", levels=5, source=b"crop")
    assert store.get("new") == StoredFace(b"base", 5, b"crop")
