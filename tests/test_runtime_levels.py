"""onnxruntime sessions get the graph optimisation level that is fast on this machine, measured once and cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facecodec.frontend import runtime
from facecodec.frontend.detect import ONET_PATH


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACECODEC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FACECODEC_ORT_OPT_LEVEL", raising=False)
    monkeypatch.setattr(runtime, "providers", lambda: ["CPUExecutionProvider"])
    return tmp_path


def test_a_level_replaces_the_default_only_when_clearly_faster() -> None:
    assert runtime.choose_level({"all": 0.063, "extended": 0.0217, "basic": 0.0220}) == "extended"
    assert runtime.choose_level({"all": 0.0346, "extended": 0.099, "basic": 0.101}) == "all"
    assert runtime.choose_level({"all": 0.0100, "extended": 0.0095, "basic": 0.0120}) == "all"  # within noise
    assert runtime.choose_level({"all": 4e-5, "extended": 3e-5, "basic": 3e-5}) == "all"  # nothing worth saving


def test_the_level_is_timed_once_per_machine_and_model(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timed = []
    real = runtime.time_levels
    monkeypatch.setattr(runtime, "time_levels", lambda sessions, shape: timed.append(shape) or real(sessions, shape))

    first = runtime.open_session(ONET_PATH, name="onet", shape={"n": 4})
    assert len(timed) == 1 and timed[0] == {"n": 4}
    level = runtime.chosen_levels()["onet"]
    assert level in runtime.CANDIDATES
    entry = next(iter(json.loads((cache_dir / "ort_levels.json").read_text()).values()))
    assert entry["name"] == "onet" and entry["level"] == level and set(entry["ms"]) == set(runtime.CANDIDATES)

    again = runtime.open_session(ONET_PATH, name="onet", shape={"n": 4})
    assert len(timed) == 1, "a cached choice is not timed again"
    crops = np.random.default_rng(1).random((3, 3, 48, 48), dtype=np.float32)
    np.testing.assert_allclose(first.run(None, {"crops": crops})[0], again.run(None, {"crops": crops})[0], atol=1e-5)

    runtime.open_session(ONET_PATH, name="onet", shape={"n": 16})  # another serving shape is another key
    assert len(timed) == 2


def test_a_broken_cache_is_measured_again(cache_dir: Path) -> None:
    (cache_dir / "ort_levels.json").write_text("{not json")
    runtime.open_session(ONET_PATH, name="onet-broken-cache", shape={"n": 2})
    assert runtime.chosen_levels()["onet-broken-cache"] in runtime.CANDIDATES
    assert json.loads((cache_dir / "ort_levels.json").read_text())


def test_a_fixed_level_is_honoured_and_a_wrong_one_refused(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACECODEC_ORT_OPT_LEVEL", "basic")
    runtime.open_session(ONET_PATH, name="onet-fixed")
    assert runtime.chosen_levels()["onet-fixed"] == "basic"
    assert not (cache_dir / "ort_levels.json").exists()
    monkeypatch.setenv("FACECODEC_ORT_OPT_LEVEL", "fastest")
    with pytest.raises(ValueError, match="ort_opt_level"):
        runtime.open_session(ONET_PATH)


def test_symbolic_dimensions_take_the_serving_shape() -> None:
    session = runtime.open_session(ONET_PATH, name="onet-shape")
    feeds = runtime.synthetic_inputs(session, {"n": 5})
    assert feeds["crops"].shape == (5, 3, 48, 48) and feeds["crops"].dtype == np.float32


def test_the_cloud_services_pass_one_sleeping_thread_to_their_sessions(cache_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The analyzer's settings (1 intra-op, 1 inter-op thread, no spinning) reach the sessions it opens."""
    from cloud_analyzer.settings import AnalyzerSettings

    for var in ("FACECODEC_ORT_THREADS", "FACECODEC_ORT_INTER_THREADS", "FACECODEC_ORT_SPINNING"):
        monkeypatch.delenv(var, raising=False)  # monkeypatch puts back what the service writes
    monkeypatch.setenv("FACECODEC_ORT_OPT_LEVEL", "all")
    AnalyzerSettings(admin_key_file=None).apply_ort()
    options = runtime.open_session(ONET_PATH, name="onet-service").get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("FACECODEC_ORT_SPINNING", "1")  # the library's default: onnxruntime's own
    monkeypatch.setenv("FACECODEC_ORT_THREADS", "0")
    options = runtime.open_session(ONET_PATH, name="onet-library").get_session_options()
    assert options.intra_op_num_threads == 0
    with pytest.raises(RuntimeError, match="does not have configuration"):  # not set: onnxruntime spins
        options.get_session_config_entry("session.intra_op.allow_spinning")
