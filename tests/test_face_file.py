"""A coded face as a file (`.fcb`): the `facecodec` command encodes a real LFW photo with the real front end
and codec, decodes it to PNG close to the aligned crop, inspects it; bad files (truncated, bit-flipped,
random, and CRC-valid containers with mangled payloads) are refused with exit code 3 and one line,
never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from facecodec import face_file
from facecodec.bitstream import parse
from facecodec.cli import EXIT_BAD_FILE, EXIT_BAD_PHOTO, EXIT_IO, EXIT_NO_FACE, main
from facecodec.eval.metrics import psnr
from facecodec.frontend import FaceFrontEnd, decode_image
from tests.helpers import lfw_image
from tests.helpers.face_files import hostile_files

PHOTO = lfw_image("Tony_Blair", 1)
# Measured on this photo: full (level 5) 38.9 dB, level 2 33.5 dB, base alone 12.8 dB against the aligned
# crop. The bounds leave margin for other CPUs' float rounding and still tell the levels apart.
FULL_PSNR_FLOOR, BASE_PSNR_CEILING = 34.0, 20.0


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fcb") / "face.fcb"
    code, out, err = run("encode", PHOTO, "-o", path)
    assert code == 0, err
    assert path.exists() and str(path) in out
    return path


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """The aligned crop the edge's front end makes of the photo's largest face: what the file codes."""
    face = FaceFrontEnd(detector="libfd").largest_face(decode_image(PHOTO.read_bytes()))
    assert face is not None
    return face.crop


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_photo_to_fcb_to_png_is_close_to_the_aligned_crop(coded: Path, crop: np.ndarray, tmp_path: Path) -> None:
    assert coded.read_bytes()[:3] == b"FC\x01"  # the container of docs/bitstream.md, nothing around it
    code, out, _ = run("decode", coded, "--layers", "full", "-o", tmp_path / "full.png")
    assert code == 0 and "level 5" in out
    full = png_pixels(tmp_path / "full.png")
    assert full.shape == crop.shape
    code, _, _ = run("decode", coded, "--layers", "base", "-o", tmp_path / "base.png")
    assert code == 0
    base = png_pixels(tmp_path / "base.png")
    full_db, base_db = psnr(crop, full), psnr(crop, base)
    assert full_db > FULL_PSNR_FLOOR, full_db
    assert base_db < BASE_PSNR_CEILING < full_db, (base_db, full_db)
    code, _, _ = run("decode", coded, "--level", "2", "-o", tmp_path / "l2.png")
    assert code == 0 and FULL_PSNR_FLOOR - 4 < psnr(crop, png_pixels(tmp_path / "l2.png")) < full_db


def test_inspect_says_codec_rate_layer_sizes_and_crcs(coded: Path) -> None:
    data = coded.read_bytes()
    face = parse(data)
    code, out, _ = run("inspect", coded, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["media_type"] == "application/vnd.facecodec.face" and info["container_version"] == 1
    assert (info["model_id"], info["rate_id"], info["crop_size"], info["bytes"]) == (
        face.model_id, face.rate_id, 112, len(data))
    assert info["profile"] == "scalable" and info["decodable"] is True and info["levels"] == [1, 2, 3, 4, 5]
    assert info["base"]["bytes"] == len(face.base)
    # The base CRC is the 4 bytes right after the base payload, as stored.
    end = data.index(face.base) + len(face.base)
    assert info["base"]["crc32"] == data[end : end + 4].hex()
    assert [(e["level"], e["bytes"]) for e in info["enhancements"]] == [
        (e.level, len(e.payload)) for e in face.enhancements]
    assert data.endswith(bytes.fromhex(info["enhancements"][-1]["crc32"]))
    code, text, _ = run("inspect", coded)
    assert code == 0 and "model 5 (scalable)" in text and info["base"]["crc32"] in text
    assert "decodes at: base, level 1, level 2, level 3, level 4, level 5" in text


def test_all_faces_and_base_only_files(tmp_path: Path) -> None:
    code, out, _ = run("encode", PHOTO, "-o", tmp_path / "p.fcb", "--levels", "0", "--all-faces")
    assert code == 0
    files = sorted(tmp_path.glob("p*.fcb"))
    assert files and len(out.strip().splitlines()) == len(files)
    face = parse(files[0].read_bytes())
    assert face.enhancements == ()
    code, _, err = run("decode", files[0], "--layers", "full", "--level", "1", "-o", tmp_path / "x.png")
    assert code == EXIT_BAD_FILE and "holds levels none" in err and not (tmp_path / "x.png").exists()
    assert run("decode", files[0], "-o", tmp_path / "b.png")[0] == 0  # full with no level: what it holds


def test_each_refusal_has_its_exit_code_and_one_line(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "bad.fcb").write_bytes(b"PK\x03\x04 a zip, not a face")
    cases = [
        (("encode", blank, "-o", tmp_path / "o.fcb"), EXIT_NO_FACE, "no face"),
        (("encode", tmp_path / "notes.txt", "-o", tmp_path / "o.fcb"), EXIT_BAD_PHOTO, "not a decodable image"),
        (("encode", tmp_path / "missing.jpg", "-o", tmp_path / "o.fcb"), EXIT_IO, "cannot read"),
        (("decode", tmp_path / "bad.fcb", "-o", tmp_path / "o.png"), EXIT_BAD_FILE, "bad magic"),
        (("inspect", tmp_path / "bad.fcb"), EXIT_BAD_FILE, "bad magic"),
        (("encode", PHOTO, "-o", tmp_path / "o.fcb", "--levels", "9"), 2, "--levels must be 0..5"),
    ]
    for argv, expected, words in cases:
        code, _, err = run(*argv)
        assert code == expected, (argv, code, err)
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    with pytest.raises(SystemExit) as usage:
        run("decode", tmp_path / "bad.fcb")  # no -o: argparse's usage error
    assert usage.value.code == 2


def test_fuzzed_files_are_refused_cleanly_by_the_command(coded: Path, tmp_path: Path) -> None:
    good = coded.read_bytes()
    path, out = tmp_path / "f.fcb", tmp_path / "f.png"
    outcomes = {"refused": 0, "decoded": 0}
    for data in hostile_files(good, seed=7, count=300):
        path.write_bytes(data)
        for argv in (("decode", path, "--layers", "full", "-o", out), ("inspect", path, "--json")):
            code, _, err = run(*argv)
            assert code in (0, EXIT_BAD_FILE), (argv, code, err)
            if code:
                assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            outcomes["refused" if code else "decoded"] += 1
    # Most are refused; a payload the codec can still read (a mangled base is just another descriptor)
    # decodes, which is correct: it is a valid file.
    assert outcomes["refused"] > 300, outcomes


def test_the_console_script_and_python_m_run(coded: Path) -> None:
    for command in ([sys.executable, "-m", "facecodec"], [str(Path(sys.executable).with_name("facecodec"))]):
        done = subprocess.run([*command, "inspect", str(coded)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "model 5 (scalable)" in done.stdout, done.stderr
        bad = subprocess.run([*command, "inspect", str(PHOTO)], capture_output=True, text=True, timeout=120)
        assert bad.returncode == EXIT_BAD_FILE and "Traceback" not in bad.stderr, bad.stderr


def test_a_face_file_is_never_unpickled(tmp_path: Path) -> None:
    """A pickle that would run code when loaded is just bytes without the magic to this decoder."""
    import pickle

    marker = tmp_path / "ran"
    payload = pickle.dumps(_Exploit(str(marker)))
    with pytest.raises(face_file.FaceFileError, match="bad magic"):
        face_file.decode(payload)
    assert not marker.exists()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from([b"", b"FC", b"FC\x01", b"FC\x01\x05\x04p"]), tail=st.binary(max_size=600))
def test_any_bytes_are_a_face_file_or_one_clear_refusal(prefix: bytes, tail: bytes) -> None:
    """Hypothesis's bytes, often behind a valid header: decode and inspect either succeed or raise
    FaceFileError, never anything else."""
    data = prefix + tail
    for use in (lambda: face_file.decode(data, "full"), lambda: face_file.describe(data)):
        try:
            use()
        except face_file.FaceFileError as exc:
            assert str(exc)
