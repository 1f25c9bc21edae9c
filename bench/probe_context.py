"""What every check of bench/security_probe.py works with: the running stack, a loopback address of
its own per attacker, keys made through the API, and the shape of one finding's entry."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from devstack.stack import Stack
from service_common.tls import TlsFiles, secure_or_insecure_channel

REFUSED, BOUNDED, OPEN, INCONCLUSIVE = "refused", "bounded", "open", "inconclusive"
PASSING = (REFUSED, BOUNDED)


@dataclass
class Entry:
    """One attack and what the stack answered. `outcome` is refused or bounded when the stack held,
    open when the attack got through, inconclusive when a control (the legitimate request beside the
    attack) failed too, so that a refusal could not be told from a broken stack."""

    finding: str
    attack: str
    outcome: str
    measured: dict
    bound: str | None = None

    def as_dict(self) -> dict:
        return {"finding": self.finding, "attack": self.attack, "outcome": self.outcome, "bound": self.bound,
                "measured": self.measured}


def verdict(refused: bool, controls_ok: bool = True) -> str:
    return INCONCLUSIVE if not controls_ok else REFUSED if refused else OPEN


def within(bounded: bool, controls_ok: bool = True) -> str:
    return INCONCLUSIVE if not controls_ok else BOUNDED if bounded else OPEN


@dataclass
class Probe:
    """The stack under attack. Every attacker gets its own loopback source address (127.0.0.2, .3, ...):
    the services count denials per client address, so one check's denials must not spend another's
    budget (Linux routes all of 127.0.0.0/8 to loopback)."""

    stack: Stack
    work_dir: Path
    _hosts: itertools.count = field(default_factory=lambda: itertools.count(2))

    def new_address(self) -> str:
        return f"127.0.0.{next(self._hosts)}"

    def http(self, source: str | None = None, token: str | None = None, timeout_s: float = 30) -> httpx.Client:
        """An HTTP client from `source` (a new address unless given), sending `token` as its bearer."""
        transport = httpx.HTTPTransport(local_address=source or self.new_address())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(transport=transport, headers=headers, timeout=timeout_s)

    def url(self, service: str) -> str:
        return self.stack.url(service)

    def grpc_address(self, service: str) -> str:
        env = self.stack.services[service].env
        return f"127.0.0.1:{env['ANALYZER_GRPC_PORT'] if service == 'cloud_analyzer' else env['EDGE_GRPC_PORT']}"

    def channel(self, service: str, identity: str | None, files: TlsFiles | None = None) -> grpc.Channel:
        """A gRPC channel to `service` presenting the stack's certificate `identity` (cloud, edge-1,
        camera-dev), or `files`, or plaintext when both are None."""
        if identity is not None:
            return self.stack.grpc_channel(service, identity)
        return secure_or_insecure_channel(self.grpc_address(service), files)

    def new_key(self, scopes: list[str], rate_per_s: int | None = None) -> str:
        """A key made through the analyzer's API with the admin key, as an operator would; its token."""
        with self.http(token=self.stack.admin_key) as admin:
            r = admin.post(f"{self.url('cloud_analyzer')}/v1/keys",
                           json={"name": f"probe-{'-'.join(scopes)}".replace(":", "_")[:60], "scopes": scopes,
                                 "rate_per_s": rate_per_s})
        r.raise_for_status()
        return r.json()["token"]

    def pid(self, service: str) -> int:
        proc = self.stack.services[service].proc
        assert proc is not None
        return proc.pid


def vm_kb(pid: int, field_name: str) -> int:
    """A /proc/<pid>/status memory figure (VmRSS, VmHWM) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


class RssSampler:
    """The peak resident set of a process while a `with` block runs, sampled every `interval_s`."""

    def __init__(self, pid: int, interval_s: float = 0.002) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.before_kb = self.peak_kb = vm_kb(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, vm_kb(self.pid, "VmRSS"))
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # memory a request left behind shows up just after its answer
        self._stop.set()
        self._thread.join()


def rpc_code(call: Callable[[], object]) -> str:
    """The status a gRPC call ended with: OK or the code's name."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"
