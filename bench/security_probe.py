"""The attacks against the launcher's defaults, measured on a running stack.

    python bench/security_probe.py [--out bench/results/security_probe.json] [--only CHECK ...]

Starts `devstack.stack.Stack` in a temporary folder with the defaults `python -m devstack.stack up`
uses (mutual TLS on every gRPC link, Redis with a password, the admin key in a file, the edge's admin
token; free ports instead of the fixed ones, so that it runs beside a developer's stack), runs every
check of bench/security_checks.py against it (the attacks, over loopback, each from its own source
address) and writes, per attack, what it did, what the stack answered and the bound where the outcome
is a bound, with the machine beside the figures. Exits 1 if any entry is neither refused nor bounded
(open: the attack got through; inconclusive: its control failed too; error: the check itself failed).
"""

# ruff: noqa: E402  (bench/ holds scripts: their imports follow the path set-up)
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from erasure_checks import CHECKS as ERASURE_CHECKS
from probe_context import PASSING, Entry, Probe
from report import machine_record, write_report
from security_checks import CHECKS as ACCESS_CHECKS

from devstack.stack import Stack

# The erasure check last: it enrols and erases a person, which nothing before it should see.
CHECKS = [*ACCESS_CHECKS, *ERASURE_CHECKS]


def run_check(check: Callable[[Probe], Entry], probe: Probe) -> dict:
    started = time.monotonic()
    try:
        entry = check(probe)
    except Exception as exc:  # a check that breaks is reported and fails the run; the others still run
        traceback.print_exc()
        entry = Entry("-", check.__name__, "error", {"error": f"{type(exc).__name__}: {exc}"})
    result = {"check": check.__name__, **entry.as_dict(), "seconds": round(time.monotonic() - started, 2)}
    print(f"{result['outcome']:>12}  {check.__name__} ({result['seconds']} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "security_probe.json")
    parser.add_argument("--only", nargs="+", choices=[c.__name__ for c in CHECKS], help="run only these checks")
    args = parser.parse_args(argv)
    checks = [c for c in CHECKS if not args.only or c.__name__ in args.only]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="security-probe-") as tmp:
        # Like var/stack in a checkout, others may enter the folder: what keeps them out of the secrets is
        # the stack's own modes, not the temporary folder's.
        Path(tmp).chmod(0o755)
        with Stack(Path(tmp) / "stack") as stack:
            stack_up_s = time.monotonic() - started
            probe = Probe(stack, Path(tmp))
            entries = [run_check(check, probe) for check in checks]
    failing = [e["check"] for e in entries if e["outcome"] not in PASSING]
    write_report({"benchmark": "security_probe",
                  "stack": "devstack.stack.Stack defaults: mutual TLS, Redis password, admin key file, edge admin "
                           "token (free ports)",
                  "all_refused_or_bounded": not failing, "not_held": failing,
                  "stack_start_s": round(stack_up_s, 1), "wall_s": round(time.monotonic() - started, 1),
                  "entries": entries, "machine": machine_record()}, args.out)
    if failing:
        print(f"not refused or bounded: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
