"""One uplink per person: the edge's per-camera face tracker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from edge_encoder.tracker import FaceTracker
from facecodec.frontend.quality import FaceQuality

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = FaceQuality(120.0, 150.0, 0.1)
SMALL = FaceQuality(40.0, 150.0, 0.1)
BLURRED = FaceQuality(120.0, 5.0, 0.1, ("blurred",))


def unit(seed: int, near: np.ndarray | None = None, mix: float = 0.0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=512)
    if near is not None:
        v = mix * near / np.linalg.norm(near) + (1 - mix) * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32)


def tracker() -> FaceTracker:
    return FaceTracker(link=0.5, near=0.25, timeout_s=2.0)


def test_a_person_standing_in_view_is_uplinked_once() -> None:
    t, alice = tracker(), unit(1)
    uplinks = [a.uplink for i in range(300)  # 60 s at 5 fps
               for a in t.assign("cam", T0 + timedelta(seconds=i / 5), [(100, 100, 220, 240)], alice[None], [GOOD])]
    assert sum(uplinks) == 1 and uplinks[0]
    assert t.counts["cam"].detected == 300 and t.counts["cam"].uplinked == 1 and t.counts["cam"].tracks_opened == 1


def test_two_people_get_two_tracks_and_cameras_do_not_share_tracks() -> None:
    t, alice, bob = tracker(), unit(1), unit(2)
    first = t.assign("cam", T0, [(0, 0, 100, 100), (300, 0, 400, 100)], np.stack([alice, bob]), [GOOD, GOOD])
    assert [a.reason for a in first] == ["new", "new"] and first[0].track_id != first[1].track_id
    # They swap places: similarity wins over position.
    second = t.assign("cam", T0 + timedelta(seconds=0.2), [(0, 0, 100, 100), (300, 0, 400, 100)],
                      np.stack([bob, alice]), [GOOD, GOOD])
    assert [a.track_id for a in second] == [first[1].track_id, first[0].track_id]
    assert not any(a.uplink for a in second)
    other = t.assign("cam2", T0 + timedelta(seconds=0.2), [(0, 0, 100, 100)], alice[None], [GOOD])
    assert other[0].reason == "new"


def test_overlapping_boxes_link_a_moderately_similar_face_and_distant_ones_do_not() -> None:
    t, alice = tracker(), unit(1)
    turned = unit(3, near=alice, mix=0.3)  # cosine ~0.4: below `link`, above `near`
    assert t.link > float(turned @ alice) > t.near
    t.assign("cam", T0, [(100, 100, 200, 200)], alice[None], [GOOD])
    same_place = t.assign("cam", T0 + timedelta(seconds=0.2), [(105, 100, 205, 200)], turned[None], [GOOD])
    assert same_place[0].reason == "same"
    t2 = tracker()
    t2.assign("cam", T0, [(100, 100, 200, 200)], alice[None], [GOOD])
    elsewhere = t2.assign("cam", T0 + timedelta(seconds=0.2), [(600, 100, 700, 200)], turned[None], [GOOD])
    assert elsewhere[0].reason == "new"


def test_a_clearly_better_face_is_uplinked_again_and_a_track_closes_after_its_timeout() -> None:
    t, alice = tracker(), unit(1)
    assert t.assign("cam", T0, [(0, 0, 40, 40)], alice[None], [BLURRED])[0].reason == "new"
    assert t.assign("cam", T0 + timedelta(seconds=0.2), [(0, 0, 40, 40)], alice[None], [SMALL])[0].reason == "better"
    assert t.assign("cam", T0 + timedelta(seconds=0.4), [(0, 0, 42, 42)], alice[None], [SMALL])[0].reason == "same"
    assert t.assign("cam", T0 + timedelta(seconds=0.6), [(0, 0, 120, 120)], alice[None], [GOOD])[0].reason == "better"
    assert GOOD.score > 1.5 * SMALL.score
    later = t.assign("cam", T0 + timedelta(seconds=3.0), [(0, 0, 120, 120)], alice[None], [GOOD])
    assert later[0].reason == "new" and t.open_tracks("cam") == 1


def test_tracks_close_once_by_the_cameras_clock_or_the_edges_and_say_how_long_the_person_stayed() -> None:
    t, alice, bob = tracker(), unit(1), unit(2)
    for i in range(10):  # alice 1.8 s in view of cam
        t.assign("cam", T0 + timedelta(seconds=i / 5), [(100, 100, 220, 240)], alice[None], [GOOD])
    t.assign("cam2", T0, [(0, 0, 100, 100)], bob[None], [GOOD])
    assert t.closed() == []
    t.assign("cam", T0 + timedelta(seconds=10), [(0, 0, 100, 100)], bob[None], [GOOD])  # cam's clock moved on
    [closed] = t.closed()
    assert closed.camera_id == "cam" and closed.track.faces == 10 and closed.track.uplinks == 1
    assert closed.track.last_seen - closed.track.first_seen == timedelta(seconds=1.8)
    assert t.closed() == []  # handed out once
    t.expire(now=closed.track.touched + 60)  # cam2 sent nothing more: the edge's clock closes it
    assert sorted(c.camera_id for c in t.closed()) == ["cam", "cam2"]
    assert t.open_tracks("cam") == t.open_tracks("cam2") == 0
