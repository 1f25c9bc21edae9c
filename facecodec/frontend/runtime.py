"""One place that opens onnxruntime sessions, so thread counts, providers and graph optimisation are set
consistently.

Which graph optimisation level is fast depends on the model *and* the CPU: on one 2-core machine the
faceplugin recogniser took 63 ms per face under onnxruntime's default (`ORT_ENABLE_ALL`) and 21.7 ms
under `ORT_ENABLE_EXTENDED`, while the libfd detector took 34.6 ms under ALL and 99 ms under EXTENDED;
on another machine of the same kind ALL was the fastest for both. No fixed setting is right everywhere,
so by default (`FACECODEC_ORT_OPT_LEVEL=auto`) each model's candidate levels are timed once per machine
on a synthetic input of its serving shape, and the choice is cached (`ort_levels.json` in
`FACECODEC_CACHE_DIR`, default `~/.cache/facecodec`) under a key made of the model's hash, the input
shape, the onnxruntime version, the providers, the thread count and the CPU (model name and feature
flags). Later starts read the cache: a first start on a new machine spends a few seconds timing, the
detector's three candidates at 1600x928 most of it.

The timing runs the candidates' sessions in turn, round after round, so a load change on the machine
(another service starting) falls on every level alike, and keeps each level's fastest run: interference
only ever adds time, so the minimum is the estimate that a busy machine disturbs least (timed during a
full test suite on 2 cores, one model's median under ALL came out 10x its quiet value). A level
replaces ALL, the default the models were validated with, only when it is at least `MARGIN` (and
`MIN_SAVING_S`) faster. The outputs of every level are the same model:
graph rewrites change speed, not results beyond float rounding.

`chosen_levels()` says which level each named model got in this process (the edge's /healthz and
bench/edge_throughput.py report it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from facecodec.settings import RuntimeSettings

log = logging.getLogger(__name__)

LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
# Timed in `auto` mode; "disabled" is never faster than basic (it skips constant folding) and is left out.
CANDIDATES = ("all", "extended", "basic")
DEFAULT = "all"
# Another level must beat ALL by this factor, and by MIN_SAVING_S, to replace it: timing noise on a
# shared CPU is ~5-10%, the differences worth acting on are 1.5-3x on models that take milliseconds (a
# 0.04 ms model is not worth a level other than the one it was validated with).
MARGIN, MIN_SAVING_S = 0.85, 0.5e-3
ROUNDS, MAX_TIMING_S = 7, 3.0

_chosen: dict[str, str] = {}


def providers() -> list[str]:
    # onnxruntime-gpu is an optional extra; use CUDA only when it is really there.
    available = ort.get_available_providers()
    wanted = RuntimeSettings().ort_providers
    if wanted:
        return [p for p in wanted.split(",") if p in available] or ["CPUExecutionProvider"]
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def chosen_levels() -> dict[str, str]:
    """{model name: graph optimisation level} for every session opened in this process."""
    return dict(_chosen)


def open_session(path: Path | str | bytes, varying_shapes: bool = False, name: str | None = None,
                 shape: dict[str, int] | None = None) -> ort.InferenceSession:
    """`varying_shapes`: inputs change size from call to call (whole frames, motion-gate regions): no
    memory pattern is planned per shape (with the detector's session so: edge peak RSS 426 instead of
    465 MB at the same throughput, bench/edge_throughput.py).

    `name` labels the model in `chosen_levels()` (default: the file name); `shape` gives the size of each
    symbolic input dimension as the model is served (e.g. the detector's frame height and width), for the
    timing input; unnamed symbolic dimensions are 1."""
    model = path if isinstance(path, bytes) else str(path)
    name = name or (Path(model).name if isinstance(model, str) else "model")
    settings = RuntimeSettings()
    threads, wanted = settings.ort_threads, settings.ort_opt_level
    inter_threads, spinning = settings.ort_inter_threads, settings.ort_spinning
    chosen_providers = providers()

    def session(level: str) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.enable_mem_pattern = not varying_shapes
        options.graph_optimization_level = LEVELS[level]
        if threads:
            options.intra_op_num_threads = threads
        if inter_threads:
            options.inter_op_num_threads = inter_threads
        if not spinning:  # idle threads sleep between calls instead of spinning (FACECODEC_ORT_SPINNING)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(model, sess_options=options, providers=chosen_providers)

    if wanted != "auto":
        level = wanted
    elif chosen_providers[0] != "CPUExecutionProvider":
        level = DEFAULT  # GPU providers fuse for their own kernels; the CPU timing says nothing about them
    else:
        return _tuned(model, name, threads, chosen_providers, shape or {}, session)
    _chosen[name] = level
    return session(level)


def _tuned(model: str | bytes, name: str, threads: int, chosen_providers: list[str], shape: dict[str, int],
           session) -> ort.InferenceSession:
    content = model if isinstance(model, bytes) else Path(model).read_bytes()
    key = hashlib.sha256(json.dumps({
        "model": hashlib.sha256(content).hexdigest(), "shape": sorted(shape.items()), "ort": ort.__version__,
        "providers": chosen_providers, "threads": threads, "cpu": cpu_identity(),
        **({} if RuntimeSettings().ort_spinning else {"spinning": False}),
    }).encode()).hexdigest()[:32]
    cache = _cache_path()
    known = _read_cache(cache).get(key)
    if known and known.get("level") in LEVELS:
        _chosen[name] = known["level"]
        return session(known["level"])

    sessions = {level: session(level) for level in CANDIDATES}
    timings = time_levels(sessions, shape)
    level = choose_level(timings)
    ms = {k: round(v * 1e3, 3) for k, v in timings.items()}
    log.info("onnxruntime %s: %s (fastest run, ms: %s)", name, level, ms)
    _write_cache(cache, key, {"name": name, "level": level, "ms": ms,
                              "ort": ort.__version__, "cpu": cpu_model(),
                              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    _chosen[name] = level
    return sessions[level]


def choose_level(timings: dict[str, float]) -> str:
    """The level to serve with, from each candidate's seconds per run (DEFAULT among them)."""
    best = min(timings, key=timings.__getitem__)
    saving = timings[DEFAULT] - timings[best]
    return best if timings[best] < MARGIN * timings[DEFAULT] and saving >= MIN_SAVING_S else DEFAULT


def time_levels(sessions: dict[str, ort.InferenceSession], shape: dict[str, int]) -> dict[str, float]:
    """The fastest of `ROUNDS` runs of each session on one synthetic input, in seconds, sessions taking turns."""
    feeds = synthetic_inputs(next(iter(sessions.values())), shape)
    for s in sessions.values():
        s.run(None, feeds)  # the first run allocates; not timed
    times: dict[str, list[float]] = {level: [] for level in sessions}
    deadline = time.perf_counter() + MAX_TIMING_S
    for _ in range(ROUNDS):
        for level, s in sessions.items():
            start = time.perf_counter()
            s.run(None, feeds)
            times[level].append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return {level: min(t) for level, t in times.items()}


def synthetic_inputs(session: ort.InferenceSession, shape: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else shape.get(str(d), 1) for d in spec.shape]
        if "float" in spec.type:
            feeds[spec.name] = rng.random(dims, dtype=np.float32)
        else:
            kind = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}.get(spec.type)
            if kind is None:
                raise ValueError(f"no synthetic input for {spec.name}: {spec.type}")
            feeds[spec.name] = np.zeros(dims, kind)
    return feeds


def cpu_model() -> str:
    return _cpuinfo().get("model name", platform.processor() or platform.machine())


def cpu_identity() -> str:
    """The CPU model and its feature flags (which vector instructions onnxruntime's kernels may use)."""
    flags = hashlib.sha256(_cpuinfo().get("flags", "").encode()).hexdigest()[:12]
    return f"{cpu_model()} | flags {flags} | {os.cpu_count()} cpus"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty elsewhere)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def _cache_path() -> Path:
    folder = RuntimeSettings().cache_dir or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facecodec"
    return folder / "ort_levels.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, entry: dict) -> None:
    """Read, add, replace atomically: a concurrent writer can lose an entry (it is measured again next
    start), never corrupt the file. A read-only home (a container) only costs the timing at each start."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(data, tmp, indent=1, sort_keys=True)
        os.replace(tmp.name, path)
    except OSError as error:
        log.warning("onnxruntime level cache %s not written: %s", path, error)
