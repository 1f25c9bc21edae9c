"""docker-compose.yml's `cluster` profile run for real with Podman: six Redis nodes, the one-shot
`redis-cluster-init` forming 3 primaries + 3 replicas, the services pointed at the cluster through `.env`,
the demo's flow, then a primary killed and its replica's promotion awaited.

Used by tests/test_compose_cluster_run.py (`make compose-test`). The steps are README's ("Redis Cluster
with compose") for podman-compose 1.0, which knows no profiles: the services are started by name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from devstack.compose import APP_SERVICES, URLS, ComposeProject

CLUSTER_NODES = tuple(f"redis-node-{i}" for i in range(1, 7))  # 1-3 primaries, 4-6 their replicas
CLUSTER_URL = "redis+cluster://redis-node-1:6379,redis-node-2:6379,redis-node-3:6379"
ENV_LINE = f"FACECODEC_REDIS_URL={CLUSTER_URL}\n"  # `.env` beside docker-compose.yml: every later `up` keeps it

# Run with the analyzer container's Python (redis-py, the key schema and the Redis password are there; the
# nodes are on the compose network only). One line of JSON: per host, its role, cluster state, key count
# and whether it holds the gallery (every decision searches it), or null where it does not answer.
_VIEW = """
import json, sys
import redis
from service_common.redis_keys import gallery_key
password = open("/run/secrets/redis_password").read().strip()
view = {}
for host in sys.argv[1:]:
    try:
        with redis.Redis(host=host, password=password, socket_timeout=2, socket_connect_timeout=1,
                         decode_responses=True) as r:
            node = {"keys": r.dbsize(), "role": r.info("replication")["role"]}
            try:
                node["state"] = r.execute_command("CLUSTER INFO")["cluster_state"]
            except redis.ResponseError:  # the standalone `redis` service
                node["state"] = None
            node["gallery"] = next(r.scan_iter(match=gallery_key("*", 0), count=1000), None) is not None
            view[host] = node
    except (redis.RedisError, OSError):
        view[host] = None
print(json.dumps(view))
"""


def up(project: ComposeProject) -> None:
    """README's steps: `.env` names the cluster, `certs`, the cluster formed (`redis-cluster-init` starts
    the six nodes it depends on and waits for them itself), then Redis and the three services."""
    (project.workdir / ".env").write_text(ENV_LINE)
    project.run_once("certs")
    project.run_once("redis-cluster-init")
    project.compose("up", "-d", "redis", *APP_SERVICES)


def node_view(project: ComposeProject) -> dict[str, dict | None]:
    """The standalone `redis` service and the six nodes as they answer now (null: no answer)."""
    return json.loads(project.exec("cloud_analyzer", "python", "-c", _VIEW, "redis", *CLUSTER_NODES))


def primaries(view: dict[str, dict | None]) -> list[str]:
    return sorted(h for h in CLUSTER_NODES if (view[h] or {}).get("role") == "master")


def wait_failover(project: ComposeProject, victim: str, timeout_s: float = 120) -> dict[str, dict | None]:
    """Until the killed `victim` is gone, three other nodes are primaries and every live node says
    cluster_state ok (a replica took the victim's slots)."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = node_view(project)
        live = [h for h in CLUSTER_NODES if view[h]]
        if (view[victim] is None and len(primaries(view)) == 3
                and all(view[h]["state"] == "ok" for h in live)):  # type: ignore[index]
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"no failover within {timeout_s:.0f} s: {view}")
        time.sleep(1)


def end_to_end(project: ComposeProject, admin_key: str, out: Path) -> dict:
    """What was observed, for the test to judge:

    1. The demo's flow (devstack.demo.flow) on the cluster: enrol, frames from two cameras, sightings,
       base and full views, an erasure of the first person.
    2. Where the data went: keys on the nodes, none on the standalone `redis` service.
    3. The primary that holds the gallery killed (SIGKILL), its replica's promotion awaited; then a frame
       of every sample person posted: each face must be decided (the survivors named, the erased person
       not) and its base view served.
    4. The killed node started again (it rejoins as a replica) and `redis-cluster-init` run again: it must
       leave the swapped roles as they are.
    """
    import httpx

    from devstack.demo import SAMPLES, compose_frame, flow

    edge, analyzer, recon = (URLS[s] for s in ("edge_encoder", "cloud_analyzer", "cloud_reconstructor"))
    token = project.exec("edge_encoder", "python", "-m", "edge_encoder", "tokens", "add", "*").strip().splitlines()[-1]
    facts: dict = {"seconds": {}}
    with httpx.Client(headers={"authorization": f"Bearer {admin_key}"}, timeout=120) as client:
        started = time.monotonic()
        facts["demo"] = flow(client, edge, analyzer, recon, token, out, SAMPLES)
        facts["seconds"]["demo"] = round(time.monotonic() - started, 1)
        before = node_view(project)
        facts["before"] = before

        victim = next(h for h in primaries(before) if before[h]["gallery"])  # type: ignore[index]
        started = time.monotonic()
        project.kill(victim)
        after = wait_failover(project, victim)
        facts["seconds"]["failover"] = round(time.monotonic() - started, 1)
        facts["failover"] = {"victim": victim, "primaries_before": primaries(before),
                             "primaries_after": primaries(after),
                             "gallery_on": [h for h in primaries(after) if after[h]["gallery"]]}  # type: ignore[index]

        people = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
        paths = [sorted(p.glob("*.jpg"))[-1] for p in people]  # photos the flow neither enrolled nor posted
        started = time.monotonic()
        r = client.post(f"{edge}/v1/cameras/lobby/frames", content=compose_frame(paths),
                        headers={"content-type": "image/jpeg", "authorization": f"Bearer {token}"})
        r.raise_for_status()
        faces = sorted(r.json()["faces"], key=lambda f: f["bbox"][0])  # left to right, as composed
        truth = {f["face_id"]: p.parent.name for f, p in zip(faces, paths)}
        decided: dict[str, dict] = {}
        deadline = time.monotonic() + 120
        while len(decided) < len(truth) and time.monotonic() < deadline:
            items = client.get(f"{analyzer}/v1/sightings", params={"limit": 500}).json()["items"]
            decided = {s["face_id"]: s for s in items if s["face_id"] in truth}
            time.sleep(0.5)
        facts["seconds"]["frame_to_sightings"] = round(time.monotonic() - started, 1)
        facts["after_failover"] = {
            "posted": len(faces),
            "sightings": {truth[f]: s["identity_name"] for f, s in decided.items()},
            "base_view_status": [client.get(f"{recon}/v1/faces/{f}/image", params={"layers": "base"}).status_code
                                 for f in truth],
            "erased": people[0].name, "truth": sorted(truth.values())}

        started = time.monotonic()
        project.start(victim)
        deadline = time.monotonic() + 120
        while ((node_view(project)[victim] or {}).get("role") != "slave") and time.monotonic() < deadline:
            time.sleep(1)
        project.start("redis-cluster-init")
        project.wait_exit("redis-cluster-init")
        rejoined = node_view(project)
        facts["seconds"]["rejoin_and_init_again"] = round(time.monotonic() - started, 1)
        facts["rejoined"] = {"victim_role": (rejoined[victim] or {}).get("role"), "primaries": primaries(rejoined),
                             "states": sorted({(v or {}).get("state") for h, v in rejoined.items() if h != "redis"},
                                              key=str)}
    return facts
