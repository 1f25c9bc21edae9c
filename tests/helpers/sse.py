"""A real Server-Sent Events client for the tests: reads a stream in a thread over HTTP and keeps what
arrived (events, comment lines), parsed as the EventSource spec says."""

from __future__ import annotations

import json
import threading

import httpx


class SseClient:
    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None,
                 last_event_id: str | None = None) -> None:
        self.events: list[dict] = []  # {"id", "event", "data" (parsed JSON)}
        self.comments: list[str] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._headers = {**headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
        self._args = (url, params or {})
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        url, params = self._args
        try:
            with httpx.Client(timeout=httpx.Timeout(30, read=60)) as client, \
                    client.stream("GET", url, params=params, headers=self._headers) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    response.read()
                    self.body = response.text
                    return
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif not line:
                        if "data" in fields:
                            self.events.append({"id": fields.get("id"), "event": fields.get("event"),
                                                "data": json.loads(fields["data"])})
                        fields = {}
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=0.1)  # the read returns with the next event or ping

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]
