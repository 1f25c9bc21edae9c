"""bench/security_probe.py's erasure check: a person seen by a camera before anyone enrolled them is
erased whole, their unnamed faces included, from the API and from Redis's files.

The attack is the one a data subject's request guards against: after "erase me", can anyone still find
the person's earlier, never-named faces (by their face id, or in Redis's append-only file on disk)? A
stranger's face posted alongside is the control: it must stay, or the erasure is not a targeted one.
"""

from __future__ import annotations

import time
from pathlib import Path

from probe_context import Entry, Probe, within

from service_common.redis_keys import face_key

ANALYZER, EDGE = "cloud_analyzer", "edge_encoder"
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "lfw"
CAMERA = "probe-erasure"
DISK_BOUND_S = 120.0  # the analyzer's default rewrite interval (60 s) plus the rewrite itself, twice over


def sample(name: str, number: int) -> bytes:
    return (SAMPLES / name / f"{name}_{number:04d}.jpg").read_bytes()


def post_frame(probe: Probe, image: bytes, camera_id: str) -> str:
    """A camera frame through the edge's REST API (the stack's fleet token); the face id it uplinked.
    One camera per photo: on one camera the edge's tracker would take a second photo of the same person
    as the same stay and uplink nothing new."""
    with probe.http(token=probe.stack.camera_token) as camera:
        r = camera.post(f"{probe.url(EDGE)}/v1/cameras/{camera_id}/frames", content=image,
                        headers={"content-type": "image/jpeg"})
    r.raise_for_status()
    return r.json()["faces"][0]["face_id"]


def wait_decided(probe: Probe, face_ids: list[str], timeout_s: float = 60.0) -> dict[str, str]:
    """Each face's status once the analyzer has decided every one (uplinks and recognition are async)."""
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    with probe.http(token=probe.stack.admin_key) as admin:
        while time.monotonic() < deadline:
            for face_id in face_ids:
                r = admin.get(f"{probe.url(ANALYZER)}/v1/faces/{face_id}")
                statuses[face_id] = r.json().get("status", str(r.status_code)) if r.status_code == 200 else "absent"
            if all(s not in ("absent", "pending") for s in statuses.values()):
                break
            time.sleep(0.3)
    return statuses


def contents(path: Path) -> bytes:
    """A file's bytes, or none if Redis removed it meanwhile (a rewrite's temporary files come and go)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def redis_files_holding(probe: Probe, blobs: list[bytes]) -> list[str]:
    root = probe.stack.redis.data_dir
    files = [p for p in root.rglob("*") if p.is_file() and (p.parent.name == "appendonlydir" or p.suffix == ".rdb")]
    return sorted({p.name for p in files for blob in blobs if blob in contents(p)})


def erasure_reaches_unnamed_faces(probe: Probe) -> Entry:
    person, stranger = "Tony_Blair", "Jennifer_Capriati"
    # seen before anyone enrolled them
    unnamed = [post_frame(probe, sample(person, n), f"{CAMERA}-{n}") for n in (3, 4)]
    control = post_frame(probe, sample(stranger, 3), f"{CAMERA}-control")
    before = wait_decided(probe, [*unnamed, control])
    client = probe.stack.redis.client()
    blobs = [client.hget(face_key(f), "base_layer") for f in unnamed]
    blobs = [b for b in blobs if b]
    on_disk_before = redis_files_holding(probe, blobs)

    analyzer = probe.url(ANALYZER)
    with probe.http(token=probe.stack.admin_key) as admin:
        enrolled = admin.post(f"{analyzer}/v1/identities", data={"name": person},
                              files=[("images", (f"{n}.jpg", sample(person, n), "image/jpeg")) for n in (1, 2)])
        enrolled.raise_for_status()
        identity = enrolled.json()["identity_id"]
        preview = admin.get(f"{analyzer}/v1/identities/{identity}/erasure-preview").json()
        previewed = {f["face_id"] for f in preview.get("matched_faces", [])} | set(preview.get("cluster_faces", []))
        erased = admin.post(f"{analyzer}/v1/identities/{identity}/erase")
        report = erased.json()
        after = {f: admin.get(f"{analyzer}/v1/faces/{f}").status_code for f in [*unnamed, control]}

    # Redis's files: the analyzer has them rewritten after an erasure, at most once per interval.
    start, on_disk = time.monotonic(), on_disk_before
    while on_disk and time.monotonic() - start < DISK_BOUND_S:
        time.sleep(1.0)
        on_disk = redis_files_holding(probe, blobs)
    disk_s = round(time.monotonic() - start, 1)

    gone = all(after[f] == 404 for f in unnamed)
    controls_ok = (all(s not in ("absent", "pending") for s in before.values()) and len(blobs) == len(unnamed)
                   and bool(on_disk_before) and erased.status_code == 202 and after[control] == 200)
    return Entry(
        "Erasure", f"after erasing an identity, find the person's faces seen before enrolment ({len(unnamed)} "
        "unnamed sightings) through the API and in Redis's files",
        within(gone and set(unnamed) <= previewed and not on_disk, controls_ok),
        {"statuses_before": sorted(before.values()), "previewed_unnamed": len(set(unnamed) & previewed),
         "report_matched_faces": report.get("matched_faces"), "report_clusters": report.get("clusters"),
         "match_threshold": report.get("match_threshold"), "after_status": list(after.values()),
         "control_stranger_kept": after[control] == 200, "redis_files_holding_before": on_disk_before,
         "redis_files_holding_after": on_disk, "seconds_until_gone_from_disk": disk_s},
        bound=f"gone from the API at once, from Redis's files within {DISK_BOUND_S:.0f} s "
              "(ANALYZER_ERASURE_REWRITE_INTERVAL_S plus the rewrite)")


CHECKS = [erasure_reaches_unnamed_faces]
