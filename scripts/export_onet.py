"""Export MTCNN's O-Net (the verifier of `facecodec.frontend.detect.LibfdDetector`) to ONNX.

    .venv/bin/python scripts/export_onet.py [--wheel facenet_pytorch-2.6.0-py3-none-any.whl]

The weights are `facenet_pytorch/data/onet.pt` inside the `facenet-pytorch==2.6.0` wheel (MIT licence,
Timothy Esler; MTCNN by Zhang et al. 2016). Without `--wheel` the wheel is fetched with
`pip download facenet-pytorch==2.6.0 --no-deps`. Writes `facecodec/weights/mtcnn_onet.onnx`: input
`crops` N x 3 x 48 x 48 float32, RGB, (pixel - 127.5) / 128; output `face` N x 2 (softmax: not a face, face).
The network is rebuilt here (the package itself is not installed); the export is checked against torch.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "facecodec" / "weights" / "mtcnn_onet.onnx"


class ONet(nn.Module):
    """facenet_pytorch.models.mtcnn.ONet, classification head only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)  # box and landmark heads: kept so the state dict loads as is
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return torch.softmax(self.dense6_1(x), dim=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "facenet-pytorch==2.6.0", "--no-deps", "-d", tmp],
                           check=True)
            wheel = next(Path(tmp).glob("facenet_pytorch-2.6.0-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            state = torch.load(io.BytesIO(archive.read("facenet_pytorch/data/onet.pt")), map_location="cpu")
    net = ONet().eval()
    net.load_state_dict(state)
    x = torch.randn(4, 3, 48, 48)
    torch.onnx.export(net, (x,), str(args.out), input_names=["crops"], output_names=["face"],
                      dynamic_axes={"crops": {0: "n"}, "face": {0: "n"}}, opset_version=17, dynamo=False)
    import onnxruntime as ort

    got = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"]).run(None, {"crops": x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, net(x).numpy(), atol=1e-5)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
