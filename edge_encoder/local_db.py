"""What the edge's two SQLite stores (outbox, enhancement store) share: how they are opened, how an
erasure is made to stick, and the writability check.

Deleted rows must not linger in the files: `secure_delete` overwrites freed content with zeros (set
here, not left to how the platform's SQLite was built), and after an erasure the write-ahead log,
which still holds the pages as they were before, is checkpointed and truncated to nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def open_db(path: Path) -> sqlite3.Connection:
    """A store's connection: autocommit (transactions are explicit), WAL, secure delete on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    if db.execute("PRAGMA secure_delete=ON").fetchone() != (1,):
        # A build with SQLITE_SECURE_DELETE forced off: erased faces would stay readable on disk.
        db.close()
        raise sqlite3.NotSupportedError(f"{path}: this SQLite cannot turn secure_delete on")
    return db


def purge_wal(db: sqlite3.Connection) -> None:
    """Copy the log into the database and truncate it to zero bytes: the pages it held before an
    erasure (the erased rows included) leave the -wal file. Call with the store's lock held."""
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:  # another connection reads an old snapshot (the edge holds one per store: not expected)
        raise sqlite3.OperationalError("write-ahead log checkpoint blocked; erased rows may remain in the -wal file")


def writable(db: sqlite3.Connection, lock: threading.Lock) -> bool:
    """Can a write transaction start now (disk not read-only, database not locked or gone)?"""
    with lock:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
