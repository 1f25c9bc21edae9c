"""MQTT from a real analyzer to a real mosquitto: sightings per camera, per identity and unknown,
availability and its last will, Home Assistant discovery (announced, re-announced on HA's birth message,
removed when an identity is deleted), and nothing lost while the broker is down."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest

from cloud_analyzer.events.ha_discovery import Topics, camera_config, identity_config, object_id
from cloud_analyzer.events.mqtt import MqttPublisher
from cloud_analyzer.events.settings import EventsSettings
from service_common.redis_client import connect
from service_common.redis_keys import EVENTS_GROUP_MQTT, EVENTS_STREAM
from tests.helpers import lfw_image, wait_until
from tests.helpers.mosquitto import Broker, Subscriber, require_mosquitto
from tests.helpers.records import recent_ms, record, valid_record
from tests.helpers.servers import api_client, serve_analyzer
from tests.helpers.tls_certs import Authority

# home-assistant/core, homeassistant/components/mqtt/discovery.py: the parser matches a discovery
# topic, its discovery prefix removed, against this (copied verbatim).
TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
    r"?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
TOPICS = Topics("facecodec", "homeassistant")


def ha_match(topic: str) -> re.Match | None:
    prefix = f"{TOPICS.discovery_prefix}/"
    assert topic.startswith(prefix)
    return TOPIC_MATCHER.fullmatch(topic[len(prefix):])


@pytest.mark.parametrize("value", ["cam-1", "door_2", "a" * 64, "0f3c9a2b4d6e8f0a1b2c3d4e5f6a7b8c", "odd.name/x y"])
def test_discovery_topics_match_home_assistants_parser(value: str) -> None:
    for topic, config in (identity_config(TOPICS, value, "Ann", 60), camera_config(TOPICS, value)):
        match = ha_match(topic)
        assert match, topic
        assert match["node_id"] == "facecodec" and match["object_id"] == config["unique_id"]
        assert match["component"] in ("binary_sensor", "sensor")
    assert object_id("camera", "odd.name/x y") == "camera_odd_name_x_y"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def watched(broker):
    subscriber = Subscriber(broker.port, "#")
    wait_until(subscriber.connected.is_set, 10, 0.05, "the test's subscriber")
    yield subscriber
    subscriber.close()


def analyzer(redis_server, broker, **overrides):
    return serve_analyzer(redis_server.url, mqtt_url=broker.url, webhooks_enabled=False, **overrides)


def test_sightings_availability_and_discovery(redis_server, broker, watched, front_end) -> None:
    with analyzer(redis_server, broker) as (url, stub):
        admin = api_client(redis_server.url)
        wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"online"], 15, 0.05, "online")
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in
                 (lfw_image("Colin_Powell", 1), lfw_image("Colin_Powell", 2))]
        enrolled = admin.post(f"{url}/v1/identities", data={"name": "Colin Powell"}, files=files)
        identity_id = enrolled.json()["identity_id"]
        known = record(front_end, lfw_image("Colin_Powell", 3), "porch", recent_ms(0) - 1000)
        stranger = valid_record("porch")
        assert all(a.status == a.ACCEPTED for a in stub.Ingest(iter([known, stranger]), timeout=30))

        on_identity = wait_until(lambda: watched.on(TOPICS.identity_sighting(identity_id)), 30, 0.1, "identity topic")
        sighting = json.loads(on_identity[0])
        assert sighting["face_id"] == known.face_id and sighting["identity_name"] == "Colin Powell"
        assert sighting["status"] == "recognised" and sighting["fpir"] is not None
        unknown = wait_until(lambda: watched.on(TOPICS.unknown_sighting), 30, 0.1, "unknown topic")
        assert json.loads(unknown[0])["face_id"] == stranger.face_id and json.loads(unknown[0])["cluster_id"]
        on_camera = wait_until(lambda: len(watched.on(TOPICS.camera_sighting("porch"))) >= 2 and
                               watched.on(TOPICS.camera_sighting("porch")), 30, 0.1, "camera topic")
        assert {json.loads(p)["face_id"] for p in on_camera} == {known.face_id, stranger.face_id}

        id_topic, id_config = identity_config(TOPICS, identity_id, "Colin Powell", 300)
        cam_topic, _ = camera_config(TOPICS, "porch")
        config = json.loads(wait_until(lambda: watched.on(id_topic), 15, 0.1, "identity config")[-1])
        assert config == json.loads(json.dumps(id_config)) and config["device_class"] == "presence"
        assert config["availability_topic"] == TOPICS.availability and config["device"]["name"] == "Colin Powell"
        wait_until(lambda: watched.on(cam_topic), 15, 0.1, "camera config")
        # Configs are retained: a Home Assistant connecting later gets them from the broker.
        late = Subscriber(broker.port, f"{TOPICS.discovery_prefix}/#")
        try:
            wait_until(lambda: late.on(id_topic) and late.on(cam_topic), 10, 0.05, "retained configs")
            assert all(retained for t, _, retained in late.messages if t in (id_topic, cam_topic))
        finally:
            late.close()

        # Home Assistant's birth message: every config again.
        before = len(watched.on(id_topic)), len(watched.on(cam_topic))
        watched.publish(TOPICS.ha_status, "online")
        wait_until(lambda: len(watched.on(id_topic)) > before[0] and len(watched.on(cam_topic)) > before[1], 15,
                   0.1, "configs re-announced")

        # A deleted identity: an empty retained config removes its entity.
        assert admin.delete(f"{url}/v1/identities/{identity_id}").status_code == 204
        wait_until(lambda: watched.on(id_topic)[-1:] == [b""], 30, 0.2, "the identity's entity removed")
    # Stopped: offline, retained.
    wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"offline"], 15, 0.05, "offline on stop")


def test_nothing_is_lost_while_the_broker_is_down(redis_server, broker, watched) -> None:
    """The analyzer keeps its events pending while the broker is away and publishes them once it is back;
    a durable subscriber (a persistent session, as Home Assistant's) gets every one."""
    client = connect(redis_server.url)
    with analyzer(redis_server, broker) as (url, stub):
        wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"online"], 15, 0.05, "online")
        durable = Subscriber(broker.port, f"{TOPICS.prefix}/cameras/#", client_id="durable-test")
        try:
            wait_until(durable.connected.is_set, 10, 0.05, "the durable subscriber")
            broker.stop()
            records = [valid_record("cellar", seed=i) for i in range(5)]
            assert all(a.status == a.ACCEPTED for a in stub.Ingest(iter(records), timeout=30))
            wait_until(lambda: client.xlen(EVENTS_STREAM) >= 5, 30, 0.1, "five decisions")
            wait_until(lambda: client.xpending(EVENTS_STREAM, EVENTS_GROUP_MQTT)["pending"], 15, 0.1,
                       "events read and held, not acknowledged")
            assert not durable.on(TOPICS.camera_sighting("cellar"))
            broker.start()
            got = wait_until(lambda: len(durable.on(TOPICS.camera_sighting("cellar"))) >= 5 and
                             durable.on(TOPICS.camera_sighting("cellar")), 60, 0.1, "the five sightings")
            assert {json.loads(p)["face_id"] for p in got} == {r.face_id for r in records}
            wait_until(lambda: client.xpending(EVENTS_STREAM, EVENTS_GROUP_MQTT)["pending"] == 0, 15, 0.1,
                       "every event acknowledged")
        finally:
            durable.close()


