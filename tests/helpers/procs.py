"""Processes on Linux, read from /proc: a launcher's children, and whether a pid still runs.

    python -m tests.helpers.procs children PID    prints the pids whose parent is PID
"""

from __future__ import annotations

import sys
from pathlib import Path


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # gone meanwhile
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found.append(int(status.parent.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "zombie" not in state


if __name__ == "__main__":
    if sys.argv[1:2] == ["children"]:
        print(" ".join(str(p) for p in children(int(sys.argv[2]))))
