"""The open-set figures measured on held-out people, shown next to each decision's stated FPIR.

`python -m facecodec.eval.open_set` writes them beside this module (`open_set_heldout.json`): for each
codec, split, gallery size, enrolment size and probe frame count, the default operating point's measured
FPIR and FNIR on people no calibration saw. A decision quotes the points nearest its own gallery."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

from facecodec.codec.profiles import FaceCodec
from facecodec.openset import enrol_key, probe_key

HELD_OUT = Path(__file__).with_name("open_set_heldout.json")


@cache
def _figures() -> dict:
    return json.loads(HELD_OUT.read_text()) if HELD_OUT.exists() else {}


def held_out_figures(codec: FaceCodec, enrol_counts: dict[int, int], probe_frames: int) -> list[dict]:
    """Per held-out split, the measured point nearest this decision: the gallery size nearest this one's
    (log scale), the most enrolment photos and probe frames measured that this gallery's smallest
    enrolment and this probe reach (fewer photos, higher error: the figure does not flatter); [] when
    none was measured for the codec."""
    points = _figures().get(f"{codec.spec.name}/{codec.rate_id}", [])
    present = [enrol_key(k) for k, n in enrol_counts.items() if n]
    if not points or not present:
        return []
    size = max(sum(enrol_counts.values()), 1)
    enrol = max((p["enrol_images"] for p in points if p["enrol_images"] <= min(present)), default=None)
    frames = max((p["probe_frames"] for p in points if p["probe_frames"] <= probe_key(probe_frames)), default=None)
    cell = [p for p in points if p["enrol_images"] == enrol and p["probe_frames"] == frames]
    if not cell:
        return []
    near = min({p["gallery"] for p in cell}, key=lambda g: abs(math.log(g) - math.log(size)))
    return [p for p in cell if p["gallery"] == near]
