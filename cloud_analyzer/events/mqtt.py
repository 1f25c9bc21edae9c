"""MQTT publisher: its own consumer group (`mqtt`) on the events stream; each decision is published as
JSON (QoS 1) on its camera's topic and on its identity's topic (or the unknown topic), and acknowledged in
the group only once the broker has it, so a restart or a broker outage loses nothing.

Availability: `<prefix>/available` is `online` (retained) while connected; the broker publishes the last
will `offline` if the analyzer vanishes, and the analyzer publishes `offline` itself when it stops.
Home Assistant discovery (ha_discovery.py): configs for every identity and every camera seen are
published retained on connect and again whenever Home Assistant announces `online` on
`homeassistant/status`; an identity deleted from the gallery gets an empty retained config (HA removes it)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import redis

from cloud_analyzer.events.group_reader import GroupReader
from cloud_analyzer.events.ha_discovery import Topics, camera_config, identity_config
from cloud_analyzer.events.schema import Event
from cloud_analyzer.events.settings import EventsSettings
from cloud_analyzer.identities import IdentityStore
from cloud_analyzer.metrics import EVENT_DELIVERIES
from service_common.redis_keys import CAMERAS, EVENTS_GROUP_MQTT, MQTT_ANNOUNCED

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 10.0
SWEEP_S = 10.0  # how often deleted identities are looked for


def make_client(settings: EventsSettings) -> tuple[mqtt.Client, str, int]:
    """A paho client for ANALYZER_MQTT_*: (client, host, port); nothing connected yet."""
    url = urlsplit(settings.mqtt_url or "")
    secure = url.scheme == "mqtts"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.mqtt_client_id, clean_session=True)
    if settings.mqtt_username:
        password = settings.mqtt_password_file.read_text().strip() if settings.mqtt_password_file else None
        client.username_pw_set(settings.mqtt_username, password)
    if secure:
        client.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                       certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
                       keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
    return client, url.hostname or "localhost", url.port or (8883 if secure else 1883)


class MqttPublisher(GroupReader):
    def __init__(self, client: redis.Redis, consumer: str, settings: EventsSettings) -> None:
        super().__init__(client, EVENTS_GROUP_MQTT, consumer)
        self.settings = settings
        self.topics = Topics(settings.mqtt_topic_prefix, settings.mqtt_discovery_prefix)
        self.identities = IdentityStore.__new__(IdentityStore)
        self.identities.r = client
        self.mqtt, self.host, self.port = make_client(settings)
        self.mqtt.will_set(self.topics.availability, "offline", qos=1, retain=True)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = self._on_message
        self.mqtt.on_disconnect = lambda *args: self.connected.clear()
        self.mqtt.reconnect_delay_set(1, 30)
        self.connected = threading.Event()
        self._cameras: set[str] = set()
        self._announce_lock = threading.Lock()
        self._next_sweep = 0.0

    # --- connection ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.mqtt.connect_async(self.host, self.port, keepalive=30)
        self.mqtt.loop_start()
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.connected.is_set():
            self.mqtt.publish(self.topics.availability, "offline", qos=1, retain=True).wait_for_publish(2)
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        client.subscribe(self.topics.ha_status, qos=1)
        # Configs before availability, so Home Assistant never sees an entity it cannot place.
        threading.Thread(target=self._announce_then_online, name="mqtt-announce", daemon=True).start()

    def _announce_then_online(self) -> None:
        try:
            self.announce_all()
        except redis.RedisError as exc:
            log.warning("mqtt: announcing to Home Assistant failed: %s", exc)
        self.mqtt.publish(self.topics.availability, "online", qos=1, retain=True)
        self.connected.set()
        log.info("mqtt: connected to %s:%d", self.host, self.port)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self.topics.ha_status and message.payload == b"online":
            log.info("mqtt: Home Assistant (re)started; announcing again")
            threading.Thread(target=self.announce_all, name="mqtt-announce", daemon=True).start()

    # --- discovery -----------------------------------------------------------------------------------
    def _config(self, topic: str, payload: dict | None) -> mqtt.MQTTMessageInfo:
        return self.mqtt.publish(topic, json.dumps(payload) if payload is not None else b"", qos=1, retain=True)

    def announce_identity(self, identity_id: str, name: str) -> None:
        self._config(*identity_config(self.topics, identity_id, name, self.settings.mqtt_presence_off_s))
        self.r.sadd(MQTT_ANNOUNCED, identity_id)

    def announce_camera(self, camera_id: str) -> None:
        self._config(*camera_config(self.topics, camera_id))
        self._cameras.add(camera_id)

    def announce_all(self) -> None:
        with self._announce_lock:
            for identity in self.identities.all_identities():
                self.announce_identity(identity["identity_id"], identity.get("name") or identity["identity_id"])
            for camera in self.r.zrange(CAMERAS, 0, -1):
                self.announce_camera(camera.decode())
            self.sweep()

    def sweep(self) -> None:
        """Identities announced earlier and deleted since: an empty retained config removes them."""
        self._next_sweep = time.monotonic() + SWEEP_S
        announced = {m.decode() for m in self.r.smembers(MQTT_ANNOUNCED)}
        if not announced:
            return
        current = {i["identity_id"] for i in self.identities.all_identities()}
        for identity_id in announced - current:
            topic, _ = identity_config(self.topics, identity_id, "", self.settings.mqtt_presence_off_s)
            self._config(topic, None).wait_for_publish(PUBLISH_TIMEOUT_S)
            self.r.srem(MQTT_ANNOUNCED, identity_id)
            log.info("mqtt: identity %s removed from Home Assistant", identity_id)

    # --- sightings -----------------------------------------------------------------------------------
    def handle(self, events: list[Event]) -> list[str]:
        if not self.connected.wait(PUBLISH_TIMEOUT_S):
            raise ConnectionError(f"mqtt: not connected to {self.host}:{self.port}; events stay pending")
        sent = []
        for event in events:
            payload = event.model_dump_json()
            if event.camera_id and event.camera_id not in self._cameras:
                self.announce_camera(event.camera_id)
            infos = [self.mqtt.publish(self.topics.camera_sighting(event.camera_id), payload, qos=1)]
            if event.identity_id:
                if event.type != "face.relabelled" and not self.r.sismember(MQTT_ANNOUNCED, event.identity_id):
                    self.announce_identity(event.identity_id, event.identity_name or event.identity_id)
                infos.append(self.mqtt.publish(self.topics.identity_sighting(event.identity_id), payload, qos=1))
            else:
                infos.append(self.mqtt.publish(self.topics.unknown_sighting, payload, qos=1))
            sent.append((event.id, infos))
        done = []
        for event_id, infos in sent:
            try:
                for info in infos:
                    info.wait_for_publish(PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError):  # the connection dropped meanwhile
                pass
            if not all(info.is_published() for info in infos):
                # The rest stays pending and is read again once connected (at least once: the broker
                # may get some twice).
                self.ack(*done)
                EVENT_DELIVERIES.labels("mqtt", "failed").inc()
                raise ConnectionError(f"mqtt: the broker did not confirm event {event_id}")
            EVENT_DELIVERIES.labels("mqtt", "ok").inc()
            done.append(event_id)
        return done

    def tick(self) -> None:
        if self.connected.is_set() and time.monotonic() >= self._next_sweep:
            self.sweep()
