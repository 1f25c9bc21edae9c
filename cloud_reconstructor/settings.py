"""Cloud reconstructor settings, all from the environment (prefix RECONSTRUCTOR_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReconstructorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECONSTRUCTOR_")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="where the analyzer keeps base layers")
    http_host: str = Field("127.0.0.1", description="interface the REST API listens on (0.0.0.0 in containers)")
    http_port: int = Field(8003, ge=1, le=65535, description="REST API")
    fetch_timeout_s: float = Field(5.0, gt=0, description="deadline of one Fetch call to an edge")
    fetch_retries: int = Field(2, ge=0, le=10, description="extra attempts when an edge is unavailable")
    redis_timeout_s: float = Field(5.0, gt=0)
