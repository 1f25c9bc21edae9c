"""Bounded local store of full containers (base + enhancement layers), served to the cloud on Fetch.

Pixels stay on the edge: they leave only when a person asks to view a face. The store keeps at most
`max_faces` faces and `max_bytes` bytes, evicting the oldest first.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class EnhancementStore:
    def __init__(self, path: Path, max_faces: int, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS faces (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " face_id TEXT UNIQUE NOT NULL, container BLOB NOT NULL, levels INTEGER NOT NULL,"
            " size INTEGER NOT NULL, created REAL NOT NULL)"
        )
        self.max_faces, self.max_bytes = max_faces, max_bytes
        self._lock = threading.Lock()

    def put(self, face_id: str, container: bytes, levels: int) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO faces (face_id, container, levels, size, created) VALUES (?, ?, ?, ?, ?)",
                    (face_id, container, levels, len(container), time.time()),
                )
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _evict(self) -> None:
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        while count > self.max_faces or (total > self.max_bytes and count > 1):
            seq, size = self._db.execute("SELECT seq, size FROM faces ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM faces WHERE seq = ?", (seq,))
            count, total = count - 1, total - size

    def get(self, face_id: str) -> tuple[bytes, int] | None:
        with self._lock:
            row = self._db.execute("SELECT container, levels FROM faces WHERE face_id = ?", (face_id,)).fetchone()
        return (bytes(row[0]), int(row[1])) if row else None

    def stats(self) -> dict[str, int]:
        with self._lock:
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        return {"faces": int(count), "bytes": int(total)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
