"""The replay tool's sources: folders of images, videos through PyAV, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecodec.replay import ReplayError, load_frames, main


def test_a_video_is_played_frame_by_frame_as_jpeg(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(7):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    frames = load_frames(path, 5)
    assert len(frames) == 5 and all(data[:2] == b"\xff\xd8" and kind == "image/jpeg" for data, kind in frames)


def test_bad_sources_get_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReplayError, match="no .jpg/.png/.webp images"):
        load_frames(tmp_path, 10)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ReplayError, match="not a readable video"):
        load_frames(tmp_path / "notes.txt", 10)
    assert main([str(tmp_path / "missing"), "--edge", "http://127.0.0.1:9"]) == 2
    assert "neither a folder nor a file" in capsys.readouterr().err
