"""Static checks of the Docker deployment: compose files, GPU override and Dockerfile.

No Docker engine is needed (nor used): the files are parsed and checked against the code they start,
so that a renamed module or settings field breaks this test instead of a deployment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import SERVICE_MODULES
from edge_encoder.settings import EdgeSettings
from service_common.key_layout import KeyLayoutSettings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES: dict[str, type[BaseSettings]] = {
    "cloud_analyzer": AnalyzerSettings,
    "cloud_reconstructor": ReconstructorSettings,
    "edge_encoder": EdgeSettings,
}
PUBLISHED = {"edge_encoder": 8001, "cloud_analyzer": 8002, "cloud_reconstructor": 8003}
# Every published port on the host's loopback only: a proxy (or HTTPS, for the edge) serves them further
# (docs/security.md). Never every interface by default.
HOST_BIND = {"edge_encoder": "127.0.0.1:", "cloud_analyzer": "127.0.0.1:", "cloud_reconstructor": "127.0.0.1:"}
CLOUD_SERVICES = ("cloud_analyzer", "cloud_reconstructor")  # both read the Redis key layout (KeyLayoutSettings)
CLUSTER_NODES = [f"redis-node-{i}" for i in range(1, 7)]  # the `cluster` profile: 3 primaries, then 3 replicas


def load(name: str) -> dict[str, Any]:
    # safe_load resolves the `<<: *anchor` merge keys the compose files use, as Compose does.
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict), f"{name} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return load("docker-compose.yml")["services"]


@pytest.fixture(scope="module")
def gpu_services() -> dict[str, Any]:
    return load("docker-compose.gpu.yml")["services"]


# Compose's interpolation: `${NAME}`, `${NAME:-default}` or `${NAME-default}`; `$$` is a literal `$` (kept
# as written: the checks below read shell commands as the file spells them).
INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(text: str, variables: dict[str, str] | None = None) -> str:
    """`text` as Compose runs it with `variables` set (by default none: no `.env`, a clean shell)."""
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$$"
        return (variables or {}).get(match.group(1)) or match.group(2) or ""
    return INTERPOLATION.sub(value, text)


def command_argv(service: dict[str, Any], variables: dict[str, str] | None = None) -> list[str]:
    command = service["command"]
    argv = command.split() if isinstance(command, str) else [str(part) for part in command]
    return [interpolate(part, variables) for part in argv]


def environment(service: dict[str, Any], variables: dict[str, str] | None = None) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value), variables) for key, value in env.items()}


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    return test.split() if isinstance(test, str) else [str(part) for part in test]


def env_prefix(settings: type[BaseSettings]) -> str:
    return settings.model_config.get("env_prefix", "")


def test_service_modules_match_the_app_services() -> None:
    assert set(SERVICE_MODULES) == set(APP_SERVICES)


def test_all_services_exist(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "certs", "mosquitto", *APP_SERVICES, *CLUSTER_NODES, "redis-cluster-init"}


def test_the_mqtt_broker_is_optional(services: dict[str, Any]) -> None:
    """mosquitto runs only with `--profile mqtt`; nothing depends on it, so the stack starts without it."""
    assert services["mosquitto"]["profiles"] == ["mqtt"]
    assert all("mosquitto" not in (s.get("depends_on") or {}) for s in services.values())
    assert all(p.startswith("127.0.0.1:") for p in services["mosquitto"]["ports"])


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_builds_the_shared_image(services: dict[str, Any], name: str) -> None:
    service = services[name]
    build = service["build"]
    context = build if isinstance(build, str) else build["context"]
    assert context == "."
    assert service["image"] == "facecodec:latest"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_runs_its_module(services: dict[str, Any], name: str) -> None:
    module = SERVICE_MODULES[name]
    # Same module as the process launcher starts, and the service is named after it.
    assert command_argv(services[name]) == ["python", "-m", module]
    assert module == name
    assert importlib.util.find_spec(module) is not None, f"no module {module}"
    assert importlib.util.find_spec(f"{module}.__main__") is not None, f"`python -m {module}` has no __main__"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_environment_names_are_settings_fields(services: dict[str, Any], name: str) -> None:
    settings = APP_SERVICES[name]
    prefix = env_prefix(settings)
    assert prefix, f"{settings.__name__} has no env_prefix"
    env = environment(services[name])
    assert env, f"{name} sets no environment"
    for key in env:
        if name in CLOUD_SERVICES and key.startswith(env_prefix(KeyLayoutSettings)):
            assert key[len(env_prefix(KeyLayoutSettings)):].lower() in KeyLayoutSettings.model_fields, key
            continue
        # pydantic-settings matches env names case-insensitively by default; compose keeps them upper.
        assert key.startswith(prefix), f"{name}: {key} lacks the {prefix} prefix"
        field = key[len(prefix) :].lower()
        assert field in settings.model_fields, f"{name}: {key} is no field of {settings.__name__}"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_environment_values_validate(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The values too: a port that is not a number would only fail when the container starts.
    settings = APP_SERVICES[name]
    for key in list(os.environ):
        if key.startswith(env_prefix(settings)):
            monkeypatch.delenv(key)
    for key, value in environment(services[name]).items():
        monkeypatch.setenv(key, value)
    parsed = settings()
    assert parsed.http_host == "0.0.0.0"  # reachable from outside the container
    assert parsed.http_port == PUBLISHED[name]


@pytest.mark.parametrize("name", CLOUD_SERVICES)
def test_both_cloud_services_get_the_same_key_layout(services: dict[str, Any], name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The shard counts pass through to the analyzer and the reconstructor alike (the reconstructor with other
    counts would find no face); unset, the defaults; set, the operator's."""
    for key in KeyLayoutSettings.model_fields:
        monkeypatch.delenv(f"FACECODEC_{key.upper()}", raising=False)
    for variables, expected in (({}, (16, 1)), ({"FACECODEC_FACE_SHARDS": "48", "FACECODEC_GALLERY_SHARDS": "3"},
                                                 (48, 3))):
        for key, value in environment(services[name], variables).items():
            if key.startswith("FACECODEC_"):
                monkeypatch.setenv(key, value)
        parsed = KeyLayoutSettings()
        assert (parsed.face_shards, parsed.gallery_shards) == expected


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_has_http_healthcheck_and_published_port(services: dict[str, Any], name: str) -> None:
    service = services[name]
    argv = healthcheck_argv(service)
    assert argv[:3] == ["CMD", "python", "-c"], argv
    port = PUBLISHED[name]
    assert f"http://127.0.0.1:{port}/healthz" in argv[3]
    assert "urllib" in argv[3]
    assert environment(service)[f"{env_prefix(APP_SERVICES[name])}HTTP_PORT"] == str(port)
    assert [str(p) for p in service.get("ports", [])] == [f"{HOST_BIND[name]}{port}:{port}"]  # nothing else


