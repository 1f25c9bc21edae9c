"""Helpers the tests share (imported by tests/conftest.py and by test modules; never import one test
module from another): polling instead of fixed sleeps, the shared data sets, free ports.

    servers.py    a FastAPI app on a real port, API clients, a real analyzer
    records.py    FaceRecords as an edge sends them
    payloads.py   hostile request bodies
    tls_certs.py  throwaway CAs and certificates
    images.py     test images built from LFW photos (several people in one frame, no face)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from devstack.stack import free_port
from facecodec.datasets import dataset_root

__all__ = ["LFW", "free_port", "lfw_image", "shared_path", "wait_until"]

T = TypeVar("T")

LFW = dataset_root() / "lfw" / "images"


def wait_until(predicate: Callable[[], T], timeout_s: float = 30, interval_s: float = 0.1, what: str = "") -> T:
    """Call `predicate` until it returns something truthy and return that; on timeout fail the test
    saying what was awaited and the last value. A slow machine only makes a test slower, never wrong."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what or getattr(predicate, '__name__', predicate)}"
                                 f" (last: {value!r})")
        time.sleep(interval_s)


def shared_path(path: Path) -> Path:
    """A file or folder of the shared data sets (`../shared/datasets` beside the checkout, as on CI):
    missing data fails the test, it never skips it silently."""
    if not path.exists():
        pytest.fail(f"shared data set missing: {path} (expected ../shared/datasets beside the checkout, "
                    "or set FACECODEC_DATASETS)", pytrace=False)
    return path


def lfw_image(name: str, index: int) -> Path:
    return shared_path(LFW / name / f"{name}_{index:04d}.jpg")
