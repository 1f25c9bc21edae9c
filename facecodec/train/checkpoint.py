"""Resumable training checkpoints: every stateful part (models, optimisers, schedulers) by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def save_checkpoint(path: Path, parts: dict[str, Stateful], **extra: Any) -> None:
    torch.save({**{name: part.state_dict() for name, part in parts.items()}, **extra}, path)


def load_checkpoint(path: Path, parts: dict[str, Stateful], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load each named part from `path`; returns the whole checkpoint (for its step, epoch, argv...)."""
    state = torch.load(path, map_location=device, weights_only=False)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return state