def host_ip(port: object) -> str:
    """The host address of a compose port entry (short `[ip:]host:container` or long syntax); "" is every
    interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    parts = str(port).rsplit(":", 2)
    return parts[0].strip("[]") if len(parts) == 3 else ""


def test_the_edge_publishes_nothing_beyond_the_hosts_loopback(services: dict[str, Any]) -> None:
    """Its camera API carries tokens and frames, its gRPC port face pixels: published on every interface,
    both would be open to the host's whole network (and in clear text without EDGE_HTTPS_*)."""
    edge = services["edge_encoder"]
    assert edge.get("ports"), "the edge publishes its camera API"
    for port in edge["ports"]:
        assert host_ip(port) == "127.0.0.1", port
    assert host_ip("8001:8001") == "" and host_ip({"target": 8001, "host_ip": "127.0.0.1"}) == "127.0.0.1"
    assert host_ip("[::1]:8001:8001") == "::1"


def test_wiring_between_services(services: dict[str, Any]) -> None:
    analyzer = environment(services["cloud_analyzer"])
    reconstructor = environment(services["cloud_reconstructor"])
    edge = environment(services["edge_encoder"])
    assert (
        analyzer["ANALYZER_REDIS_URL"] == reconstructor["RECONSTRUCTOR_REDIS_URL"] == "redis://redis:6379/0"
    )
    assert edge["EDGE_CLOUD_INGEST_ADDRESS"] == f"cloud_analyzer:{analyzer['ANALYZER_GRPC_PORT']}"
    assert edge["EDGE_PUBLIC_GRPC_ADDRESS"] == f"edge_encoder:{edge['EDGE_GRPC_PORT']}"
    # The cloud dials only configured edges: the analyzer (erasures) and reconstructor (fetches) agree.
    expected = {edge["EDGE_EDGE_ID"]: f"edge_encoder:{edge['EDGE_GRPC_PORT']}"}
    assert json.loads(analyzer["ANALYZER_EDGES"]) == json.loads(reconstructor["RECONSTRUCTOR_EDGES"]) == expected
    assert analyzer["ANALYZER_GRPC_HOST"] == edge["EDGE_GRPC_HOST"] == "0.0.0.0"  # reachable on the network
    assert services["cloud_analyzer"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["cloud_reconstructor"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["edge_encoder"]["depends_on"]["cloud_analyzer"]["condition"] == "service_healthy"


def test_edge_data_dir_is_on_a_named_volume(services: dict[str, Any]) -> None:
    compose = load("docker-compose.yml")
    edge = services["edge_encoder"]
    data_dir = environment(edge)["EDGE_DATA_DIR"]
    mounts = dict(str(v).split(":", 1) for v in edge["volumes"])
    assert data_dir in mounts.values()
    volume = next(src for src, dst in mounts.items() if dst == data_dir)
    assert volume in compose["volumes"]


def test_redis_persists(services: dict[str, Any]) -> None:
    compose = load("docker-compose.yml")
    redis = services["redis"]
    assert redis["image"].startswith("redis:8")  # vector sets built in
    command = redis["command"]
    command = " ".join(command) if isinstance(command, list) else command
    assert re.search(r"--appendonly\s+yes", command)
    assert "--requirepass" in command and "/run/secrets/redis_password" in command
    assert "ports" not in redis  # never published
    volume, target = str(redis["volumes"][0]).split(":", 1)
    assert target == "/data"
    assert volume in compose["volumes"]
    check = " ".join(healthcheck_argv(redis))
    assert "redis-cli ping" in check and "REDISCLI_AUTH" in check  # the check authenticates too


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_gpu_override_reserves_a_gpu(gpu_services: dict[str, Any], name: str) -> None:
    service = gpu_services[name]
    assert service["build"]["args"]["ORT_PACKAGE"] == "onnxruntime-gpu"
    assert service["build"]["context"] == "."
    assert service["image"] == "facecodec:gpu"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == 1 and "gpu" in d["capabilities"] for d in devices), (
        devices
    )


def test_gpu_override_only_touches_app_services(gpu_services: dict[str, Any]) -> None:
    assert set(gpu_services) == set(APP_SERVICES)


def dockerfile_instructions() -> list[str]:
    # Join continuation lines and drop comments, so each entry is one whole instruction.
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [" ".join(i.split()) for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if i.strip()]


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    froms = [i for i in instructions if i.upper().startswith("FROM ")]
    # The base image is a build argument: python:3.11-slim by default, a plain Debian 12 (Python from
    # Debian) where Docker Hub is out of reach (tests/test_compose_run.py builds on one).
    assert froms and all("${BASE_IMAGE}" in f for f in froms)
    assert "ARG BASE_IMAGE=python:3.11-slim" in instructions
    assert "ARG ORT_PACKAGE=onnxruntime" in instructions
    runs = [i for i in instructions if i.upper().startswith("RUN ")]
    # The face models are fetched at build time, into the image: never at run time.
    assert any("python -m facecodec.assets" in r for r in runs)
    # The project without its dependencies, which come from scripts/serve_requirements.py: no torch.
    assert any(re.search(r"pip install --no-deps --no-build-isolation \.(\s|$)", r) for r in runs)
    assert any("scripts/serve_requirements.py" in r for r in runs)
    assert not any("torch" in r for r in runs if "find_spec('torch') is None" not in r)
    assert "$ORT_PACKAGE" in " ".join(runs)
    # No default command: compose sets one per service.
    assert not any(i.upper().startswith(('CMD ["', "ENTRYPOINT")) for i in instructions)


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "data", "var", "out", ".git"} <= ignored


