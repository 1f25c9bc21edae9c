"""`facecodec` (or `python -m facecodec`): code a photo's face into a `.fcb` file, decode one to PNG,
inspect one.

    facecodec encode photo.jpg -o face.fcb [--levels N] [--all-faces]
    facecodec decode face.fcb [--layers base|full] [--level N] -o face.png
    facecodec inspect face.fcb [--json]

Exit codes (docs/bitstream.md, "Face files"): 0 done; 2 usage; 3 the face file is refused (not a
valid container, an unknown codec, a level it does not hold); 4 no face in the photo; 5 the photo is
not a decodable JPEG/PNG/WebP image; 6 a file cannot be read or written. Every refusal is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from facecodec import face_file
from facecodec.bitstream import MAX_CONTAINER_BYTES

EXIT_OK, EXIT_USAGE, EXIT_BAD_FILE, EXIT_NO_FACE, EXIT_BAD_PHOTO, EXIT_IO = 0, 2, 3, 4, 5, 6
MAX_PHOTO_BYTES = 64 * 1024 * 1024  # the decoder bounds pixels (36 MP); this bounds what is read first


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise _Refused(EXIT_IO, f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _Refused(EXIT_BAD_FILE if what == "face file" else EXIT_BAD_PHOTO,
                       f"{path}: larger than the {limit} bytes a {what} may have")
    return data


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _Refused(EXIT_IO, f"cannot write {path}: {exc.strerror or exc}") from exc


def _outputs(out: Path, count: int) -> list[Path]:
    """face.fcb for one face; face-0.fcb, face-1.fcb, ... for several."""
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix or face_file.EXTENSION}") for i in range(count)]


def encode(args: argparse.Namespace) -> int:
    from facecodec.codec.profiles import DEFAULT_PROFILE, codec_by_name
    from facecodec.frontend import FaceFrontEnd, ImageDecodeError

    photo = _read(args.photo, MAX_PHOTO_BYTES, "photo")
    codec = codec_by_name(args.profile or DEFAULT_PROFILE)
    if args.levels is not None and not 0 <= args.levels <= codec.levels:
        raise _Refused(EXIT_USAGE, f"--levels must be 0..{codec.levels} for codec {codec.spec.name}")
    try:
        faces, _ = face_file.encode_photo(photo, codec, FaceFrontEnd(detector=args.detector), args.levels,
                                       args.all_faces)
    except ImageDecodeError as exc:
        raise _Refused(EXIT_BAD_PHOTO, f"{args.photo}: {exc}") from exc
    except face_file.NoFaceFound as exc:
        raise _Refused(EXIT_NO_FACE, f"{args.photo}: {exc}") from exc
    for face, path in zip(faces, _outputs(args.output, len(faces))):
        data = face.to_bytes()
        _write(path, data)
        box = ",".join(f"{v:.0f}" for v in face.box)
        print(f"{path}: {len(data)} bytes (base {len(face.coded.base)} B, "
              f"{len(face.coded.enhancements)} enhancement layers), face at {box}")
    return EXIT_OK


def _open_face_file(path: Path, use, *more):  # type: ignore[no-untyped-def]
    """`use(the file's bytes, *more)`, a refusal with exit code 3 if the file is not one it can read."""
    try:
        return use(_read(path, MAX_CONTAINER_BYTES, "face file"), *more)
    except face_file.FaceFileError as exc:
        raise _Refused(EXIT_BAD_FILE, f"{path}: {exc}") from exc


def decode(args: argparse.Namespace) -> int:
    image, level = _open_face_file(args.face, face_file.decode, args.layers, args.level)
    _write(args.output, face_file.png(image))
    print(f"{args.output}: {image.shape[1]}x{image.shape[0]} PNG from "
          f"{'the base layer alone' if level == 0 else f'enhancement level {level}'}")
    return EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    info = _open_face_file(args.face, face_file.describe)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{args.face}: {info['media_type']}, container v{info['container_version']}, {info['bytes']} bytes")
    print(f"  codec: model {info['model_id']} ({info['profile'] or 'unknown'}), rate {info['rate_id']}, "
          f"crop {info['crop_size']} px")
    print(f"  base layer: {info['base']['bytes']} bytes, crc32 {info['base']['crc32']}")
    for layer in info["enhancements"]:
        print(f"  enhancement layer {layer['level']}: {layer['bytes']} bytes, crc32 {layer['crc32']}")
    if info["decodable"]:
        print(f"  decodes at: base{''.join(f', level {k}' for k in info['levels'])}")
    else:
        print(f"  not decodable here: {info['why']}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facecodec", description="Code faces into .fcb files and decode them.")
    sub = p.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="photo -> .fcb (the largest face, or every face)")
    enc.add_argument("photo", type=Path, help="a JPEG, PNG or WebP photo")
    enc.add_argument("-o", "--output", type=Path, required=True,
                     help="the .fcb file (with --all-faces and several faces: NAME-0.fcb, NAME-1.fcb, ...)")
    enc.add_argument("--levels", type=int, default=None,
                     help="enhancement levels to code (0: base layer only; default: every level)")
    enc.add_argument("--all-faces", action="store_true", help="one file per face found, largest first")
    enc.add_argument("--profile", default=None, help="codec profile (default: the codec's default profile)")
    enc.add_argument("--detector", choices=("libfd", "rfb"), default="libfd", help="face detector (as the edge's)")
    enc.set_defaults(run=encode)
    dec = sub.add_parser("decode", help=".fcb -> PNG of the aligned face")
    dec.add_argument("face", type=Path)
    dec.add_argument("-o", "--output", type=Path, required=True, help="the PNG file")
    dec.add_argument("--layers", choices=("base", "full"), default="full",
                     help="base: from the base layer alone; full: with the enhancement layers (default)")
    dec.add_argument("--level", type=int, default=None, help="enhancement level (default: the highest held)")
    dec.set_defaults(run=decode)
    ins = sub.add_parser("inspect", help="a .fcb file's codec, rate, layer sizes and CRCs")
    ins.add_argument("face", type=Path)
    ins.add_argument("--json", action="store_true", help="as JSON")
    ins.set_defaults(run=inspect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors: argparse's message and exit code 2
    try:
        return args.run(args)
    except _Refused as exc:
        print(f"facecodec {args.command}: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
