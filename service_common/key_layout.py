"""How many face, gallery and cluster-state shards the Redis key schema has (service_common/redis_keys.py reads it once,
at import): chosen before the first start, the same for every analyzer and reconstructor of a deployment.

Redis keeps the layout the data was written with (`KEY_LAYOUT`); an analyzer started with other counts
refuses to run (cloud_analyzer/key_migration.py), and so does a reconstructor (it would look for every face
under another shard's name). Changing a count moves every face or identity to another key: a migration,
not a setting.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SHARDS = 1024  # a worker reads every face shard's stream in each pass; beyond this, the pass is the cost


class InvalidLayout(ValueError):
    """A shard count that is not a whole number from 1 to MAX_SHARDS: the service refuses to start."""


class LayoutMismatch(RuntimeError):
    """Redis holds data written with other shard counts than this process's."""


class KeyLayoutSettings(BaseSettings):
    # An empty variable counts as unset, as `os.environ.get(...) or default` did.
    model_config = SettingsConfigDict(env_prefix="FACECODEC_", env_ignore_empty=True)

    face_shards: int = Field(
        16, ge=1, le=MAX_SHARDS, description="face shards of the Redis keys (a face's record and its shard's "
        "ingest stream, face and sighting index share one hash slot); on Redis Cluster a count divisible by the "
        "primaries spreads faces evenly (48 for 3 or 6). Fixed at the first start: Redis keeps it, and an "
        "analyzer or reconstructor with another count refuses to run (docs/scaling.md)"
    )
    gallery_shards: int = Field(
        1, ge=1, le=MAX_SHARDS, description="gallery shards (vector sets searched in one pipeline, merged by the "
        "exact re-rank; reads scale through replicas, not shards); on Redis Cluster a count divisible by the "
        "primaries spreads them evenly. Fixed at the first start, like FACECODEC_FACE_SHARDS"
    )
    cluster_shards: int = Field(
        1, ge=1, le=MAX_SHARDS, description="shards of the unknown-face cluster state (`{c<n>}` tags; one per "
        "Redis Cluster primary spreads its memory and traffic, at the cost of a join searching every shard); 1 "
        "keeps the single `{clusters}` tag. Fixed at the first start, like FACECODEC_FACE_SHARDS"
    )


def env_name(field: str) -> str:
    return f"{KeyLayoutSettings.model_config.get('env_prefix', '')}{field}".upper()


def shard_counts() -> tuple[int, int, int]:
    """(face shards, gallery shards, cluster shards) from the environment; InvalidLayout names the variable at fault."""
    try:
        settings = KeyLayoutSettings()
    except ValidationError as exc:
        wrong = "; ".join(f"{env_name(str(e['loc'][0]))}={e['input']!r}: {e['msg']}" for e in exc.errors())
        raise InvalidLayout(f"{wrong} (a whole number of shards from 1 to {MAX_SHARDS})") from None
    return settings.face_shards, settings.gallery_shards, settings.cluster_shards


def layout_text(face_shards: int, gallery_shards: int, cluster_shards: int) -> str:
    """What `KEY_LAYOUT` holds: the counts the data is written with (one cluster shard keeps the text of the
    data written before cluster shards existed)."""
    return f"faces={face_shards} gallery={gallery_shards}" + (f" clusters={cluster_shards}" if cluster_shards > 1
                                                              else "")


def check_layout(stored: bytes | str | None, layout: str, service: str) -> None:
    """Refuse (LayoutMismatch) data written with another layout than `layout`; None: nothing recorded yet."""
    stored = stored.decode() if isinstance(stored, bytes) else stored
    if stored is not None and stored != layout:
        raise LayoutMismatch(
            f"Redis holds data sharded as {stored!r}, this {service} would use {layout!r}: set "
            f"{env_name('face_shards')}, {env_name('gallery_shards')} and {env_name('cluster_shards')} as when the "
            "data was written")
