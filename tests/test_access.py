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
from service_common.redis_keys import api_key_key


def test_keys_are_stored_as_hashes_and_checked_for_scope_expiry_and_revocation(redis_client) -> None:
    keys = KeyStore(redis_client)
    key, token = keys.create("ops", ["sightings:read"])
    stored = b"".join(k + v for k, v in redis_client.hgetall(api_key_key(key.key_id)).items())
    secret = token.split("_", 2)[2]  # fck_{id}_{secret}: the secret may itself hold "_"
    assert secret.encode() not in stored  # only the hash
    assert keys.verify(token) == key and key.allows("sightings:read") and not key.allows("faces:view")
    assert keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keys.verify("not a key") is None
    short, short_token = keys.create("short", ["events:read"], expires_at_ms=int(time.time() * 1000) + 300)
    assert keys.verify(short_token) == short
    time.sleep(0.35)
    assert keys.verify(short_token) is None  # expired
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
        redis.Redis.from_url(server.url).config_set("requirepass", "s3cret-from-a-file")
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
