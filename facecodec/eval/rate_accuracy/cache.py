"""Re-described descriptors cached per image, so a rerun (or the full run after a limited one) skips them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CACHE_VERSION = 1  # bump when the image-row pipeline changes so stale cached descriptors are dropped


class DescriptorCache:
    """Re-described descriptors per image key in data/eval_cache/<name>.npy (+ .keys.npy, .bytes.npy).

    Keyed by image, so a limited development run fills part of the cache that the full run reuses;
    `source` (the input file's size and mtime, or a constant for raw images) invalidates it.
    """

    def __init__(self, folder: Path, name: str, source: str) -> None:
        self.paths = {part: folder / f"{name}{part}" for part in (".npy", ".keys.npy", ".bytes.npy", ".json")}
        self.source = f"v{CACHE_VERSION}:{source}"
        self.entries: dict[str, tuple[np.ndarray, int]] = {}
        if all(p.exists() for p in self.paths.values()) and \
                json.loads(self.paths[".json"].read_text()).get("source") == self.source:
            desc, keys, nbytes = (np.load(self.paths[p]) for p in (".npy", ".keys.npy", ".bytes.npy"))
            self.entries = {k: (d, int(b)) for k, d, b in zip(keys.tolist(), desc, nbytes)}

    def save(self) -> None:
        folder = self.paths[".npy"].parent
        folder.mkdir(parents=True, exist_ok=True)
        keys = list(self.entries)
        # Write-then-rename so an interrupted run never leaves a torn cache behind.
        for part, value in ((".npy", np.stack([self.entries[k][0] for k in keys]).astype(np.float32)),
                            (".keys.npy", np.array(keys)),
                            (".bytes.npy", np.array([self.entries[k][1] for k in keys], np.int64))):
            tmp = self.paths[part].with_name(self.paths[part].name + ".tmp.npy")
            np.save(tmp, value)
            tmp.replace(self.paths[part])
        self.paths[".json"].write_text(json.dumps({"source": self.source, "count": len(keys)}) + "\n")
