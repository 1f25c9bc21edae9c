"""Print the environment settings of the three services, the library and the development stack as
Markdown (pasted into README.md).

    python scripts/settings_table.py

tests/test_docs.py fails when README.md misses a variable or shows a stale default.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings

from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.settings import DevstackSettings
from edge_encoder.settings import EdgeSettings
from facecodec.settings import RuntimeSettings
from service_common.key_layout import KeyLayoutSettings

SERVICES: list[tuple[str, type[BaseSettings]]] = [
    ("edge_encoder", EdgeSettings),
    ("cloud_analyzer", AnalyzerSettings),
    ("cloud_reconstructor", ReconstructorSettings),
    ("Redis key layout (analyzer and reconstructor alike; fixed at the first start)",
     KeyLayoutSettings),
    ("facecodec (the library, every process that uses it)", RuntimeSettings),
    ("devstack (launcher, replay)", DevstackSettings),
]


def rows(settings: type[BaseSettings]) -> list[tuple[str, str, str]]:
    prefix = settings.model_config.get("env_prefix", "")
    return [
        # get_default: a field with a default_factory (a dict, ...) shows what the factory makes.
        (f"{prefix}{name}".upper(), f"`{field.get_default(call_default_factory=True)}`", field.description or "")
        for name, field in settings.model_fields.items()
    ]


def markdown() -> str:
    out = []
    for service, settings in SERVICES:
        out += [f"**{service}**", "", "| variable | default | meaning |", "|---|---|---|"]
        out += [f"| `{var}` | {default} | {meaning} |" for var, default, meaning in rows(settings)]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
