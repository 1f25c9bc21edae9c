"""Bounded local store of what the edge keeps of each face's pixels, served to the cloud on Fetch.

Pixels stay on the edge: they leave only when a person asks to view a face. Per face the store holds
the container (base layer + the enhancement layers coded so far), when enhancement coding is
deferred (`EDGE_ENHANCEMENT_CODING=deferred`) the aligned crop it codes them from, losslessly, and, for
cameras that opt in, a scene snapshot (edge_encoder/snapshots.py). Everything of a face is one row: it
is evicted, expired and erased as one. The store keeps at most `max_faces` faces and `max_bytes` bytes
(snapshots count), evicting the oldest first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_encoder.local_db import open_db, purge_wal, writable


@dataclass(frozen=True)
class StoredFace:
    container: bytes
    levels: int  # enhancement levels this face can be served at (coded already, or codable from `source`)
    source: bytes | None = None  # the aligned crop as lossless WebP, for levels not coded yet


class EnhancementStore:
    def __init__(self, path: Path, max_faces: int, max_bytes: int) -> None:
        self._db = open_db(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS faces (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " face_id TEXT UNIQUE NOT NULL, container BLOB NOT NULL, levels INTEGER NOT NULL,"
            " size INTEGER NOT NULL, created REAL NOT NULL, source BLOB, snapshot BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(faces)")}
        if "source" not in columns:  # a store written before deferred coding: every face has its layers
            self._db.execute("ALTER TABLE faces ADD COLUMN source BLOB")
        if "snapshot" not in columns:  # a store written before scene snapshots: none kept
            self._db.execute("ALTER TABLE faces ADD COLUMN snapshot BLOB")
        self.max_faces, self.max_bytes = max_faces, max_bytes
        self._lock = threading.Lock()
        # Kept in memory (only this process writes the store): counting the table on every put was a
        # scan of up to max_faces rows per face stored.
        self._count, self._bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM faces").fetchone()
        self.evicted = 0  # faces evicted for the bounds since start (edge_enhancement_store_evicted)

    def writable(self) -> bool:
        return writable(self._db, self._lock)

    def put(self, face_id: str, container: bytes, levels: int, source: bytes | None = None,
            snapshot: bytes | None = None) -> None:
        self.put_many([(face_id, container, levels, source, snapshot)])

    def put_many(self, faces: list[tuple[str, bytes, int, bytes | None, bytes | None]]) -> None:
        """Store (face_id, container, levels, source, snapshot) rows in one transaction: one disk sync per
        frame, not per face."""
        with self._lock:
            count, total, evicted = self._count, self._bytes, self.evicted
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for face_id, container, levels, source, snapshot in faces:
                    self._insert(face_id, container, levels, source, snapshot)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._count, self._bytes, self.evicted = count, total, evicted
                raise

    def _insert(self, face_id: str, container: bytes, levels: int, source: bytes | None,
                snapshot: bytes | None) -> None:
        size = len(container) + len(source or b"") + len(snapshot or b"")
        for (old,) in self._db.execute("DELETE FROM faces WHERE face_id = ? RETURNING size", (face_id,)):
            self._count, self._bytes = self._count - 1, self._bytes - old
        self._db.execute(
            "INSERT INTO faces (face_id, container, levels, size, created, source, snapshot)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (face_id, container, levels, size, time.time(), source, snapshot),
        )
        self._count, self._bytes = self._count + 1, self._bytes + size
        self._evict()

    def keep_layers(self, face_id: str, container: bytes) -> None:
        """Replace a face's container by one with more layers (coded on a fetch), keeping its place in
        the eviction order; a face evicted meanwhile stays gone."""
        with self._lock:
            old = self._db.execute("SELECT size FROM faces WHERE face_id = ?", (face_id,)).fetchone()
            new = self._db.execute(
                "UPDATE faces SET container = ?, size = ? + COALESCE(LENGTH(source), 0)"
                " + COALESCE(LENGTH(snapshot), 0) WHERE face_id = ?"
                " RETURNING size", (container, len(container), face_id)).fetchone()
            if old is not None and new is not None:
                self._bytes += new[0] - old[0]

    def erase(self, face_ids: list[str]) -> int:
        """Forget these faces (container, kept crop, snapshot); returns how many were held."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                sizes = [size for f in face_ids
                         for (size,) in self._db.execute("DELETE FROM faces WHERE face_id = ? RETURNING size", (f,))]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count, self._bytes = self._count - len(sizes), self._bytes - sum(sizes)
            purge_wal(self._db)
        return len(sizes)

    def expire(self, older_than: float) -> int:
        """Forget faces stored before `older_than` (Unix seconds): the edge's retention."""
        with self._lock:
            sizes = [size for (size,) in self._db.execute("DELETE FROM faces WHERE created < ? RETURNING size",
                                                          (older_than,))]
            self._count, self._bytes = self._count - len(sizes), self._bytes - sum(sizes)
            if sizes:  # expired faces leave the log too, as erased ones do
                purge_wal(self._db)
            return len(sizes)

    def _evict(self) -> None:
        while self._count > self.max_faces or (self._bytes > self.max_bytes and self._count > 1):
            seq, size = self._db.execute("SELECT seq, size FROM faces ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM faces WHERE seq = ?", (seq,))
            self._count, self._bytes, self.evicted = self._count - 1, self._bytes - size, self.evicted + 1

    def get(self, face_id: str) -> StoredFace | None:
        with self._lock:
            row = self._db.execute(
                "SELECT container, levels, source FROM faces WHERE face_id = ?", (face_id,)
            ).fetchone()
        if row is None:
            return None
        return StoredFace(bytes(row[0]), int(row[1]), None if row[2] is None else bytes(row[2]))

    def snapshot(self, face_id: str) -> bytes | None:
        """The face's scene snapshot (JPEG), if its camera opted in and the face is still held."""
        with self._lock:
            row = self._db.execute("SELECT snapshot FROM faces WHERE face_id = ?", (face_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def stats(self) -> dict[str, int]:
        return {"faces": int(self._count), "bytes": int(self._bytes), "evicted": self.evicted}

    def close(self) -> None:
        with self._lock:
            self._db.close()
