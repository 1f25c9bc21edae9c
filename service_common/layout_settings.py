"""The Redis key layout's shard counts, from the environment (prefix FACECODEC_): read once, at import, by
service_common/redis_keys.py, so every process that names keys (analyzer, reconstructor, benchmarks)
builds the same names. Chosen before the first start; the analyzer records them in `fc:keyschema:layout`
and refuses to run on data written with other counts (cloud_analyzer/key_migration.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KeyLayoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACECODEC_", env_ignore_empty=True)

    gallery_shards: int = Field(
        1, ge=1, le=1024, description="vector-set shards of the enrolled gallery (`{g<n>}` tags), searched in one "
        "pipeline and merged by the exact re-rank; the same for every analyzer, fixed once data is written")
    cluster_shards: int = Field(
        1, ge=1, le=1024, description="shards of the unknown-face cluster state (`{c<n>}` tags, one per Redis "
        "Cluster primary spreads its memory and traffic); 1 keeps the single `{clusters}` tag; the same for every "
        "analyzer, fixed once data is written")
