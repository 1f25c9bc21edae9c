"""Keys, audit and camera tokens on real Redis: the first admin key, the admin CLI, token files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service_common.access import AuditLog, KeyStore, bootstrap_admin
from service_common.access.camera_tokens import CameraTokenError, CameraTokens, add_camera, revoke_camera
from service_common.access.keys import AdminKeyError, KeyError_
from service_common.redis_client import connect
from service_common.redis_keys import AUDIT_STREAM, api_key_key


def test_keys_are_stored_as_hashes_and_checked_for_scope_expiry_and_revocation(redis_client) -> None:
    now = [time.time()]
    keys = KeyStore(redis_client, clock=lambda: now[0])
    key, token = keys.create("ops", ["sightings:read"])
    stored = b"".join(k + v for k, v in redis_client.hgetall(api_key_key(key.key_id)).items())
    secret = token.split("_", 2)[2]  # fck_{id}_{secret}: the secret may itself hold "_"
    assert secret.encode() not in stored  # only the hash
    assert keys.verify(token) == key and key.allows("sightings:read") and not key.allows("faces:view")
    assert keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keys.verify("not a key") is None
    short, short_token = keys.create("short", ["events:read"], expires_at_ms=int(now[0] * 1000) + 300)
    now[0] += 0.299
    assert keys.verify(short_token) == short
    now[0] += 0.002
    assert keys.verify(short_token) is None  # expired
    with pytest.raises(KeyError_, match="past"):
        keys.create("late", ["events:read"], expires_at_ms=int(now[0] * 1000))
    keys.revoke(key.key_id)
    assert keys.verify(token) is None and keys.get(key.key_id).revoked_at_ms
    with pytest.raises(KeyError_):
        keys.create("bad", ["root"])
    with pytest.raises(KeyError_):
        keys.create("bad", [])
    admin, _ = keys.create("root", ["admin"])
    assert all(admin.allows(scope) for scope in ("faces:view", "identities:write", "events:read"))


def test_first_admin_key_only_from_a_secret_file(redis_client, tmp_path: Path) -> None:
    """The first admin key goes to a 0600 file, never to the caller (which would print it); without a file
    and with no key yet, start is refused; once a key exists, no file is needed."""
    keys = KeyStore(redis_client)
    with pytest.raises(AdminKeyError, match="ANALYZER_ADMIN_KEY_FILE"):
        bootstrap_admin(keys, None)
    assert keys.list() == []
    secret = tmp_path / "secrets" / "admin_key"
    assert bootstrap_admin(keys, secret) is True
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    from_file = secret.read_text().strip()
    assert keys.verify(from_file).scopes == ("admin",)
    assert bootstrap_admin(keys, secret) is False  # every start registers the same file again: still one key
    assert len(keys.list()) == 1
    assert bootstrap_admin(keys, None) is False  # a replica without the file: keys exist, nothing to do


def test_audit_is_queryable_by_time_key_action_face_and_identity(redis_client) -> None:
    audit = AuditLog(redis_client)
    for i in range(30):
        audit.record("face.view" if i % 2 else "identity.enrol", "ok", 200, key_id=f"{i % 3:016x}",
                     face_id=f"f{i}", identity_id="a" * 32 if i % 5 == 0 else "")
    views, _ = audit.query(action="face.view", limit=100)
    assert len(views) == 15 and views[0].face_id == "f29"  # newest first
    assert [e.face_id for e in audit.query(face_id="f7")[0]] == ["f7"]
    assert len(audit.query(identity_id="a" * 32)[0]) == 6
    assert len(audit.query(key_id=f"{1:016x}", action="face.view")[0]) == 5
    page, more = audit.query(limit=10)
    older, _ = audit.query(before=more, limit=100)
    assert len(page) == 10 and len(older) == 20 and not {e.id for e in page} & {e.id for e in older}
    assert audit.query(since_ms=int(time.time() * 1000) + 60_000)[0] == []


@pytest.mark.slow
def test_admin_cli_creates_lists_and_revokes_keys(redis_server, redis_client) -> None:
    env = {**os.environ, "ANALYZER_REDIS_URL": redis_server.url}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cloud_analyzer", "keys", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    created = cli("create", "--name", "night shift", "--scope", "sightings:read", "--scope", "events:read")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    key = KeyStore(redis_client).verify(token)
    assert key.name == "night shift" and key.scopes == ("sightings:read", "events:read")
    assert key.key_id in cli("list").stdout and token not in cli("list").stdout
    assert cli("revoke", key.key_id).returncode == 0 and KeyStore(redis_client).verify(token) is None
    assert cli("revoke", "0" * 16).returncode == 1
    assert cli("create", "--name", "x", "--scope", "root").returncode != 0
    assert cli("token").stdout.startswith("fck_")


def test_camera_tokens_per_camera_fleet_and_revocation(tmp_path: Path) -> None:
    path = tmp_path / "camera_tokens"
    tokens = CameraTokens(path)
    assert not tokens.allows("door", "anything")  # no file: nobody
    door = add_camera(path, "door")
    assert tokens.allows("door", door) and not tokens.allows("gate", door) and not tokens.allows("door", None)
    fleet = add_camera(path, "*")
    assert tokens.allows("gate", fleet) and door not in path.read_text()  # hashes only
    assert revoke_camera(path, "door") == 1
    assert not tokens.allows("door", door)  # the file changed: re-read without a restart
    with pytest.raises(CameraTokenError):
        add_camera(path, "bad id")
    path.write_text(path.read_text() + "door nothex\n")
    assert not tokens.allows("gate", fleet)  # a damaged file admits nobody


def test_services_reach_a_password_protected_redis_with_the_password_file(tmp_path: Path) -> None:
    import redis

    from cloud_analyzer.store import Store
    from cloud_reconstructor.store import FaceIndex
    from devstack.stack import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        connect(server.url).config_set("requirepass", "s3cret-from-a-file")
        secret = tmp_path / "redis_password"
        secret.write_text("s3cret-from-a-file\n")
        assert Store.from_url(server.url, 2, secret).r.ping()
        assert FaceIndex(server.url, 2, secret).r.ping()
        with pytest.raises(redis.AuthenticationError):
            Store.from_url(server.url, 2).r.ping()
        empty = tmp_path / "empty"
        empty.write_text("")
        with pytest.raises(ValueError, match="empty"):
            Store.from_url(server.url, 2, empty)
    finally:
        server.stop()


def test_the_launcher_and_the_access_library_load_no_web_framework() -> None:
    """The launcher and the CLIs use access control and TLS without paying for FastAPI."""
    code = ("import sys, service_common.access, devstack.stack, service_common.tls; "
            "assert not {'fastapi', 'starlette', 'service_common.guard', 'service_common.http'} & set(sys.modules), "
            "sorted(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0


def _redis_time(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_rate_limit_holds_a_burst_straddling_a_second_boundary_across_replicas(redis_server) -> None:
    """10/s: a full burst at .85 s and another at .10 s of the next second. A per-second counter admits
    both (20 in 0.25 s); the sliding window admits none of the second, whichever replica counts it."""

    from service_common.access import RateLimiter

    replicas = [RateLimiter(connect(redis_server.url)) for _ in range(2)]
    client = replicas[0].r
    client.flushdb()
    while _redis_time(client) % 1 < 0.85 or _redis_time(client) % 1 > 0.9:
        time.sleep(0.005)
    first = [replicas[i % 2].hit("k1", 10) for i in range(10)]
    while _redis_time(client) % 1 > 0.5 or _redis_time(client) % 1 < 0.1:
        time.sleep(0.005)
    second = [replicas[i % 2].hit("k1", 10) for i in range(10)]
    assert first == [None] * 10
    assert all(wait is not None and 0 < wait <= 1 for wait in second), second
    assert replicas[1].over("k1", 10) is not None and replicas[0].over("k2", 10) is None
    time.sleep(max(second))  # once the first burst leaves the window, requests fit again
    assert replicas[0].hit("k1", 10) is None


def test_audit_retention_is_by_time_and_the_safety_cap_is_counted_and_logged(redis_client, caplog) -> None:
    keep_ms = 4000  # the 2,001 records below must land within it, also on a loaded machine and a cluster
    audit = AuditLog(redis_client, max_entries=1000, retention_days=keep_ms / 86_400_000)
    audit.record("face.view", "ok", 200, face_id="old")
    for i in range(2000):  # many new entries do not push an entry out while it is within retention
        audit.record("search", "ok", 200, face_id=f"f{i}")
    assert len(audit) == 1000 and audit.dropped() == 1001  # only the memory guard could: counted
    assert "dropped" in caplog.text and any(r.levelname == "ERROR" for r in caplog.records)
    caplog.clear()
    redis_client.delete(AUDIT_STREAM)
    audit.record("face.view", "ok", 200, face_id="kept")
    for i in range(500):
        audit.record("search", "ok", 200, face_id=f"g{i}")
    assert audit.query(face_id="kept")[0] and len(audit) == 501  # volume under the cap pushes nothing out
    time.sleep(keep_ms / 1000 + 0.1)
    audit.record("search", "ok", 200, face_id="new")
    assert len(audit) == 1 and not audit.query(face_id="kept")[0]  # older than retention: trimmed
    assert not caplog.text  # retention is policy, not loss: no error


def test_audit_fields_are_sanitised_whatever_the_caller_passes(redis_client) -> None:
    audit = AuditLog(redis_client)
    audit.record("face.view", "ok", 200, face_id="a\nb" * 5000, identity_id="not-hex", key_id="k" * 99,
                 detail="line\nbreak\x1b[31m" + "d" * 5000)
    (entry,) = audit.query()[0]
    assert entry.face_id.startswith("invalid:") and entry.identity_id.startswith("invalid:")
    assert entry.key_id.startswith("invalid:") and len(entry.detail) == 500 and "\n" not in entry.detail
    assert "\x1b" not in entry.detail