def test_secrets_come_from_files_never_from_the_environment(services: dict[str, Any]) -> None:
    compose = load("docker-compose.yml")
    assert {name: spec["file"] for name, spec in compose["secrets"].items()} == {
        "redis_password": "./secrets/redis_password", "admin_key": "./secrets/admin_key"}
    assert "/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    analyzer, reconstructor = environment(services["cloud_analyzer"]), environment(services["cloud_reconstructor"])
    assert analyzer["ANALYZER_REDIS_PASSWORD_FILE"] == reconstructor["RECONSTRUCTOR_REDIS_PASSWORD_FILE"] == (
        "/run/secrets/redis_password")
    assert analyzer["ANALYZER_ADMIN_KEY_FILE"] == "/run/secrets/admin_key"
    assert set(services["cloud_analyzer"]["secrets"]) == {"redis_password", "admin_key"}
    assert services["cloud_reconstructor"]["secrets"] == services["redis"]["secrets"] == ["redis_password"]
    for name in APP_SERVICES:
        for key, value in environment(services[name]).items():
            assert "@" not in value and "PASSWORD=" not in key, (name, key)  # no credentials inline
    edge = environment(services["edge_encoder"])
    assert edge.get("EDGE_CAMERA_AUTH", "tokens") == "tokens"  # cameras need their token


