"""A real MQTT broker for the tests: `mosquitto` (Debian package `mosquitto`, installed by .ci/run) on a
free loopback port, and a subscriber that keeps every message it gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devstack.stack import free_port
from tests.helpers import wait_until


def mosquitto_binary() -> str:
    """The broker's path; without one the test is skipped with the reason, except in CI (`CI` set), where
    a missing broker fails: CI installs it, so its absence is a broken setup, not a reason to skip."""
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if found:
        return found
    reason = "mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class Broker:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        # Persistent: durable sessions (and the messages queued for them) survive a restart of the broker.
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {directory}/\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        probe = Subscriber(self.port, "#")
        try:
            wait_until(probe.connected.is_set, 10, 0.05, "mosquitto accepting connections")
        finally:
            probe.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """A paho client subscribed to `topic`, keeping (topic, payload, retained) of every message. With a
    `client_id`, its session is durable: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), self.connected.set())
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

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
