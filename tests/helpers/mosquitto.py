"""A real MQTT broker for the tests: `mosquitto` (Debian package `mosquitto`, installed by .ci/run) on a
free loopback port, and a subscriber that keeps every message it gets."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devstack.mosquitto import MosquittoServer, mosquitto_binary
from devstack.stack import free_port


def require_mosquitto() -> None:
    """Skip the test with the reason when mosquitto is missing, except in CI (`CI` set), where it fails:
    CI installs it (.ci/run), so its absence is a broken setup, not a reason to skip."""
    if mosquitto_binary():
        return
    reason = "mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class Broker(MosquittoServer):
    """devstack's broker on a free port, checked for first."""

    def __init__(self, data_dir: Path, listener_config: str = "allow_anonymous true\n") -> None:
        super().__init__(data_dir, free_port(), listener_config)

    def start(self, timeout_s: float = 10.0) -> None:
        require_mosquitto()
        super().start(timeout_s)


class Subscriber:
    """A paho client subscribed to `topic`, keeping (topic, payload, retained) of every message. With a
    `client_id`, its session is durable: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str, client_id: str | None = None,
                 tls: dict[str, str] | None = None, login: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        self.client.reconnect_delay_set(0.1, 1)
        if tls:
            self.client.tls_set(**tls)
        if login:
            self.client.username_pw_set(*login)
        self.topic = topic
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("localhost" if tls else "127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:  # a refusal (bad password) also calls on_connect
            client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
