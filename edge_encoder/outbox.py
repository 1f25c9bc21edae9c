"""Durable local outbox: base-layer records wait here until the cloud acknowledges them.

SQLite (stdlib, fsync'd on commit) so a crash or a cloud outage loses nothing: records are removed
only after a per-face ack, and re-sent after a restart. The cloud is idempotent on face_id, so a
record sent twice is harmless.

Open tracks: the closing notice each open track would get now is kept aside (`hold_open`) and replaced
as the track goes on; a notice queued for real replaces its held copy in the same transaction. After a
crash the held copies are queued at start (`recover_open`), so no cloud track stays open for ever.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edge_encoder.local_db import open_db, purge_wal, writable


class Outbox:
    def __init__(self, path: Path) -> None:
        self._db = open_db(path)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " face_id TEXT UNIQUE NOT NULL, record BLOB NOT NULL, created REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0)"
        )
        # Dead letters: records the cloud refused as invalid (retrying cannot help), kept for inspection.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS rejected (face_id TEXT PRIMARY KEY, record BLOB NOT NULL,"
            " error TEXT NOT NULL, rejected REAL NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS open_tracks (face_id TEXT PRIMARY KEY, record BLOB NOT NULL)")
        self._lock = threading.Lock()
        self.wakeup = threading.Event()

    def writable(self) -> bool:
        return writable(self._db, self._lock)

    def put(self, face_id: str, record: bytes) -> None:
        self.put_many([(face_id, record)])

    def put_many(self, records: list[tuple[str, bytes]]) -> None:
        """Queue (face_id, record) pairs in order, in one transaction: one disk sync per frame. A held
        copy of a track's closing notice (same face_id) goes in the same transaction."""
        if not records:
            return
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO outbox (face_id, record, created) VALUES (?, ?, ?)",
                                     [(face_id, record, now) for face_id, record in records])
                self._db.executemany("DELETE FROM open_tracks WHERE face_id = ?", [(f,) for f, _ in records])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.wakeup.set()

    def hold_open(self, records: list[tuple[str, bytes]]) -> None:
        """Replace the held closing notices with these (face_id, record) pairs: every open track's now."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM open_tracks")
                self._db.executemany("INSERT INTO open_tracks (face_id, record) VALUES (?, ?)", records)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def held_open(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(f, bytes(r)) for f, r in self._db.execute("SELECT face_id, record FROM open_tracks")]

    def recover_open(self) -> int:
        """Queue the closing notices held for tracks that were open when the edge last stopped without
        closing them (a crash); returns how many."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                queued = self._db.execute("INSERT OR IGNORE INTO outbox (face_id, record, created)"
                                          " SELECT face_id, record, ? FROM open_tracks", (time.time(),)).rowcount
                self._db.execute("DELETE FROM open_tracks")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if queued:
            self.wakeup.set()
        return queued

    def pending(self, limit: int) -> list[tuple[str, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT face_id, record FROM outbox ORDER BY seq LIMIT ?", (limit,))
            return [(face_id, bytes(record)) for face_id, record in rows]

    def oldest_pending(self) -> float | None:
        """When the oldest record still waiting was queued (Unix time); None if none waits."""
        with self._lock:
            return self._db.execute("SELECT MIN(created) FROM outbox").fetchone()[0]

    def mark_attempt(self, face_ids: list[str]) -> None:
        with self._lock:
            self._db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE face_id = ?",
                                 [(f,) for f in face_ids])

    def remove(self, face_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE face_id = ?", (face_id,))

    def erase(self, face_ids: list[str]) -> int:
        """Drop these faces' records, sent or refused, so they never reach the cloud; returns how many."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = 0
                for face_id in face_ids:
                    dropped += self._db.execute("DELETE FROM outbox WHERE face_id = ?", (face_id,)).rowcount
                    dropped += self._db.execute("DELETE FROM rejected WHERE face_id = ?", (face_id,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            purge_wal(self._db)
        return dropped

    def reject(self, face_id: str, error: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO rejected SELECT face_id, record, ?, ? FROM outbox WHERE face_id = ?",
                (error, time.time(), face_id),
            )
            self._db.execute("DELETE FROM outbox WHERE face_id = ?", (face_id,))
            self._db.execute("COMMIT")

    def expire_rejected(self, older_than: float) -> int:
        """Forget dead letters refused before `older_than` (Unix seconds): they hold base layers too."""
        with self._lock:
            expired = self._db.execute("DELETE FROM rejected WHERE rejected < ?", (older_than,)).rowcount
            if expired:
                purge_wal(self._db)
            return expired

    def rejected_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
