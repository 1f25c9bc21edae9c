"""`python -m edge_encoder`: REST API for cameras + gRPC fetch service + uploader, one process.

    python -m edge_encoder                          serve (settings from EDGE_* variables; HTTPS with
                                                    EDGE_HTTPS_CERT_FILE and EDGE_HTTPS_KEY_FILE)
    python -m edge_encoder tokens add CAMERA_ID     a new camera token, printed once (CAMERA_ID `*`: fleet token)
    python -m edge_encoder tokens revoke CAMERA_ID  remove every token of that camera

Token commands edit EDGE_CAMERA_TOKENS_FILE (default <EDGE_DATA_DIR>/camera_tokens); a running edge
picks the change up on the next frame.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edge_encoder.api import create_app
from edge_encoder.settings import EdgeSettings
from service_common import logs
from service_common.access.camera_tokens import CameraTokenError, add_camera, revoke_camera
from service_common.serve import serve

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_encoder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    tokens = sub.add_parser("tokens", help="manage camera tokens").add_subparsers(dest="action", required=True)
    tokens.add_parser("add", help="a new token for a camera, printed once").add_argument("camera_id")
    tokens.add_parser("revoke", help="remove a camera's tokens").add_argument("camera_id")
    args = parser.parse_args(argv)
    settings = EdgeSettings()
    if args.command == "tokens":
        path = settings.tokens_path
        if args.action == "add":
            try:
                print(add_camera(path, args.camera_id))
            except CameraTokenError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"token for camera {args.camera_id} added to {path}; shown once", file=sys.stderr)
        else:
            print(f"removed {revoke_camera(path, args.camera_id)} token(s) of {args.camera_id}", file=sys.stderr)
        return 0
    logs.configure("edge", settings.log_format)
    https = settings.https
    if https is None and settings.http_host not in LOOPBACK:
        logging.getLogger("edge_encoder").warning(
            "REST API on %s in plain HTTP: camera tokens and frames cross the network readable; set "
            "EDGE_HTTPS_CERT_FILE and EDGE_HTTPS_KEY_FILE", settings.http_host)
    cert, key = https or (None, None)
    return serve(lambda: create_app(settings), settings.http_host, settings.http_port,
                 ssl_certfile=cert, ssl_keyfile=key)


if __name__ == "__main__":
    sys.exit(main())
