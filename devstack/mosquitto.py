"""An MQTT broker for the development stack and the tests: the system's `mosquitto` (Debian package
`mosquitto`) on a loopback port, anonymous, its sessions persisted in its data folder (so durable
subscribers keep their queued messages over a restart of the broker)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from devstack.procs import terminate


def mosquitto_binary() -> str | None:
    """The broker's path, or None: Debian installs it in /usr/sbin, which a user's PATH may lack."""
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)


class MosquittoServer:
    def __init__(self, data_dir: Path, port: int, listener_config: str = "allow_anonymous true\n") -> None:
        """`listener_config`: mosquitto.conf lines for the listener (TLS files, password file, ...)."""
        self.data_dir, self.port, self.listener_config = data_dir, port, listener_config
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("no mosquitto found: apt-get install mosquitto (or brew install mosquitto)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        # `user`: started as root, mosquitto would switch to the `mosquitto` user, which cannot read our files.
        config.write_text(f"user {getpass.getuser()}\npersistence true\n"
                          f"persistence_location {self.data_dir.resolve()}/\n"
                          f"listener {self.port} 127.0.0.1\n{self.listener_config}")
        self.proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("mosquitto did not accept connections")

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
