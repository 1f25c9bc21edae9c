"""Camera URLs lose their credentials before the edge shows or logs them: user info with `@` in the
password, credentials in the query string, percent-encoded ones, and URLs quoted inside FFmpeg's error
texts; then a real video source failing on such a URL."""

from __future__ import annotations

import time

import pytest

from edge_encoder.cameras import CameraConfig
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.redact import redact_url, scrub
from edge_encoder.sources import VideoSource

# (url, what it must become, secrets that must not survive)
CASES = [
    ("rtsp://user:p@ss@host/x", "rtsp://***@host/x", ["user", "p@ss", "ss@"]),
    ("rtsp://host/x?user=a&password=b", "rtsp://host/x?user=***&password=***", ["=a", "=b"]),
    ("rtsp://host/x?token=eyJhbGciOi.abc&auth=Zm9vOmJhcg", "rtsp://host/x?token=***&auth=***",
     ["eyJhbGciOi", "Zm9vOmJhcg"]),
    ("rtsp://adm%40in:p%40ss%3Aw0rd@10.0.0.5:554/Streaming/101", "rtsp://***@10.0.0.5:554/Streaming/101",
     ["adm", "p%40ss", "w0rd"]),
    ("http://u:p@h:554/s", "http://***@h:554/s", ["u:p"]),
    ("rtsps://viewer:s3cr3t@cam.example:322/live?channel=1&subtype=0",
     "rtsps://***@cam.example:322/live?channel=1&subtype=0", ["viewer", "s3cr3t"]),
    ("rtsp://cam/live?pwd=hunter22&ch=2;sig=deadbeef", "rtsp://cam/live?pwd=***&ch=2&sig=***",
     ["hunter22", "deadbeef"]),
    ("rtsp://cam/live?a1b2c3d4e5f6", "rtsp://cam/live?***", ["a1b2c3d4e5f6"]),
    ("https://cam/hls.m3u8#access_token=xyz123", "https://cam/hls.m3u8#***", ["xyz123"]),
    ("rtsp://10.0.0.21/stream1", "rtsp://10.0.0.21/stream1", []),
    ("/videos/lobby.mp4", "/videos/lobby.mp4", []),
]


@pytest.mark.parametrize(("url", "expected", "secrets"), CASES)
def test_urls_lose_user_info_and_query_secrets(url: str, expected: str, secrets: list[str]) -> None:
    assert redact_url(url) == expected
    for secret in secrets:
        assert secret not in redact_url(url)


@pytest.mark.parametrize(("url", "expected", "secrets"), CASES)
def test_ffmpeg_error_texts_lose_the_credentials_of_urls_they_quote(url: str, expected: str,
                                                                     secrets: list[str]) -> None:
    texts = [  # as FFmpeg and PyAV word them, quoting the URL as given, decoded, or cut at a space
        f"HTTPError: [Errno 1330794744] Server returned 401 Unauthorized (authorization failed): '{url}'",
        f"[rtsp @ 0x55d0c8] method DESCRIBE failed: 401 Unauthorized; url={url} retrying",
        f"InvalidDataError: [Errno 1094995529] Invalid data found when processing input: {url.replace('%40', '@')}",
    ]
    for text in texts:
        cleaned = scrub(text, url)
        for secret in secrets:
            assert secret not in cleaned, (text, cleaned)
        assert ("401" in cleaned) or ("1094995529" in cleaned)  # the reason itself survives


def test_other_urls_in_an_error_text_are_redacted_too() -> None:
    text = "redirected to rtsp://backup:0ther-pass@10.0.0.9/x?token=t0k3n, which failed"
    cleaned = scrub(text, "rtsp://10.0.0.21/stream1")
    assert "0ther-pass" not in cleaned and "t0k3n" not in cleaned and "backup" not in cleaned
    assert "rtsp://***@10.0.0.9/x?token=***" in cleaned


def test_a_real_source_failing_on_a_tricky_url_keeps_its_credentials_out_of_health_and_logs(caplog) -> None:
    url = "rtsp://admin:pa@ss%2Fw0rd@127.0.0.1:9/stream?token=t0k3n-s3cret&channel=1"
    source = VideoSource("cam", CameraConfig(source=url, fps=1), lambda *a: None, EdgeMetrics(),
                         retry_max_s=1, open_timeout_s=1).start()
    deadline = time.time() + 10
    while not source.last_error and time.time() < deadline:
        time.sleep(0.05)
    source.stop()
    health = str(source.health())
    assert source.last_error, "the source did not fail"
    assert source.health()["source"] == "rtsp://***@127.0.0.1:9/stream?token=***&channel=1"
    for secret in ("admin", "pa@ss", "w0rd", "ss%2F", "t0k3n-s3cret"):
        assert secret not in health and secret not in caplog.text, secret
