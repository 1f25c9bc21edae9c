"""The library's environment settings (prefix FACECODEC_), read through pydantic-settings so that every
variable has one default and one description, listed in README's settings table.

Read them when they are used (`RuntimeSettings()` is cheap), not once at import: a process may set a
variable before it builds its models (the edge sets FACECODEC_ORT_THREADS from its worker count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RuntimeSettings(BaseSettings):
    # An empty variable counts as unset, as the library's `os.environ.get(...) or default` did.
    model_config = SettingsConfigDict(env_prefix="FACECODEC_", env_ignore_empty=True)

    model_dir: Path | None = Field(
        None, description="folder of the pretrained ONNX face models; default facecodec/assets/faceplugin "
        "(`python -m facecodec.assets` fills it)"
    )
    max_decodes: int = Field(
        4, description="images decoded at once per process (at least 1); each may hold ~4 bytes per pixel of "
        "a 36 MP image"
    )
    ort_providers: str | None = Field(
        None, description="onnxruntime execution providers, comma-separated; default: CUDA when available, "
        "else CPU (facecodec/frontend/runtime.py)"
    )
    ort_threads: int = Field(0, description="intra-op threads of each onnxruntime session; 0: onnxruntime's default")
    ort_inter_threads: int = Field(
        0, description="inter-op threads of each onnxruntime session; 0: onnxruntime's default")
    ort_spinning: bool = Field(
        True, description="onnxruntime's intra-op threads spin waiting for work after each call "
        "(session.intra_op.allow_spinning); off for many tiny calls (the cloud services' base-layer decodes), "
        "where the spinning burns a core for nothing"
    )
    ort_opt_level: Literal["auto", "all", "extended", "basic", "disabled"] = Field(
        "auto", description="onnxruntime graph optimisation: auto times all/extended/basic once per model and "
        "machine and keeps the fastest (facecodec/frontend/runtime.py); or one level for every model"
    )
    cache_dir: Path | None = Field(
        None, description="where per-machine measurements are cached (ort_levels.json); default "
        "$XDG_CACHE_HOME/facecodec or ~/.cache/facecodec"
    )
    datasets: Path | None = Field(
        None, description="root of the evaluation and training data sets; default ../shared/datasets beside the "
        "checkout, else /work/shared/datasets"
    )
    cfp: Path | None = Field(None, description="a whole CFP's Data/Images folder; default the 50-identity test split")
    fgnet: Path | None = Field(None, description="FG-NET's images folder; default <datasets>/fgnet/images")
    glint: Path | None = Field(
        None, description="the Glint360K sample's celebrity_images folder; default <datasets>/glint/celebrity_images")
    utk: Path | None = Field(None, description="UTKFace's image folder (gallery distractors of the open-set "
                             "benchmark); default <datasets>/utk/UTKFace")
