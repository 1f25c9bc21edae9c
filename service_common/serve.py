"""How each service's `python -m` entry point starts: build the app (which checks the gRPC transport
settings first), then serve it with uvicorn; a refused configuration exits 2 with its reason, having
started nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from service_common.settings import GrpcTransportError


def serve(build: Callable[[], Any], host: str, port: int, **uvicorn_options: Any) -> int:
    """The process's exit status: 2 when the app refuses its settings, else 0 once uvicorn stops."""
    try:
        app = build()
    except GrpcTransportError as exc:  # neither certificates nor the plaintext switch: say so, start nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # log_config=None: uvicorn's records go through the process's own handler (service_common/logs.py), in
    # its format and with request ids, instead of uvicorn's own.
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None, **uvicorn_options)
    return 0
