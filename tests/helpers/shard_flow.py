"""One analyzer's whole path for a face, run in a process of its own so that it reads the key layout from
its environment (service_common/redis_keys.py reads the shard counts at import), as a deployment does:

    FACECODEC_FACE_SHARDS=48 python -m tests.helpers.shard_flow REDIS_URL

Ingest over gRPC, the workers' decisions, the sightings listing paged and merged across the face shards,
a camera's erasure. Asserts as it goes (exit status 1 and a traceback on a failure); prints a JSON line
with the face ids and the layout it used, for tests/test_face_shard_count.py to check from outside.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import httpx
from facecoding.v1 import ingest_pb2

from service_common import redis_keys
from service_common.access import KeyStore, new_token
from service_common.redis_client import connect
from tests.helpers import wait_until
from tests.helpers.records import recent_ms, valid_record
from tests.helpers.servers import serve_analyzer

FACES = 60  # over 48 shards: most shards get a face, several get two or more
PAGE = 7


def _status(api: httpx.Client, url: str, face_id: str) -> str | None:
    return api.get(f"{url}/v1/faces/{face_id}").json().get("status")


def _listed(api: httpx.Client, url: str, **params: str) -> list[dict]:
    """Every sighting, page by page (the cursor carries the merge across the shards)."""
    items, cursor = [], None
    while True:
        page = api.get(f"{url}/v1/sightings", params={**params, "limit": PAGE, **({"cursor": cursor} if cursor
                                                                                   else {})})
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def run(redis_url: str) -> dict:
    with serve_analyzer(redis_url, workers=2) as (url, stub):
        token = new_token()  # a key with room for the polling and paging below (the default rate is lower)
        KeyStore(connect(redis_url)).register(token, "shard-flow", ["admin"], rate_per_s=10_000)
        api = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        base = recent_ms(days=1)
        records = [valid_record("door" if n % 2 else "hall", base + 1000 * n, seed=n) for n in range(FACES)]
        acks = list(stub.Ingest(iter(records), timeout=120))
        assert {a.status for a in acks} == {ingest_pb2.IngestAck.ACCEPTED} and len(acks) == FACES, acks
        ids = [r.face_id for r in records]
        wait_until(lambda: all(_status(api, url, f) not in (None, "pending") for f in ids), 180, 0.5,
                   "every face decided")
        decided = {f: _status(api, url, f) for f in ids}

        listed = _listed(api, url)
        order = [(s["captured_at_ms"], s["face_id"]) for s in listed]
        assert order == sorted(order, reverse=True), "newest first across the shards"
        assert sorted(s["face_id"] for s in listed) == sorted(ids), "each face listed once"

        door = [r.face_id for r in records if r.camera_id == "door"]
        iso = [datetime.fromtimestamp(t / 1000, UTC).isoformat() for t in (base - 1, base + 1000 * FACES)]
        erased = api.post(f"{url}/v1/cameras/door/erase", json={"since": iso[0], "until": iso[1]})
        assert erased.status_code == 202 and erased.json()["faces"] == len(door), erased.text
        assert all(api.get(f"{url}/v1/faces/{f}").status_code == 404 for f in door)
        left = [s["face_id"] for s in _listed(api, url)]
        assert sorted(left) == sorted(set(ids) - set(door)) and _listed(api, url, camera_id="door") == []
        return {"layout": redis_keys.LAYOUT, "face_shards": redis_keys.FACE_SHARDS, "faces": ids, "erased": door,
                "statuses": sorted(set(decided.values()))}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
