"""docker-compose.yml built and run for real, with Podman: the images, every service healthy in its
container, the demo's flow against them, an edge restart that keeps its faces and outbox, teardown.

Runs wherever podman and podman-compose are installed (`make system-compose` installs them with apt;
CI does); elsewhere it skips, except under CI, where a missing Podman fails (the `compose_images`
fixture, tests/conftest.py). The first run builds the images (minutes, see bench/results/compose.json);
later runs reuse Podman's layer cache. `make compose-test` runs this file and its cluster variant,
tests/test_compose_cluster_run.py. tests/test_compose.py checks the same files statically.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import compose

pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(compose_images: None, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[compose.ComposeProject, str]]:
    running = compose.ComposeProject(tmp_path_factory.mktemp("compose"))
    running.down()  # what an interrupted run left behind
    admin_key = running.make_secrets()
    try:
        running.up()
        running.wait_healthy()
        yield running, admin_key
    finally:
        running.down()


def test_every_service_is_healthy_in_the_image_and_none_has_torch(
        project: tuple[compose.ComposeProject, str]) -> None:
    running, _ = project
    for service in compose.APP_SERVICES:
        assert running.healthy(service), service
        found = running.exec(service, "python", "-c",
                             "import importlib.util as u; print(u.find_spec('torch') is not None)").strip()
        assert found == "False", service
    assert running.healthy("redis")
    size = compose.image_size_bytes()
    assert size < 1_000_000_000, f"service image is {size / 1e6:.0f} MB"


def test_demo_flow_then_edge_restart_keeps_its_faces_and_outbox(project: tuple[compose.ComposeProject, str],
                                                                  tmp_path: Path) -> None:
    running, admin_key = project
    facts = compose.end_to_end(running, admin_key, tmp_path / "demo")
    demo = facts["demo"]
    assert demo["faces"] == 8 and demo["correct"] == demo["faces"], demo
    assert demo["erasure_complete"], demo
    assert facts["outbox"]["queued_while_analyzer_down"] >= 1
    assert facts["outbox"]["delivered_after_edge_restart"] == facts["outbox"]["queued_while_analyzer_down"], facts
    stored = facts["stored_face"]
    assert stored["full_status_before"] == stored["full_status_after"] == 200, stored
    assert stored["full_same_after_restart"] and stored["full_differs_from_base"], stored


def test_the_console_comes_up_with_compose(project: tuple[compose.ComposeProject, str]) -> None:
    """README's URL: the analyzer container serves the console's files, with its CSP, and tells it where
    the reconstructor is; the reconstructor lets that origin call it."""
    import httpx

    analyzer = compose.URLS["cloud_analyzer"]
    page = httpx.get(f"{analyzer}/console/", timeout=30)
    assert page.status_code == 200 and "<script" in page.text and "script-src 'self'" in page.headers[
        "content-security-policy"], page.headers
    assert httpx.get(f"{analyzer}/console/js/app.js", timeout=30).status_code == 200
    where = httpx.get(f"{analyzer}/console/config.json", timeout=30).json()
    preflight = httpx.options(f"{where['reconstructor_url']}/v1/faces/f1/image", timeout=30, headers={
        "origin": analyzer, "access-control-request-method": "GET",
        "access-control-request-headers": "authorization"})
    assert preflight.headers.get("access-control-allow-origin") == analyzer, preflight.headers