def test_tls_with_a_client_certificate_and_a_password(redis_server, tmp_path) -> None:
    """ANALYZER_MQTT_* against a broker that takes only TLS, a certificate from its CA and a password."""
    require_mosquitto()
    ca = Authority.create(tmp_path / "pki", "mqtt-ca")
    server_cert, server_key = ca.issue(tmp_path / "pki", "localhost")
    client_cert, client_key = ca.issue(tmp_path / "pki", "analyzer")
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "analyzer", "s3cret"], check=True,
                   capture_output=True)
    passwords.chmod(0o600)
    (tmp_path / "password").write_text("s3cret\n")
    broker = Broker(tmp_path / "broker", f"cafile {ca.cert_file}\ncertfile {server_cert}\nkeyfile {server_key}\n"
                    f"require_certificate true\nallow_anonymous false\npassword_file {passwords}\n")
    broker.start()
    tls = {"ca_certs": str(ca.cert_file), "certfile": str(client_cert), "keyfile": str(client_key)}
    try:
        with serve_analyzer(redis_server.url, mqtt_url=f"mqtts://localhost:{broker.port}", webhooks_enabled=False,
                            mqtt_ca_file=ca.cert_file, mqtt_cert_file=client_cert, mqtt_key_file=client_key,
                            mqtt_username="analyzer", mqtt_password_file=tmp_path / "password") as (url, stub):
            watched = Subscriber(broker.port, "#", tls=tls, login=("analyzer", "s3cret"))
            try:
                wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"online"], 15, 0.05, "online over TLS")
                face = valid_record("vault")
                assert all(a.status == a.ACCEPTED for a in stub.Ingest(iter([face]), timeout=30))
                got = wait_until(lambda: watched.on(TOPICS.camera_sighting("vault")), 30, 0.1, "the sighting")
                assert json.loads(got[0])["face_id"] == face.face_id
            finally:
                watched.close()
        # Without the password the broker refuses: the test's broker really checks it.
        refused = Subscriber(broker.port, "#", tls=tls, login=("analyzer", "wrong"))
        time.sleep(1.0)  # long enough for a connection to be refused; none may succeed
        assert not refused.connected.is_set()
        refused.close()
    finally:
        broker.stop()


def test_the_last_will_says_offline_when_the_connection_is_lost(redis_client, broker, watched) -> None:
    """No goodbye (the process died, the network went): the broker itself publishes `offline`; the
    publisher reconnects and says `online` again."""
    publisher = MqttPublisher(redis_client, "will-test", EventsSettings(mqtt_url=broker.url, mqtt_client_id="will"))
    publisher.start()
    try:
        wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"online"], 15, 0.05, "online")
        seen = len(watched.on(TOPICS.availability))  # retained ones of earlier tests included
        publisher.mqtt.socket().shutdown(socket.SHUT_RDWR)  # the connection drops without DISCONNECT
        wait_until(lambda: b"offline" in watched.on(TOPICS.availability)[seen:], 15, 0.05, "the will: offline")
        wait_until(lambda: watched.on(TOPICS.availability)[-1:] == [b"online"], 30, 0.05, "online again")
    finally:
        publisher.stop()
