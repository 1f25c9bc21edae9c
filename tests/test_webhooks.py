"""Webhooks from a real analyzer to real local HTTP receivers: registration over REST, Standard Webhooks
signatures checked by the independent `standardwebhooks` library, filters, retries with backoff, failure
state and disabling, a slow receiver not delaying a healthy one, and the URL guard."""

from __future__ import annotations

import json
import time

import pytest
import redis
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from cloud_analyzer.events.schema import EventFilter
from cloud_analyzer.events.url_policy import RefusedUrl, check_url
from cloud_analyzer.events.webhook_delivery import DeliveryPolicy, WebhookDeliverer
from cloud_analyzer.events.webhooks import WebhookStore
from service_common.redis_client import connect
from service_common.redis_keys import EVENTS_GROUP_WEBHOOKS, EVENTS_STREAM
from tests.helpers import wait_until
from tests.helpers.receivers import receiving
from tests.helpers.records import valid_record
from tests.helpers.servers import api_client, serve_analyzer

RETRIES = [0.2, 0.4]


@pytest.fixture(scope="module")
def served(redis_server):
    with serve_analyzer(redis_server.url, webhook_allow_private=True, webhook_retry_s=RETRIES,
                        webhook_timeout_s=5, webhook_max_failures=2) as (url, stub):
        yield url, stub, api_client(redis_server.url, ("webhooks:admin",), "hooks-admin")


@pytest.fixture(autouse=True)
def no_webhooks(redis_server):
    """Each test starts with no webhook registered (straight in Redis: a test may have flushed the keys)."""
    yield
    store = WebhookStore(connect(redis_server.url))
    for hook in store.all():
        store.delete(hook.webhook_id)


def ingest(stub, *cameras: str) -> list[str]:
    records = [valid_record(camera, seed=i) for i, camera in enumerate(cameras)]
    assert all(a.status == a.ACCEPTED for a in stub.Ingest(iter(records), timeout=30))
    return [r.face_id for r in records]


def register(served, receiver_url: str, **filters) -> dict:
    url, _, admin = served
    created = admin.post(f"{url}/v1/webhooks", json={"url": receiver_url, **filters})
    assert created.status_code == 201, created.text
    return created.json()


def test_signed_filtered_deliveries_and_the_rest_api(served) -> None:
    url, stub, admin = served
    with receiving() as receiver:
        hook = register(served, receiver.url, camera_id="porch")
        assert hook["secret"].startswith("whsec_") and hook["filter"] == {"camera_id": "porch"}
        faces = ingest(stub, "porch", "garage", "porch")
        wait_until(lambda: len(receiver.requests) >= 2, 30, 0.1, "two deliveries")
        verifier = Verifier(hook["secret"])
        delivered = []
        for headers, body, _ in receiver.requests:
            payload = verifier.verify(body, headers)  # raises unless the signature and timestamp hold
            assert headers["webhook-id"] == f"msg_{payload['data']['id']}"
            assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
            assert payload["type"] == "face.unknown" and payload["timestamp"].endswith("Z")
            delivered.append(payload["data"]["face_id"])
        assert sorted(delivered) == sorted([faces[0], faces[2]])  # the garage's face is filtered out
        # A tampered body fails the independent verifier: the signature covers exactly the bytes sent.
        headers, body, _ = receiver.requests[0]
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body.replace(b"porch", b"porcH"), headers)

        state = wait_until(lambda: (s := admin.get(f"{url}/v1/webhooks/{hook['webhook_id']}").json())["delivered"] == 2
                           and s, 10, 0.1, "delivered counted")
        assert "secret" not in state and state["failed"] == 0 and state["last_status"] == 200 and state["enabled"]
        # Lists page with a cursor.
        second = register(served, receiver.url)
        page = admin.get(f"{url}/v1/webhooks", params={"limit": 1}).json()
        assert [h["webhook_id"] for h in page["items"]] == [hook["webhook_id"]] and page["next_cursor"]
        rest = admin.get(f"{url}/v1/webhooks", params={"limit": 1, "cursor": page["next_cursor"]}).json()
        assert [h["webhook_id"] for h in rest["items"]] == [second["webhook_id"]] and rest["next_cursor"] is None
        assert admin.delete(f"{url}/v1/webhooks/{hook['webhook_id']}").status_code == 204
        assert admin.get(f"{url}/v1/webhooks/{hook['webhook_id']}").status_code == 404
        assert admin.delete(f"{url}/v1/webhooks/{hook['webhook_id']}").status_code == 404


def test_a_slow_receiver_never_delays_a_healthy_one(served) -> None:
    _, stub, _ = served
    with receiving(delay_s=3.0) as slow, receiving() as healthy:
        register(served, slow.url)
        register(served, healthy.url)
        start = time.monotonic()
        faces = ingest(stub, "hall", "hall", "hall", "hall")
        wait_until(lambda: len(healthy.requests) >= 4, 30, 0.05, "the healthy receiver's four events")
        took = time.monotonic() - start
        assert took < 3.0, f"the healthy receiver waited {took:.1f} s"
        assert len(slow.requests) <= 2  # still on its first or second event
        got = [json.loads(b)["data"]["face_id"] for b in healthy.bodies()]
        assert got == faces  # in order


