"""Face detection with faceplugin's RFB-320 style ONNX detector (boxes already decoded by the graph)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecodec.assets import model_path
from facecodec.frontend.runtime import open_session

INPUT_W, INPUT_H = 320, 240


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


class FaceDetector:
    def __init__(self, score_threshold: float = 0.7, iou_threshold: float = 0.4, min_size: int = 20) -> None:
        import cv2  # local: keeps `import facecodec` light for services that never detect

        self._cv2 = cv2
        self.session = open_session(model_path("fr_detect.onnx"))
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.min_size = min_size

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """Detect faces in an HxWx3 uint8 RGB image; largest-confidence first."""
        h, w = rgb.shape[:2]
        resized = self._cv2.resize(rgb, (INPUT_W, INPUT_H), interpolation=self._cv2.INTER_LINEAR)
        x = ((resized.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        outputs = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {"input": x})))
        scores = outputs["scores"][0, :, 1]
        boxes = outputs["boxes"][0]
        mask = scores >= self.score_threshold
        boxes, scores = boxes[mask] * np.array([w, h, w, h], np.float32), scores[mask]
        detections = []
        for i in _nms(boxes, scores, self.iou_threshold):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if min(x2 - x1, y2 - y1) >= self.min_size:
                detections.append(Detection((x1, y1, x2, y2), float(scores[i])))
        return detections
