"""Per-camera settings (EDGE_CAMERAS_FILE, TOML): what to do when the edge is saturated, and a video
stream the edge reads itself.

    [cameras.lobby-1]
    overflow = "drop-oldest"                 # reject (default) | drop-oldest
    source = "rtsp://10.0.0.21/stream1"      # optional: RTSP/HTTP URL or a video file (PyAV)
    fps = 2.0                                # frames sampled per second of the source
    loop = false                             # a file source starts again at its end
    snapshot = true                          # keep a scene snapshot of each face at the edge (default off)

A camera not listed posts frames itself (REST or gRPC) with the defaults. The file is read at start;
a file that does not parse, or a camera entry with an unknown key, stops the edge with the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service_common.ids import ID_RULE, is_id


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overflow: Literal["reject", "drop-oldest"] = Field(
        "reject", description="saturated edge: reject the new frame (REST 429) or drop this camera's oldest "
        "frame not yet started (counted in edge_frames_dropped)")
    source: str | None = Field(None, min_length=1, max_length=2048, description="video stream or file the "
                               "edge reads itself (rtsp://, http(s)://, or a path PyAV opens)")
    fps: float = Field(2.0, gt=0, le=60, description="frames per second sampled from `source`")
    loop: bool = Field(False, description="play a file source again from its start when it ends")
    snapshot: bool = Field(False, description="keep a downscaled scene snapshot around each uplinked face at "
                           "the edge (edge_encoder/snapshots.py); it leaves the edge only when a viewer with "
                           "faces:view asks the reconstructor for it")


class CameraFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cameras: dict[str, CameraConfig] = Field(default_factory=dict)


class CameraConfigError(ValueError):
    """EDGE_CAMERAS_FILE is missing, not TOML, or names a setting or camera id that is not valid."""


class Cameras:
    """The configured cameras; defaults for any other camera id."""

    def __init__(self, cameras: dict[str, CameraConfig] | None = None) -> None:
        self.configured = cameras or {}
        self._default = CameraConfig()

    @classmethod
    def load(cls, path: Path | None) -> Cameras:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise CameraConfigError(f"EDGE_CAMERAS_FILE {path}: cannot read it ({exc.strerror})") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CameraConfigError(f"EDGE_CAMERAS_FILE {path}: not TOML ({exc})") from exc
        try:
            cameras = CameraFile.model_validate(data).cameras
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise CameraConfigError(f"EDGE_CAMERAS_FILE {path}: {problems}") from exc
        bad = [name for name in cameras if not is_id(name)]
        if bad:
            raise CameraConfigError(f"EDGE_CAMERAS_FILE {path}: camera ids must be {ID_RULE}, "
                                    f"not {bad}")
        return cls(cameras)

    def __getitem__(self, camera_id: str) -> CameraConfig:
        return self.configured.get(camera_id, self._default)

    def sources(self) -> dict[str, CameraConfig]:
        return {name: c for name, c in self.configured.items() if c.source}