def test_failures_are_retried_counted_and_disable_the_webhook(served) -> None:
    url, stub, admin = served
    with receiving(status=500) as failing, receiving() as healthy:
        hook = register(served, failing.url)
        register(served, healthy.url)
        ingest(stub, "lab")
        wait_until(lambda: len(failing.requests) >= 1 + len(RETRIES), 30, 0.05, "every attempt")
        times = [t for _, _, t in failing.requests]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= r for g, r in zip(gaps, RETRIES)), gaps  # backoff waited at least the schedule
        assert len({h["webhook-id"] for h, _, _ in failing.requests}) == 1  # one message id across retries
        state = wait_until(lambda: (s := admin.get(f"{url}/v1/webhooks/{hook['webhook_id']}").json())["failed"] == 1
                           and s, 10, 0.1, "the failure counted")
        assert state["last_status"] == 500 and state["consecutive_failures"] == 1 and state["enabled"]
        ingest(stub, "lab")
        state = wait_until(lambda: not (s := admin.get(f"{url}/v1/webhooks/{hook['webhook_id']}").json())["enabled"]
                           and s, 30, 0.1, "disabled after two failed events")
        assert state["failed"] == 2 and "2 events failed" in state["disabled_reason"]
        attempts = len(failing.requests)
        ingest(stub, "lab")
        wait_until(lambda: len(healthy.requests) >= 3, 30, 0.05, "the healthy receiver's three events")
        assert len(failing.requests) == attempts  # a disabled webhook is not called
        enabled = admin.post(f"{url}/v1/webhooks/{hook['webhook_id']}/enable").json()
        assert enabled["enabled"] and enabled["consecutive_failures"] == 0


def test_410_gone_disables_at_once(served) -> None:
    url, stub, admin = served
    with receiving(status=410) as gone:
        hook = register(served, gone.url)
        ingest(stub, "attic")
        state = wait_until(lambda: not (s := admin.get(f"{url}/v1/webhooks/{hook['webhook_id']}").json())["enabled"]
                           and s, 30, 0.1, "disabled by 410")
        assert len(gone.requests) == 1 and "410" in state["disabled_reason"]  # not retried


def test_bad_requests_and_scopes(served, redis_server) -> None:
    url, _, admin = served
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "http://", "http://user:pw@example.com/", "nonsense"):
        assert admin.post(f"{url}/v1/webhooks", json={"url": bad}).status_code == 422, bad
    assert admin.post(f"{url}/v1/webhooks", json={"url": "http://example.com", "status": "maybe"}).status_code == 422
    assert admin.get(f"{url}/v1/webhooks/not-an-id").status_code == 422
    assert admin.get(f"{url}/v1/webhooks", params={"cursor": "garbage"}).status_code == 422
    reader = api_client(redis_server.url, ("events:read",), "reader")
    assert reader.get(f"{url}/v1/webhooks").status_code == 403
    assert reader.post(f"{url}/v1/webhooks", json={"url": "http://example.com"}).status_code == 403


@pytest.mark.parametrize("target", ["http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/",
                                    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/",
                                    "https://192.168.1.1/", "http://[::ffff:127.0.0.1]/"])
def test_the_ssrf_guard_refuses_addresses_inside_the_deployment(target: str) -> None:
    with pytest.raises(RefusedUrl):
        check_url(target, allow_private=False)
    check_url(target, allow_private=True)  # the explicit setting allows them


def test_the_ssrf_guard_allows_a_public_address() -> None:
    check_url("https://93.184.215.14/hook", allow_private=False)  # a literal public address: no DNS needed
    with pytest.raises(RefusedUrl):
        check_url("http://no-such-host.invalid/", allow_private=False)


def test_a_receiver_too_far_behind_loses_events_not_memory(redis_client: redis.Redis) -> None:
    """The deliverer on its own over a real Redis: a webhook's queue holds at most `queue_size` events;
    beyond, events are counted failed for it (and acknowledged), instead of piling up."""
    deliverer = WebhookDeliverer(redis_client, "t", DeliveryPolicy([], 5, 100, 2, allow_private=True))
    with receiving(delay_s=1.0) as slow:
        hook = deliverer.store.create(slow.url, EventFilter())
        deliverer.start()
        try:
            for i in range(8):
                redis_client.xadd(EVENTS_STREAM, {"type": "face.unknown", "face_id": f"f{i}", "camera_id": "c",
                                                  "captured_at_ms": 1, "status": "unknown"})
            state = wait_until(lambda: (h := deliverer.store.get(hook.webhook_id)).delivered + h.failed == 8 and h,
                               30, 0.1, "every event delivered or counted failed")
            assert state.failed >= 8 - 1 - 2 and state.delivered == len(slow.requests) <= 1 + 2
            wait_until(lambda: redis_client.xpending(EVENTS_STREAM, EVENTS_GROUP_WEBHOOKS)["pending"] == 0, 10, 0.1,
                       "every event acknowledged")
        finally:
            deliverer.stop()
