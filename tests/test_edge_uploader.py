"""The edge's uploader against a broken outbox, with a real outbox file and a real analyzer Ingest
server: an unreadable row is quarantined and the rows behind it delivered; no failure ends the thread."""

from __future__ import annotations

from cloud_analyzer.ingest_service import make_server
from cloud_analyzer.store import Store
from edge_encoder.outbox import Outbox
from edge_encoder.uploader import UNREADABLE, Uploader
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from tests.helpers import free_port, wait_until
from tests.helpers.records import valid_record


def test_a_poison_row_is_quarantined_and_the_rows_behind_it_delivered(tmp_path, redis_server, redis_client) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.put("garbage", b"\xff\xff\xff\xff not a FaceRecord")  # first in line, as after a disk fault
    good = valid_record(seed=5)
    outbox.put(good.face_id, good.SerializeToString())
    outbox.close()

    server, port = make_server(Store(connect(redis_server.url)), free_port(), {"edge-t"})
    server.start()
    outbox = Outbox(path)  # reopened, as after a restart
    uploader = Uploader(outbox, f"127.0.0.1:{port}", batch=8, timeout_s=5, retry_max_s=1)
    uploader.start()
    try:
        wait_until(lambda: len(outbox) == 0)
        assert redis_client.hget(face_key(good.face_id), "camera_id") == b"cam-a"
        assert outbox.rejected_count() == 1 and uploader.quarantined == 1
        error = outbox._db.execute("SELECT error FROM rejected WHERE face_id = 'garbage'").fetchone()[0]
        assert error == UNREADABLE
        health = uploader.health()
        assert not health["stalled"] and health["running"] and health["quarantined"] == 1

        # Any other failure (here: the outbox table gone under the uploader) is logged, counted and
        # retried; the thread lives on and uploads again once the outbox is back.
        outbox._db.execute("ALTER TABLE outbox RENAME TO outbox_away")
        outbox.wakeup.set()
        wait_until(lambda: uploader.errors >= 1)
        assert uploader._thread.is_alive() and "internal error" in uploader.last_error
        outbox._db.execute("ALTER TABLE outbox_away RENAME TO outbox")
        later = valid_record(seed=6)
        outbox.put(later.face_id, later.SerializeToString())
        wait_until(lambda: redis_client.exists(face_key(later.face_id)) and len(outbox) == 0)
        wait_until(lambda: uploader.last_error == "")  # the next round succeeds and says so
    finally:
        uploader.stop()
        outbox.close()
        server.stop(0)
