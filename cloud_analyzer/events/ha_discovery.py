"""Home Assistant MQTT discovery: the retained config messages that make a camera and a person appear in
Home Assistant with no YAML (home-assistant.io/integrations/mqtt, "Discovery messages").

Topics are `<discovery_prefix>/<component>/<node_id>/<object_id>/config`, ids from [a-zA-Z0-9_-] only;
an empty retained payload on the same topic removes the entity. Every entity shares the analyzer's
availability topic, so all of them go unavailable when its last will says `offline`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import facecodec

NODE_ID = "facecodec"
UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def object_id(kind: str, value: str) -> str:
    """An id Home Assistant accepts in a topic, unique per kind: anything outside [a-zA-Z0-9_-] becomes `_`
    (camera and identity ids are already in that set, see service_common/ids.py)."""
    return UNSAFE.sub("_", f"{kind}_{value}")


@dataclass(frozen=True)
class Topics:
    """Every topic the publisher uses, built in one place."""

    prefix: str  # the analyzer's own topics
    discovery_prefix: str = "homeassistant"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/available"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and will: `online` means it (re)started and needs the configs again."""
        return f"{self.discovery_prefix}/status"

    def camera_sighting(self, camera_id: str) -> str:
        return f"{self.prefix}/cameras/{camera_id}/sighting"

    def identity_sighting(self, identity_id: str) -> str:
        return f"{self.prefix}/identities/{identity_id}/sighting"

    @property
    def unknown_sighting(self) -> str:
        return f"{self.prefix}/unknown/sighting"

    def config(self, component: str, object_id_: str) -> str:
        return f"{self.discovery_prefix}/{component}/{NODE_ID}/{object_id_}/config"


def _device(ids: str, name: str, model: str) -> dict:
    return {"ids": [ids], "name": name, "mf": "facecodec", "mdl": model, "sw": facecodec.__version__}


ORIGIN = {"name": "facecodec cloud analyzer", "sw": facecodec.__version__}


def identity_config(topics: Topics, identity_id: str, name: str, off_after_s: int) -> tuple[str, dict]:
    """A person's presence: a binary_sensor (device class presence) that turns on with each sighting and
    off `off_after_s` later; its attributes are the last sighting (camera, time, similarity, ...)."""
    oid = object_id("identity", identity_id)
    return topics.config("binary_sensor", oid), {
        "name": None, "unique_id": oid, "object_id": f"facecodec_{oid}", "device_class": "presence",
        "state_topic": topics.identity_sighting(identity_id), "value_template": "ON", "payload_on": "ON",
        "off_delay": off_after_s, "json_attributes_topic": topics.identity_sighting(identity_id),
        "availability_topic": topics.availability, "device": _device(oid, name, "identity"), "origin": ORIGIN,
    }


def camera_config(topics: Topics, camera_id: str) -> tuple[str, dict]:
    """A camera's last sighting: a sensor whose state is the name seen (or `unknown`), with the sighting as
    attributes."""
    oid = object_id("camera", camera_id)
    return topics.config("sensor", oid), {
        "name": "last person", "unique_id": oid, "object_id": f"facecodec_{oid}",
        "state_topic": topics.camera_sighting(camera_id),
        "value_template": "{{ value_json.identity_name or value_json.status }}",
        "json_attributes_topic": topics.camera_sighting(camera_id), "icon": "mdi:cctv",
        "availability_topic": topics.availability, "device": _device(oid, f"camera {camera_id}", "camera"),
        "origin": ORIGIN,
    }
