"""A compact copy of the training faces (WebP q95 crops, no descriptors) for training on another machine.

    python -m facecodec.train.pack --out .gpu/train_faces.npz
    python -m facecodec.train.pack --out .gpu/varied_faces.npz --cfp data/faces-cfp-all/cfp.npz --max-faces 8500

The full cache (`data/faces`, ~650 MB) is too big to ship to a lent GPU machine; the training faces
as WebP q95 are ~35 MB (about 42 dB PSNR, far above the qualities the codec is trained for). The
descriptors are recomputed there with the torch recogniser (`facecodec.models.recogniser`).
Training scripts take either `--faces data/faces` or `--faces <pack>.npz`.

`--cfp` adds the CFP identities that may train (in-the-wild photos and profiles, unlike LFW's;
`data.load_cfp_training_faces`); `--max-faces` keeps all of those and a random sample of the others,
so that the pack fits the 64 MB a lent GPU machine receives with the repository.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from facecodec.train.data import Faces, concat, load_cfp_training_faces, load_training_faces


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
    parser.add_argument("--cfp", type=Path, help="a whole CFP run through prepare: add its training identities")
    parser.add_argument("--cfp-images", type=Path, help="that CFP's Data/Images folder (for names)")
    parser.add_argument("--max-faces", type=int, default=0, help="keep every CFP face and sample the rest to this")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    faces = load_training_faces(args.faces)
    extra = load_cfp_training_faces(args.cfp, args.cfp_images) if args.cfp else None
    if args.max_faces:
        keep = max(0, args.max_faces - (len(extra.crops) if extra is not None else 0))
        rows = np.random.default_rng(0).permutation(len(faces.crops))[:keep]
        faces = faces.subset(np.isin(np.arange(len(faces.crops)), rows))
    if extra is not None:
        faces = concat([faces, extra])
    write_pack(faces, args.out)
    print(f"wrote {args.out}: {len(faces.crops)} faces, {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
