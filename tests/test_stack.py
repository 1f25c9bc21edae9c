"""The launcher as a person runs it: `python -m devstack.stack up` in a subprocess, stopped by SIGTERM or
by SIGINT even when started in the background (SIGINT ignored, as a shell's `&` leaves it), and nothing it
started left running; the env file it writes; settings passed through; the tokens command and the edge
agreeing on the token file."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import devstack.stack as launcher
from devstack.stack import Stack, user_settings
from tests.helpers import wait_until
from tests.helpers.procs import alive, children

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "lfw" / "Tony_Blair" / "Tony_Blair_0001.jpg"


def read_env_file(path: Path) -> dict[str, str]:
    """`export K=V` lines as bash would source them (the values are shell-quoted)."""
    out = subprocess.run(["bash", "-c", f"set -a; source {path}; env -0"], capture_output=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(launcher.PREFIXES))}
    return {**env, "FACECODEC_PORTS": "auto", **extra}


def test_user_settings_come_from_the_env_file_and_the_environment_which_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.local.env"
    env_file.write_text("EDGE_CAMERAS_FILE=/from/file.toml\nEDGE_MIN_QUALITY=0.3\nPATH=/not/a/setting\n"
                        "# a comment\nANALYZER_RETENTION_DAYS=7\n")
    found = user_settings(env_file, {"EDGE_MIN_QUALITY": "0.5", "HOME": "/root"})
    assert found == {"EDGE_CAMERAS_FILE": "/from/file.toml", "EDGE_MIN_QUALITY": "0.5",
                     "ANALYZER_RETENTION_DAYS": "7"}
    with pytest.raises(SystemExit, match="no such file"):
        user_settings(tmp_path / "missing.env", {})


def test_settings_pass_through_but_the_launcher_keeps_what_it_wires(tmp_path: Path, capsys) -> None:
    stack = Stack(tmp_path, user_settings={"EDGE_CAMERAS_FILE": "/x/cameras.toml", "EDGE_HTTP_PORT": "9999",
                                           "RECONSTRUCTOR_FETCH_RETRIES": "5"})
    ports = {"cloud_analyzer": 1, "cloud_reconstructor": 2, "edge_encoder": 3}
    envs = stack.service_envs(4, 5, ports)
    assert envs["edge_encoder"]["EDGE_CAMERAS_FILE"] == "/x/cameras.toml"
    assert envs["cloud_reconstructor"]["RECONSTRUCTOR_FETCH_RETRIES"] == "5"
    assert "EDGE_CAMERAS_FILE" not in envs["cloud_analyzer"]
    assert envs["edge_encoder"]["EDGE_HTTP_PORT"] == "3" and "EDGE_HTTP_PORT" in capsys.readouterr().err
    assert Path(envs["edge_encoder"]["EDGE_CAMERA_TOKENS_FILE"]).is_absolute()  # the same from any directory


def test_fixed_ports_in_use_are_refused_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setitem(launcher.FIXED_PORTS, "cloud_analyzer", busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="--ports auto"):
            Stack(tmp_path, fixed_ports=True).start()
    assert launcher.FIXED_PORTS["edge_encoder"] == 8001 and launcher.FIXED_PORTS["ingest"] == 50051


@pytest.mark.e2e
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_redis_and_every_service(tmp_path: Path, signame: str) -> None:
    """SIGTERM (kill) or SIGINT (Ctrl-C; here with SIGINT ignored at start, as in a background job): the
    launcher stops the three services and Redis, and exits 0."""
    data = tmp_path / "stack"
    cameras = tmp_path / "cameras.toml"
    cameras.write_text(f'[cameras.door]\nsource = "{tmp_path / "no-such-video.mp4"}"\n')
    (tmp_path / "local.env").write_text(f"EDGE_CAMERAS_FILE={cameras}\n")
    background = signame == "SIGINT"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.stack", "up", "--data-dir", str(data), "--env-file",
         str(tmp_path / "local.env")], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None)
    started: list[int] = []
    try:
        wait_until(lambda: (data / "stack.env").exists() or proc.poll() is not None, 180, 0.2, "stack.env")
        assert proc.poll() is None, proc.stdout.read().decode()
        started += children(proc.pid)
        assert len(started) == 4, started  # redis-server and the three services
        env = read_env_file(data / "stack.env")
        assert env["EDGE_CAMERA_TOKENS_FILE"] == str((data / "secrets" / "camera_tokens").resolve())
        edge = env["EDGE"]
        # The settings file reached the edge: it watches the configured camera.
        status = httpx.get(f"{edge}/v1/status", headers={"Authorization": f"Bearer {env['EDGE_ADMIN_TOKEN']}"},
                           timeout=10)
        assert "door" in status.json()["sources"]
        # `tokens add` with stack.env sourced writes the file this edge reads: its token is accepted.
        added = subprocess.run([sys.executable, "-m", "edge_encoder", "tokens", "add", "lobby"], cwd=ROOT,
                               env={**clean_env(), **env}, capture_output=True, text=True, check=True)
        token = added.stdout.strip()
        posted = httpx.post(f"{edge}/v1/cameras/lobby/frames", content=SAMPLE.read_bytes(), timeout=60,
                            headers={"content-type": "image/jpeg", "authorization": f"Bearer {token}"})
        assert posted.status_code == 201, posted.text
        secrets = [data / "stack.env", *(data / "secrets").iterdir()]  # admin_key, camera_token, camera_tokens
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in secrets} == {f.name: 0o600 for f in secrets}
        refused = httpx.post(f"{edge}/v1/cameras/gate/frames", content=SAMPLE.read_bytes(), timeout=60,
                             headers={"content-type": "image/jpeg", "authorization": f"Bearer {token}"})
        assert refused.status_code == 401  # lobby's token, not the gate's
        fleet = httpx.post(f"{edge}/v1/cameras/gate/frames", content=SAMPLE.read_bytes(), timeout=60,
                           headers={"content-type": "image/jpeg", "authorization": f"Bearer {env['CAMERA_TOKEN']}"})
        assert fleet.status_code == 201

        proc.send_signal(getattr(signal, signame))
        assert proc.wait(90) == 0, proc.stdout.read().decode()
        assert not [pid for pid in started if alive(pid)]
        assert not (data / "stack.env").exists() and not (data / "stack.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_launchers_redis_has_a_memory_limit_and_never_evicts(tmp_path: Path) -> None:
    """FACECODEC_REDIS_MAXMEMORY (default 1gb) with noeviction: a full Redis refuses new faces, which the
    edges keep, instead of dropping stored ones."""
    from devstack.settings import DevstackSettings

    assert DevstackSettings().redis_maxmemory == "1gb" or "FACECODEC_REDIS_MAXMEMORY" in os.environ
    stack = Stack(tmp_path, redis_maxmemory="64mb")
    stack.secrets_dir.mkdir(parents=True)
    (stack.secrets_dir / "redis_password").write_text("pw\n")
    stack.redis.start()
    try:
        config = stack.redis.client(decode_responses=True).config_get("maxmemory*")
        assert config["maxmemory"] == str(64 * 1024 * 1024) and config["maxmemory-policy"] == "noeviction"
    finally:
        stack.redis.stop()
