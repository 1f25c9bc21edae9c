"""docker-compose.yml built and run with Podman: build times (cold and cached), image size, time to
healthy and the end-to-end result (devstack.compose, the same steps as tests/test_compose_run.py).

    python bench/compose.py [--skip-cold] [--out bench/results/compose.json]
    python bench/compose.py --cluster --skip-cold    # the `cluster` profile -> bench/results/compose_cluster.json

--cluster: the same with docker-compose.yml's `cluster` profile (devstack.compose_cluster, the steps of
tests/test_compose_cluster_run.py): six Redis nodes formed into 3 primaries + 3 replicas, the services on
them, the demo's flow, a primary killed and failed over, a frame decided after it, the node back.

Cold: `podman build --no-cache` of both images (every package downloaded and installed again; the
Debian base image is kept, its own cost is recorded when it had to be made). Cached: the same build
again, every layer from Podman's cache (what CI pays when neither pyproject.toml, constraints.txt nor
the sources changed). The machine's load average is recorded beside the timings: it is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_record, write_report  # noqa: E402

from devstack import compose, compose_cluster  # noqa: E402


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-cold", action="store_true", help="no --no-cache build (reuse the layer cache)")
    parser.add_argument("--cluster", action="store_true", help="the `cluster` profile (Redis Cluster, failover)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    name = "compose_cluster" if args.cluster else "compose"
    out = args.out or Path(__file__).parent / "results" / f"{name}.json"

    report: dict = {"benchmark": name, "machine": machine_record(), "runner": "podman + podman-compose",
                    "base_image": compose.DEBIAN_BASE}
    report["debian_base_made_s"] = round(compose.ensure_debian_base(), 1)
    if not args.skip_cold:
        report["build_cold"] = {"load_before": load(), "seconds": round(compose.build(no_cache=True), 1),
                                "load_after": load()}
    report["build_cached"] = {"load_before": load(), "seconds": round(compose.build(), 1), "load_after": load()}
    report["image_bytes"] = {"app": compose.image_size_bytes(), "redis": compose.image_size_bytes(compose.REDIS_IMAGE)}

    with tempfile.TemporaryDirectory(prefix="compose-bench-") as tmp:
        project = compose.ComposeProject(Path(tmp) / "project", project=f"facecodec_bench{'_cluster' * args.cluster}")
        project.down()
        admin_key = project.make_secrets()
        flow = compose_cluster.end_to_end if args.cluster else compose.end_to_end
        try:
            start = time.monotonic()
            if args.cluster:
                compose_cluster.up(project)
                project.wait_healthy(["redis", *compose_cluster.CLUSTER_NODES, *compose.APP_SERVICES])
            else:
                project.up()
                project.wait_healthy()
            report["up_to_healthy_s"] = round(time.monotonic() - start, 1)
            report["load_at_up"] = load()
            e2e_start = time.monotonic()
            report["end_to_end"] = flow(project, admin_key, Path(tmp) / "demo")
            report["end_to_end_s"] = round(time.monotonic() - e2e_start, 1)
        finally:
            down_start = time.monotonic()
            project.down()
            report["down_s"] = round(time.monotonic() - down_start, 1)
    write_report(report, out)


if __name__ == "__main__":
    main()
