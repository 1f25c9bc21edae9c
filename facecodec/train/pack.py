"""A compact copy of the training faces (WebP q95 crops, no descriptors) for training on another machine.

    python -m facecodec.train.pack --out .gpu/train_faces.npz

The full cache (`data/faces`, ~650 MB) is too big to ship to a lent GPU machine; the training faces
as WebP q95 are ~35 MB (about 42 dB PSNR, far above the qualities the codec is trained for). The
descriptors are recomputed there with the torch recogniser (`facecodec.models.recogniser`).
Training scripts take either `--faces data/faces` or `--faces <pack>.npz`.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from facecodec.train.data import Faces, load_training_faces


def write_pack(faces: Faces, path: Path, quality: int = 95) -> None:
    blobs = []
    for crop in faces.crops:
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="WEBP", quality=quality, method=6)
        blobs.append(buffer.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    np.savez(path, webp=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
             identities=faces.identities, keys=faces.keys)


def load_pack(path: Path) -> Faces:
    """Faces with `descriptors` left empty (0 columns): the trainer computes them."""
    with np.load(path) as z:
        data, offsets = z["webp"].tobytes(), z["offsets"]
        crops = np.stack([
            np.asarray(Image.open(io.BytesIO(data[a:b])).convert("RGB"))
            for a, b in zip(offsets[:-1], offsets[1:])
        ])
        return Faces(crops, np.zeros((len(crops), 0), np.float32), z["identities"], z["keys"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--out", type=Path, default=Path(".gpu/train_faces.npz"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    faces = load_training_faces(args.faces)
    write_pack(faces, args.out)
    print(f"wrote {args.out}: {len(faces.crops)} faces, {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