def test_every_grpc_link_is_mutual_tls_with_certificates_made_on_first_start(services: dict[str, Any],
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The `certs` one-shot service makes the CA and certificates in the `tls` volume before any app service
    starts; each app service reads its files there (read-only) and none runs plaintext; the CA key's volume
    is mounted by `certs` alone."""
    compose = load("docker-compose.yml")
    certs = services["certs"]
    argv = command_argv(certs)
    assert argv[:5] == ["python", "-m", "service_common.certs", "init", "--dir"]
    assert importlib.util.find_spec("service_common.certs") is not None
    mounts = dict(str(v).split(":", 1) for v in certs["volumes"])
    out_dir, ca_dir = argv[argv.index("--dir") + 1], argv[argv.index("--ca-dir") + 1]
    assert mounts == {"tls": out_dir, "tls-ca": ca_dir} and {"tls", "tls-ca"} <= set(compose["volumes"])
    edges = [argv[i + 1] for i, a in enumerate(argv) if a == "--edge"]
    analyzer = environment(services["cloud_analyzer"])
    assert set(json.loads(analyzer["ANALYZER_EDGES"])) == set(edges) == {environment(services["edge_encoder"])[
        "EDGE_EDGE_ID"]}
    for name, settings in APP_SERVICES.items():
        service = services[name]
        assert service["depends_on"]["certs"]["condition"] == "service_completed_successfully"
        assert f"tls:{out_dir}:ro" in service["volumes"] and not any("tls-ca" in str(v) for v in service["volumes"])
        env = environment(service)
        assert not any(k.endswith("_GRPC_INSECURE") for k in env), name
        assert all(v.startswith(f"{out_dir}/") for k, v in env.items() if "_TLS_" in k), name
        for key in list(os.environ):
            if key.startswith(env_prefix(settings)):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert settings().transport() is not None, name  # mutual TLS, not refused, not plaintext
    edge = environment(services["edge_encoder"])
    assert edge["EDGE_TLS_CERT_FILE"] == f"{out_dir}/{edge['EDGE_EDGE_ID']}.crt"


@pytest.mark.parametrize("name", ["redis", *CLUSTER_NODES])
def test_redis_memory_is_bounded_and_never_evicted(services: dict[str, Any], name: str) -> None:
    command = " ".join(command_argv(services[name]))
    assert re.search(r"--maxmemory 1gb ", command)  # the default
    assert "--maxmemory-policy noeviction" in command
    assert "--maxmemory 512mb " in " ".join(command_argv(services[name], {"FACECODEC_REDIS_MAXMEMORY": "512mb"}))


def test_the_services_find_redis_through_one_setting(services: dict[str, Any]) -> None:
    """FACECODEC_REDIS_URL points the analyzer and the reconstructor at a cluster's seed list; unset, at
    the `redis` service. The seed list the file documents is what the client factory takes for a cluster
    (service_common/redis_client.py) and names the profile's nodes; the password reaches the services as
    the same secret file the nodes read, which the factory applies to every node."""
    from service_common.redis_client import cluster_seeds, is_cluster_url

    seeds = re.search(r"redis\+cluster://\S+", (ROOT / "docker-compose.yml").read_text())
    assert seeds and is_cluster_url(seeds.group(0))
    assert [host for host, port in cluster_seeds(seeds.group(0)) if port == 6379] == CLUSTER_NODES[:3]
    for variables, url in (({}, "redis://redis:6379/0"), ({"FACECODEC_REDIS_URL": seeds.group(0)}, seeds.group(0))):
        for service, prefix in (("cloud_analyzer", "ANALYZER"), ("cloud_reconstructor", "RECONSTRUCTOR")):
            env = environment(services[service], variables)
            assert env[f"{prefix}_REDIS_URL"] == url
            assert env[f"{prefix}_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
            assert "redis_password" in services[service]["secrets"]


def test_the_redis_cluster_profile_has_3_primaries_and_3_replicas_and_stays_optional(services: dict[str, Any]) -> None:
    from devstack.redis_cluster import parser, primary_count

    compose = load("docker-compose.yml")
    for name in CLUSTER_NODES:
        node = services[name]
        assert node["profiles"] == ["cluster"] and node["image"].startswith("redis:8") and "ports" not in node
        command = " ".join(command_argv(node))
        assert "--cluster-enabled yes" in command and re.search(r"--appendonly\s+yes", command)
        assert "--requirepass" in command and "--masterauth" in command and "/run/secrets/redis_password" in command
        assert node["hostname"] == name and "--cluster-announce-hostname" in command  # redirects name the host
        volume, target = str(node["volumes"][0]).split(":", 1)
        assert target == "/data" and volume in compose["volumes"] and volume != "redis-data"
        assert node["secrets"] == ["redis_password"] and "REDISCLI_AUTH" in " ".join(healthcheck_argv(node))
    assert len({str(services[n]["volumes"][0]) for n in CLUSTER_NODES}) == 6  # a volume each

    init = services["redis-cluster-init"]
    assert init["profiles"] == ["cluster"] and init["restart"] == "no" and init["image"] == "facecodec:latest"
    argv = command_argv(init)
    assert argv[:3] == ["python", "-m", "devstack.redis_cluster"]
    args = parser().parse_args(argv[3:])
    assert args.command == "form" and args.replicas == 1
    assert str(args.password_file) == "/run/secrets/redis_password" and init["secrets"] == ["redis_password"]
    assert args.nodes == [f"{n}:6379" for n in CLUSTER_NODES] and primary_count(len(args.nodes), args.replicas) == 3
    assert {n: d["condition"] for n, d in init["depends_on"].items()} == dict.fromkeys(CLUSTER_NODES, "service_healthy")
    # Optional: nothing outside the profile waits for it, so a plain `up` never starts it.
    for name, service in services.items():
        if "cluster" not in service.get("profiles", []):
            assert not set(service.get("depends_on") or {}) & {*CLUSTER_NODES, "redis-cluster-init"}, name

    podman = load("deploy/podman/compose.podman.yml")["services"]  # no redis-cli, no Docker Hub there
    for name in CLUSTER_NODES:
        assert podman[name]["image"] == podman["redis"]["image"]
        assert podman[name]["healthcheck"] == podman["redis"]["healthcheck"]


def test_every_published_port_binds_loopback(services: dict[str, Any]) -> None:
    """Everything published is on the host's loopback (the edge's camera API included: serving cameras on
    another network is a deliberate change, with HTTPS, docs/security.md); Redis and gRPC not at all."""
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_service_images_take_every_runtime_dependency_but_torch() -> None:
    """scripts/serve_requirements.py: pyproject.toml's dependencies less torch and torchvision, CompressAI
    without its own (its torch), nothing dropped by accident."""
    import tomllib

    spec = importlib.util.spec_from_file_location("serve_requirements", ROOT / "scripts" / "serve_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    distribution, serve_requirements = module.distribution, module.serve_requirements
    with_deps, without = serve_requirements()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {distribution(d) for d in with_deps} | {distribution(d) for d in without} | {"torch", "torchvision"} == {
        distribution(d) for d in declared}
    assert [distribution(d) for d in without] == ["compressai"]
    assert not {"torch", "torchvision"} & {distribution(d) for d in with_deps}


def test_the_installed_project_has_every_package() -> None:
    """The images install the project with `pip install .`, which takes only the packages pyproject.toml
    lists: a new subpackage missing there imports in the checkout (editable install) and fails in the image."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("facecodec", "service_common", "edge_encoder", "cloud_analyzer", "cloud_reconstructor",
                         "devstack")
             for init in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_the_cluster_steps_in_the_docs_are_those_the_podman_test_runs() -> None:
    """README and docs/scaling.md give the `.env` line and the Podman commands that devstack.compose_cluster
    runs for tests/test_compose_cluster_run.py; the seed list is the one this file's profile serves."""
    from devstack.compose_cluster import CLUSTER_URL, ENV_LINE
    from service_common.redis_client import cluster_seeds

    assert [host for host, _ in cluster_seeds(CLUSTER_URL)] == CLUSTER_NODES[:3]
    for doc in ("README.md", "docs/scaling.md"):
        text = (ROOT / doc).read_text()
        assert f"echo '{ENV_LINE.strip()}' >> .env" in text, doc
        assert "podman-compose up -d redis-cluster-init && podman wait facecodec_redis-cluster-init_1" in text, doc
        assert f"podman-compose up -d redis {' '.join(APP_SERVICES)}\n" in text, doc
