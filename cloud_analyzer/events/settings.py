"""The pushed events' settings (SSE, webhooks, MQTT), a mixin of AnalyzerSettings (prefix ANALYZER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


class EventsSettings(BaseSettings):
    sse_ping_s: float = Field(15.0, gt=0, le=300, description="SSE: a `: ping` comment this often keeps proxies "
                              "from closing an idle stream")
    sse_client_buffer: int = Field(
        1000, ge=1, le=100_000, description="SSE: events queued for one client; a client this far behind is "
        "dropped (it resumes with Last-Event-ID) rather than holding memory"
    )
    sse_send_timeout_s: float = Field(30.0, gt=0, description="SSE: a client that takes longer to accept one "
                                      "write is dropped")
    webhooks_enabled: bool = Field(True, description="run the webhook deliverer (its own consumer group on the "
                                   "events stream)")
    webhook_retry_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0],
        description="webhooks: waits before each retry of a failed delivery (JSON list; each gets up to +20% "
        "jitter); after the last, the event is counted failed for that webhook"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="webhooks: one delivery attempt's timeout")
    webhook_max_failures: int = Field(
        20, ge=1, description="webhooks: a webhook is disabled after this many events failed in a row"
    )
    webhook_queue: int = Field(
        1000, ge=1, description="webhooks: events waiting for one webhook; beyond, new ones are counted failed "
        "for it (a dead receiver never holds up the others)"
    )
    webhook_allow_private: bool = Field(
        False, description="webhooks may target loopback, private and link-local addresses (SSRF guard off; "
        "for tests and a receiver on the same host)"
    )
    mqtt_url: str | None = Field(None, description="MQTT broker (mqtt://host:1883 or mqtts://host:8883); unset: "
                                 "no MQTT publisher")
    mqtt_username: str | None = Field(None, description="MQTT user name")
    mqtt_password_file: Path | None = Field(None, description="file holding the MQTT password")
    mqtt_ca_file: Path | None = Field(None, description="MQTT over TLS: CA bundle of the broker's certificate "
                                      "(mqtts:// uses the system's CAs without it)")
    mqtt_cert_file: Path | None = Field(None, description="MQTT over TLS: client certificate (PEM)")
    mqtt_key_file: Path | None = Field(None, description="MQTT over TLS: client key (PEM)")
    mqtt_topic_prefix: str = Field("facecodec", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                                   description="MQTT: the analyzer's topics start with this")
    mqtt_discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-]+$",
                                       description="MQTT: Home Assistant's discovery prefix")
    mqtt_presence_off_s: int = Field(300, ge=1, description="MQTT/Home Assistant: a person's presence sensor "
                                     "turns off this long after their last sighting")
    mqtt_client_id: str = Field("facecodec-analyzer", description="MQTT client id (unique per replica)")

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        return value
