"""The replay tool's sources: folders of images, videos through PyAV, clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devstack.replay import ReplayError, load_frames, main


def test_a_video_is_played_frame_by_frame_as_jpeg(tmp_path: Path) -> None:
    import av  # a dependency (the edge reads cameras' streams with it): never skipped
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


@pytest.mark.slow
def test_a_camera_tries_again_within_its_slot_while_the_edge_is_down() -> None:
    """Nothing listens for the first ~1.15 s (an edge restarting): the frames whose slots end by then are
    counted unreachable, not errors; the one whose slot is still open gets through once the edge is up."""
    import asyncio
    import json
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from devstack.replay import replay

    posted: list[str] = []

    class Edge(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["content-length"]))
            posted.append(self.path)
            body = json.dumps({"faces": [], "faces_detected": 1}).encode()
            self.send_response(201)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers: list[ThreadingHTTPServer] = []

    def come_up() -> None:  # the edge, restarted
        servers.append(ThreadingHTTPServer(("127.0.0.1", port), Edge))
        servers[0].serve_forever()

    starter = threading.Timer(1.15, come_up)
    starter.start()
    try:
        summary = asyncio.run(replay([(b"\xff\xd8 not really", "image/jpeg")], f"http://127.0.0.1:{port}",
                                     cameras=1, fps=2, frames_per_camera=6, progress=False))
    finally:
        starter.cancel()
        if servers:
            servers[0].shutdown()
            servers[0].server_close()
        starter.join()
    assert summary.errors == 0 and summary.frames_sent == 6
    assert summary.unreachable == 2 and summary.accepted == 4 == len(posted)
