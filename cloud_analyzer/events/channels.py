"""The analyzer's event channels started and stopped together: the SSE hub (always), the webhook
deliverer (ANALYZER_WEBHOOKS_ENABLED) and the MQTT publisher (only with ANALYZER_MQTT_URL)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from cloud_analyzer.events.mqtt import MqttPublisher
from cloud_analyzer.events.sse_hub import EventHub
from cloud_analyzer.events.webhook_delivery import DeliveryPolicy, WebhookDeliverer
from cloud_analyzer.settings import AnalyzerSettings
from service_common.redis_client import connect_async


@dataclass
class Channels:
    hub: EventHub
    webhooks: WebhookDeliverer | None
    mqtt: MqttPublisher | None

    async def stop(self) -> None:
        await self.hub.close()
        await self.hub.r.aclose()
        for publisher in (self.webhooks, self.mqtt):
            if publisher is not None:
                publisher.stop()


def start_channels(settings: AnalyzerSettings, client: redis.Redis) -> Channels:
    async_client = connect_async(settings.redis_url, settings.redis_password_file,
                                 socket_connect_timeout=settings.redis_timeout_s)
    hub = EventHub(async_client, settings.sse_client_buffer)
    webhooks = None
    if settings.webhooks_enabled:
        webhooks = WebhookDeliverer(client, settings.consumer_name, DeliveryPolicy(
            settings.webhook_retry_s, settings.webhook_timeout_s, settings.webhook_max_failures,
            settings.webhook_queue, settings.webhook_allow_private))
        webhooks.start()
    mqtt = None
    if settings.mqtt_url:
        mqtt = MqttPublisher(client, settings.consumer_name, settings)
        mqtt.start()
    return Channels(hub, webhooks, mqtt)
