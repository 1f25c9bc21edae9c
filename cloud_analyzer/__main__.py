"""`python -m cloud_analyzer`: gRPC Ingest + recognition workers + REST API, one process.

    python -m cloud_analyzer                         serve (settings from ANALYZER_* variables)
    python -m cloud_analyzer keys create --name N --scope S [--scope S ...] [--expires-in-days D]
    python -m cloud_analyzer keys list
    python -m cloud_analyzer keys revoke KEY_ID
    python -m cloud_analyzer keys token              a new admin token for a secret file (stores nothing)

The key commands talk to ANALYZER_REDIS_URL directly: run them where the analyzer runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cloud_analyzer.api import create_app
from cloud_analyzer.key_migration import migrate_keys
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from service_common import logs
from service_common.access import SCOPES, KeyStore, new_token
from service_common.access.keys import KeyError_
from service_common.serve import serve


def keys_command(args: argparse.Namespace, settings: AnalyzerSettings) -> int:
    if args.action == "token":
        print(new_token())
        return 0
    client = Store.from_url(settings.redis_url, settings.redis_timeout_s, settings.redis_password_file).r
    migrate_keys(client)  # a key written under today's names before an old layout is renamed would be lost
    keys = KeyStore(client)
    if args.action == "create":
        expires = int((time.time() + args.expires_in_days * 86400) * 1000) if args.expires_in_days else None
        try:
            key, token = keys.create(args.name, args.scope, expires, args.rate_per_s)
        except KeyError_ as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"key {key.key_id} {key.name!r} scopes {','.join(key.scopes)}; the token, shown once:", file=sys.stderr)
        print(token)
    elif args.action == "list":
        for key in keys.list():
            print(json.dumps({"key_id": key.key_id, "name": key.name, "scopes": list(key.scopes),
                              "created_at_ms": key.created_at_ms, "expires_at_ms": key.expires_at_ms,
                              "revoked_at_ms": key.revoked_at_ms}))
    elif args.action == "revoke":
        if keys.revoke(args.key_id) is None:
            print(f"error: no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud_analyzer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="a new key; its token is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True, choices=SCOPES)
    create.add_argument("--expires-in-days", type=float)
    create.add_argument("--rate-per-s", type=int)
    keys.add_parser("list", help="every key, revoked ones included (no secrets)")
    keys.add_parser("revoke", help="revoke a key now, on every replica").add_argument("key_id")
    keys.add_parser("token", help="print a new admin token for ANALYZER_ADMIN_KEY_FILE; stores nothing")
    args = parser.parse_args(argv)
    settings = AnalyzerSettings()
    if args.command == "keys":
        return keys_command(args, settings)
    logs.configure("analyzer", settings.log_format)
    return serve(lambda: create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    sys.exit(main())
