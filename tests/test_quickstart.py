"""README's quickstart runs as written: its marked shell blocks (`<!-- quickstart N: ... -->`), in order, in
one bash, from the repository root, with the data under a temporary folder instead of var/ and free
ports (FACECODEC_PORTS=auto). Each step's output is checked; the sightings step is polled (recognition
runs a moment after the frame), never a fixed sleep."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.procs import alive

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"<!-- quickstart (\d+): .*?-->\n```bash\n(.*?)```", re.S)
PNG = b"\x89PNG\r\n\x1a\n"


def quickstart_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("<!-- quickstart 1:"):readme.index("<!-- /quickstart -->")]
    found = [(int(n), body) for n, body in MARK.findall(section)]
    assert [n for n, _ in found] == list(range(1, len(found) + 1)) and len(found) == 8, [n for n, _ in found]
    return [body for _, body in found]


def script(blocks: list[str], tmp: Path) -> str:
    """The blocks with var/ moved to tmp, each after a marker line; step 5 repeated until it names the
    person (60 s at most); the stack stopped however the script ends."""
    parts = ["set -eo pipefail", f"trap 'python -m devstack.stack down --data-dir {tmp}/stack >/dev/null 2>&1' EXIT"]
    for n, block in enumerate(blocks, 1):
        block = block.replace("var/", f"{tmp}/")
        parts.append(f"echo '@@ step {n}'")
        if n == 5:
            block = (f"for _ in $(seq 120); do OUT=$({block.strip()}) && grep -q 'Laura Bush' <<<\"$OUT\" && break; "
                     "sleep 0.5; done; echo \"$OUT\"")
        parts.append(block)
        if n == 1:
            parts.append(f"echo \"launcher $(cat {tmp}/stack/stack.pid) children "
                         f"$(python -m tests.helpers.procs children $(cat {tmp}/stack/stack.pid))\"")
    return "\n".join(parts) + "\n"


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "ANALYZER_", "RECONSTRUCTOR_"))}
    env["FACECODEC_PORTS"] = "auto"
    run = subprocess.run(["bash", "-c", script(quickstart_blocks(), tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    out = run.stdout
    steps = dict(re.findall(r"@@ step (\d+)\n(.*?)(?=@@ step |\Z)", out, re.S))
    pids = [int(p) for p in re.findall(r"\d+", out.split("launcher ", 1)[1].split("\n", 1)[0])] if "launcher " in out \
        else []
    try:
        assert run.returncode == 0, (out, run.stderr)
        assert "running in the background" in steps["1"] and len(pids) == 5, steps["1"]  # launcher, redis, 3 services
        person = re.search(r"enrolled ([0-9a-f]{32})", steps["3"])
        face = re.search(r"face ([0-9a-f]{32})", steps["4"])
        assert person and face, (steps["3"], steps["4"], run.stderr)
        assert '"identity_name":"Laura Bush"' in steps["5"] and face.group(1) in steps["5"], steps["5"]
        assert '"camera_id":"lobby"' in steps["5"]
        assert (tmp_path / "face.png").read_bytes().startswith(PNG)
        assert face.group(1) in steps["6"] and '"action":"face.view"' in steps["6"], steps["6"]
        assert steps["7"].rstrip().endswith("HTTP 202") and person.group(1) in steps["7"], steps["7"]
        assert "stopped the stack" in steps["8"], steps["8"]
        assert not [pid for pid in pids if alive(pid)], "the launcher left processes running"
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
