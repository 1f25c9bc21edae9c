"""docker-compose.yml's `cluster` profile run for real, with Podman: six Redis nodes formed into 3
primaries + 3 replicas by `redis-cluster-init`, the services on the cluster (`.env`), the demo's flow,
a primary killed and its replica promoted, a frame decided after that, the killed node back as a
replica, the init run again without effect (devstack/compose_cluster.py says each step).

Same rules as tests/test_compose_run.py (`make compose-test` runs both): it skips without Podman, except
under CI, where that fails; the images are the session's `compose_images` (tests/conftest.py), built once
for both files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import compose, compose_cluster

pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(compose_images: None, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[compose.ComposeProject, str]]:
    running = compose.ComposeProject(tmp_path_factory.mktemp("compose-cluster"), project="facecodec_cluster_e2e")
    running.down()  # what an interrupted run left behind
    admin_key = running.make_secrets()
    try:
        compose_cluster.up(running)
        running.wait_healthy(["redis", *compose_cluster.CLUSTER_NODES, *compose.APP_SERVICES])
        yield running, admin_key
    finally:
        running.down()


def test_the_services_run_on_the_cluster_and_go_on_after_a_primary_is_killed(
        project: tuple[compose.ComposeProject, str], tmp_path: Path) -> None:
    running, admin_key = project
    facts = compose_cluster.end_to_end(running, admin_key, tmp_path / "demo")
    demo = facts["demo"]
    assert demo["faces"] == 8 and demo["correct"] == demo["faces"] and demo["erasure_complete"], demo

    before = facts["before"]
    assert before["redis"]["keys"] == 0, before  # nothing on the standalone Redis: the services used the cluster
    assert compose_cluster.primaries(before) == ["redis-node-1", "redis-node-2", "redis-node-3"], before
    assert all(before[n]["state"] == "ok" and before[n]["keys"] > 0 for n in compose_cluster.CLUSTER_NODES), before

    failover = facts["failover"]
    assert failover["victim"] not in failover["primaries_after"] and len(failover["primaries_after"]) == 3, failover
    assert len(failover["gallery_on"]) == 1, failover  # the gallery survived, on the promoted replica

    after = facts["after_failover"]
    survivors = {name: name for name in after["truth"] if name != after["erased"]}
    assert after["posted"] == len(after["truth"]) == 4, after
    assert len(after["sightings"]) == 4, after  # every face decided after the failover
    assert {n: who for n, who in after["sightings"].items() if n != after["erased"]} == survivors, after
    assert after["sightings"][after["erased"]] is None, after  # erased before the failover: not named again
    assert after["base_view_status"] == [200] * 4, after

    rejoined = facts["rejoined"]
    assert rejoined["victim_role"] == "slave" and rejoined["primaries"] == failover["primaries_after"], rejoined
    assert rejoined["states"] == ["ok"], rejoined
