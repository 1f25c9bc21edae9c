"""Pushed events: the decisions in the Redis events stream (`fc:events`), delivered over SSE, signed
webhooks and MQTT (with Home Assistant discovery). Each channel reads the stream on its own (SSE: one
reader per process fanning out to bounded per-client queues; webhooks and MQTT: a consumer group each),
so a slow receiver never delays recognition or another channel. docs/events.md is the user's side."""
