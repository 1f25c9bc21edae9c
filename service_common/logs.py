"""The services' log lines: text for a developer's terminal (the default), or one JSON object per line
for a log pipeline (`*_LOG_FORMAT=json`), each with the service, the level, the logger, the message and
the request id of the request it was written for (service_common/request_id.py), so one face can be
followed through the edge, the analyzer and the reconstructor by grepping one id."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO, Literal

from service_common import request_id

LogFormat = Literal["text", "json"]


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record, for either format."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.current() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            line["request_id"] = rid
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(service: str, fmt: LogFormat = "text", level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """The root logger of this process: one handler on `stream` (stderr), in `fmt`, every record with its
    request id."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {service} %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers keep their own handlers; route them through this one (its access log too).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
