"""Copy the model part of every training checkpoint (no optimiser state) to a folder.

    python scripts/collect_runs.py RUNS DEST

Used to bring weights back from a lent GPU machine: DEST/<run>.pt loads wherever `--resume`/`--export`
expect runs/<run>/checkpoint.pt (copy it back there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

KEEP = ("model", "generator", "codec", "argv", "step", "epoch", "channels")


def main(runs: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for ckpt in sorted(runs.glob("*/checkpoint.pt")):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        torch.save({k: v for k, v in state.items() if k in KEEP}, dest / f"{ckpt.parent.name}.pt")
        print(f"{ckpt.parent.name}: step {state.get('step')} epoch {state.get('epoch')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
