"""What the edge's two SQLite stores (outbox, enhancement store) share."""

from __future__ import annotations

import sqlite3
import threading


def writable(db: sqlite3.Connection, lock: threading.Lock) -> bool:
    """Can a write transaction start now (disk not read-only, database not locked or gone)?"""
    with lock:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
