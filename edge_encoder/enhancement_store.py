"""Bounded local store of what the edge keeps of each face's pixels, served to the cloud on Fetch.

Pixels stay on the edge: they leave only when a person asks to view a face. Per face the store holds
the container (base layer + the enhancement layers coded so far) and, when enhancement coding is
deferred (`EDGE_ENHANCEMENT_CODING=deferred`), the aligned crop it codes them from, losslessly. The
store keeps at most `max_faces` faces and `max_bytes` bytes, evicting the oldest first.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_encoder.local_db import writable


@dataclass(frozen=True)
class StoredFace:
    container: bytes
    levels: int  # enhancement levels this face can be served at (coded already, or codable from `source`)
    source: bytes | None = None  # the aligned crop as lossless WebP, for levels not coded yet


class EnhancementStore:
    def __init__(self, path: Path, max_faces: int, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS faces (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " face_id TEXT UNIQUE NOT NULL, container BLOB NOT NULL, levels INTEGER NOT NULL,"
            " size INTEGER NOT NULL, created REAL NOT NULL, source BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(faces)")}
        if "source" not in columns:  # a store written before deferred coding: every face has its layers
            self._db.execute("ALTER TABLE faces ADD COLUMN source BLOB")
        self.max_faces, self.max_bytes = max_faces, max_bytes
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return writable(self._db, self._lock)

    def put(self, face_id: str, container: bytes, levels: int, source: bytes | None = None) -> None:
        size = len(container) + len(source or b"")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO faces (face_id, container, levels, size, created, source)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (face_id, container, levels, size, time.time(), source),
                )
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def keep_layers(self, face_id: str, container: bytes) -> None:
        """Replace a face's container by one with more layers (coded on a fetch), keeping its place in
        the eviction order; a face evicted meanwhile stays gone."""
        with self._lock:
            self._db.execute(
                "UPDATE faces SET container = ?, size = ? + COALESCE(LENGTH(source), 0) WHERE face_id = ?",
                (container, len(container), face_id),
            )

    def erase(self, face_ids: list[str]) -> int:
        """Forget these faces (container and kept crop); returns how many were held."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                held = sum(self._db.execute("DELETE FROM faces WHERE face_id = ?", (f,)).rowcount for f in face_ids)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return held

    def expire(self, older_than: float) -> int:
        """Forget faces stored before `older_than` (Unix seconds): the edge's retention."""
        with self._lock:
            return self._db.execute("DELETE FROM faces WHERE created < ?", (older_than,)).rowcount

    def _evict(self) -> None:
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        while count > self.max_faces or (total > self.max_bytes and count > 1):
            seq, size = self._db.execute("SELECT seq, size FROM faces ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM faces WHERE seq = ?", (seq,))
            count, total = count - 1, total - size

    def get(self, face_id: str) -> StoredFace | None:
        with self._lock:
            row = self._db.execute(
                "SELECT container, levels, source FROM faces WHERE face_id = ?", (face_id,)
            ).fetchone()
        if row is None:
            return None
        return StoredFace(bytes(row[0]), int(row[1]), None if row[2] is None else bytes(row[2]))

    def stats(self) -> dict[str, int]:
        with self._lock:
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        return {"faces": int(count), "bytes": int(total)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
