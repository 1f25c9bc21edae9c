"""How every benchmark ends: its report printed and written as JSON under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(report: dict, out: Path) -> None:
    print(json.dumps(report, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
