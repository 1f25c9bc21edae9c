"""The training commands behind the committed weights still run end to end (tiny CPU runs).

A pack of 40 LFW *training-identity* faces goes through: texture (recognition-only and multitask),
export and validation through the serving path, the conditional enhancement coder, resume, fine-tuning
from weights, export, and the exported coder round-trips a face. Tiny settings: this checks the
commands, not the quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facecodec.codec.learned_enhancement import LearnedResidualCodec
from facecodec.datasets import lfw_train_identities
from facecodec.frontend import decode_image
from facecodec.train import enhancement, texture
from facecodec.train.data import Faces
from facecodec.train.pack import load_pack, write_pack
from tests.helpers import LFW, shared_path

pytestmark = pytest.mark.slow  # trains for real: about a minute


@pytest.fixture(scope="module")
def pack(front_end, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared_path(LFW)
    crops, identities, keys = [], [], []
    for name in sorted(lfw_train_identities()):
        paths = sorted((LFW / name).glob("*.jpg"))[:2]
        if len(paths) < 2:
            continue
        for path in paths:
            face = front_end.largest_face(decode_image(path.read_bytes()))
            if face is not None:
                crops.append(face.crop)
                identities.append(f"lfw/{name}")
                keys.append(f"{name}/{path.stem}")
        if len(crops) >= 40:
            break
    assert len(crops) >= 40, f"only {len(crops)} faces in the LFW training identities under {LFW}"
    path = tmp_path_factory.mktemp("pack") / "faces.npz"
    write_pack(Faces(np.stack(crops), np.zeros((len(crops), 0), np.float32), np.array(identities), np.array(keys)),
               path)
    return path


def test_pack_keeps_every_face_and_identity(pack: Path) -> None:
    faces = load_pack(pack)
    assert faces.crops.shape == (40, 112, 112, 3) and faces.descriptors.shape == (40, 0)
    assert len(set(faces.identities.tolist())) >= 20


def test_texture_and_enhancement_commands_train_resume_and_export(pack: Path, tmp_path: Path, capsys) -> None:
    common = ["--faces", str(pack), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)]
    texture.main(["--name", "tiny", "--epochs", "1", "--batch", "8", *common])
    texture.main(["--name", "tiny", "--export", *common])
    report = json.loads((tmp_path / "generator_tiny.json").read_text())
    assert report["epochs"] == 1 and np.isfinite(report["val_psnr_db"]) and -1 <= report["val_identity_cosine"] <= 1

    texture.main(["--name", "joint", "--multitask", "--epochs", "1", "--batch", "8", *common])
    texture.main(["--name", "joint", "--multitask", "--export", *common])
    assert json.loads((tmp_path / "generator_joint.json").read_text())["base_layer"]["val_bytes_per_face"] > 0

    tiny = ["--name", "tiny", "--texture", "joint", "--channels", "16", "--batch", "2", *common]
    enhancement.main([*tiny, "--steps", "3"])
    enhancement.main([*tiny, "--steps", "4", "--resume"])
    assert "resumed at step 3" in capsys.readouterr().out
    fine_tune = ["--name", "tiny_ft", "--texture", "joint", "--channels", "16", "--batch", "2", *common]
    stage_one = tmp_path / "runs" / "enhancement_tiny" / "checkpoint.pt"
    enhancement.main([*fine_tune, "--steps", "1", "--init", str(stage_one)])
    assert "initialised from" in capsys.readouterr().out
    enhancement.main([*tiny, "--export"])
    report = json.loads((tmp_path / "enhancement_tiny.json").read_text())
    assert report["steps"] == 4 and len(report["levels"]) == 5

    codec = LearnedResidualCodec(tmp_path / "enhancement_tiny.npz")
    crop = load_pack(pack).crops[0]
    layers = codec.encode(crop, crop)
    assert codec.decode(crop, tuple(layers), 5).shape == crop.shape
