"""An analyzer with 48 face shards (FACECODEC_FACE_SHARDS=48, divisible by 3 and 6 primaries) ingests,
decides, lists and erases as with the default 16, on a standalone Redis and (FC_TEST_REDIS=cluster) on the
suite's 3-primary cluster, where the 48 shards' streams fall 16 on each primary. The analyzer runs in a
process of its own (tests/helpers/shard_flow.py): the shard counts are read once, at import, as in a
deployment; this process, with the default 16, checks from outside what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from service_common.key_layout import layout_text
from service_common.redis_client import is_cluster
from service_common.redis_keys import CLUSTER_SHARDS, FACE_RECORDS_PATTERN, GALLERY_SHARDS, KEY_LAYOUT, spread_tag

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 48


def _tag(key: bytes) -> str:
    return key.decode().split("{", 1)[1].split("}", 1)[0]


def test_ingest_decisions_listing_and_erasure_with_48_face_shards(redis_server, redis_client: redis.Redis) -> None:
    env = {**os.environ, "FACECODEC_FACE_SHARDS": str(SHARDS)}
    done = subprocess.run([sys.executable, "-m", "tests.helpers.shard_flow", redis_server.url], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    layout = layout_text(SHARDS, GALLERY_SHARDS, CLUSTER_SHARDS)
    assert report["layout"] == layout and redis_client.get(KEY_LAYOUT) == layout.encode()
    assert report["statuses"] and "pending" not in report["statuses"]

    # Written under the 48 shards' tags, not the 16 this process would use.
    tags = {spread_tag("f", n, SHARDS) for n in range(SHARDS)}
    streams = list(redis_client.scan_iter(match="fc:{f*}:ingest", count=1000))
    assert len(streams) == SHARDS and {_tag(s) for s in streams} == tags  # every shard's stream and group
    records = list(redis_client.scan_iter(match=FACE_RECORDS_PATTERN, count=1000))
    kept = set(report["faces"]) - set(report["erased"])
    assert {r.decode().rsplit(":", 1)[1] for r in records} == kept  # the erased camera's records are gone
    assert {_tag(r) for r in records} <= tags and len({_tag(r) for r in records}) > 16

    if is_cluster(redis_client):  # 48 divisible by 3 primaries: 16 face shards on each
        primaries = [redis_client.get_redis_connection(node) for node in redis_client.get_primaries()]
        held = [len(list(node.scan_iter(match="fc:{f*}:ingest", count=1000))) for node in primaries]
        assert held == [SHARDS // len(held)] * len(held), held
