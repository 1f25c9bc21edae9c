"""Stopping a child process the launcher started: SIGTERM, then SIGKILL if it does not exit in time."""

from __future__ import annotations

import subprocess


def terminate(proc: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
