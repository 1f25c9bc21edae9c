"""Fuzz the three services' REST APIs from their own OpenAPI (schemathesis), larger than the test.

The analyzer, the reconstructor and an edge run on loopback over a real Redis (tests/helpers/fuzz.py:
the same driver as tests/test_api_fuzz.py), with an admin key and a fleet camera token. Every operation
each schema lists gets `--examples` valid and as many invalid requests, derandomised (`--seed`-free: the
same cases each run). A case fails on a 5xx or on an answer its schema does not declare (status,
content type, body, headers). Operations come from the schemas: routes added later are covered.

    python bench/api_fuzz.py [--examples 100]   -> bench/results/api_fuzz.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import machine_record, write_report  # noqa: E402

from devstack.stack import RedisServer  # noqa: E402
from tests.helpers.fuzz import CHECKS, fuzz, summary, three_services  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation and mode (valid, invalid)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api_fuzz.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-fuzz-") as scratch:
        server = RedisServer(Path(scratch) / "redis")
        server.start()
        try:
            with three_services(server.url, Path(scratch)) as targets:
                report = fuzz(targets, args.examples)
        finally:
            server.stop()
    write_report({**summary(report), "examples_per_operation_and_mode": args.examples,
                  "checks": [c.__name__ for c in CHECKS], "services": [t.name for t in targets],
                  **machine_record()}, args.out)
    if report.findings:
        sys.exit(1)


if __name__ == "__main__":
    main()
