"""Galleries and probes of the open-set benchmark (`facecodec.eval.open_set`), drawn from held-out splits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from facecodec import openset
from facecodec.train.data import SplitFaces


@dataclass
class Pool:
    faces: SplitFaces
    float32: np.ndarray  # templates are enrolled from the float descriptor
    coded: np.ndarray  # probes arrive as decoded base layers
    distractors: np.ndarray | None  # UTKFace single photos (float descriptors), one person each
    _fillers: dict = field(default_factory=dict)

    def fillers(self, split: str) -> np.ndarray:
        """LFW evaluation people usable as distractors of `split` (none for LFW itself): never one of it."""
        if split not in self._fillers:
            own = set(self.faces.identities[self.faces.splits == split].tolist())
            lfw = (self.faces.splits == "lfw") & self.faces.passes
            people = np.unique(self.faces.identities[lfw])
            self._fillers[split] = np.array([]) if split == "lfw" else np.array([p for p in people if p not in own])
        return self._fillers[split]


@dataclass
class Draw:
    templates: list[np.ndarray]  # photo indices per enrolled identity (split people, then LFW fillers)
    singles: np.ndarray  # UTKFace distractor rows enrolled as one-photo identities
    mated: list[tuple[int, list[np.ndarray]]]  # (template number, probe photo groups)
    non_mated: list[np.ndarray]


def _photos(faces: SplitFaces, person: str, rng: np.random.Generator, passing: bool = True) -> np.ndarray:
    idx = np.flatnonzero((faces.identities == person) & (faces.passes if passing else True))
    return rng.permutation(idx)


def draw(pool: Pool, split: str, gallery: int, enrol: int, frames: int, rng: np.random.Generator,
         enrol_pick=None, probe_pick=None) -> Draw:
    """One random gallery of `split` (module doc of `facecodec.eval.open_set`). `enrol_pick(photos)` and
    `probe_pick(photos)` choose among a person's usable photos (enrolment guidance); by default the first
    `enrol` enrol and the rest are probed."""
    faces = pool.faces
    in_split = faces.splits == split
    people = rng.permutation(np.unique(faces.identities[in_split]))
    by_person = {p: _photos(faces, p, rng) for p in people}
    half = len(people) // 2
    pick = enrol_pick or (lambda photos: photos[:enrol])
    rest = probe_pick or (lambda photos, used: np.array([i for i in photos if i not in set(used)]))
    templates, mated, taken = [], [], set()
    for p in people:
        if len(taken) >= min(gallery, half):
            break
        chosen = pick(by_person[p])
        if chosen is None or len(chosen) < enrol:
            continue
        left = rest(by_person[p], chosen)
        if len(left) < frames:
            continue
        mated.append((len(templates), [left[s : s + frames] for s in range(0, len(left) - frames + 1, frames)]))
        templates.append(np.asarray(chosen))
        taken.add(p)
    for p in people:  # distractors of the split itself, never probed, up to half of its people
        if len(taken) >= min(gallery, half):
            break
        if p not in taken and len(by_person[p]):
            templates.append(by_person[p][:enrol])
            taken.add(p)
    # Fillers with enough photos for the configuration's enrolment first, then the others (fewer photos).
    fillers = [_photos(faces, p, rng) for p in rng.permutation(pool.fillers(split))]
    for photos in sorted(fillers, key=lambda f: len(f) < enrol):
        if len(templates) >= gallery:
            break
        if len(photos):
            templates.append(photos[:enrol])
    need = gallery - len(templates)
    singles = np.array([], int)
    if need > 0 and pool.distractors is not None:
        singles = rng.choice(len(pool.distractors), min(need, len(pool.distractors)), replace=False)
    non_mated = []
    for p in people:
        if p not in taken:  # every photo, low-quality ones too: the gate must stop those
            g = _photos(faces, p, rng, passing=False)
            non_mated += [g[s : s + frames] for s in range(0, len(g) - frames + 1, frames)]
    return Draw(templates, singles, mated, non_mated)


def _template(pool: Pool, idx: np.ndarray, weighted: bool) -> np.ndarray:
    x = pool.float32[idx]
    if not weighted:
        return openset.identity_template(x)
    w = np.maximum(pool.faces.quality[idx], 0.05)[:, None]
    return openset.unit((w * openset.unit(x)).sum(0))


def _band(pool: Pool, idx: np.ndarray) -> str:
    return "low" if (pool.faces.quality[idx] < openset.LOW_QUALITY_SCORE).any() else "good"


def fnir_at(mated_scores: np.ndarray, mated_right: np.ndarray, nonmated_scores: np.ndarray, fpir: float) -> float:
    k = int(np.floor(fpir * len(nonmated_scores)))
    top = np.sort(nonmated_scores)[::-1]
    t = top[k] if k < len(top) else -np.inf  # accept strictly above: at most k strangers named
    return float(1 - np.mean(mated_right & (mated_scores > t)))


def evaluate(pool: Pool, split: str, calibration: openset.OpenSetCalibration, target: float, gallery: int,
             enrol: int, frames: int, repeats: int, seed: int = 0, enrol_pick=None, probe_pick=None) -> dict | None:
    """One configuration over `repeats` draws, probes pooled; None when the split has no mated probes."""
    rng = np.random.default_rng(seed)
    faces = pool.faces
    acc: dict[str, list] = {k: [] for k in ("m_score", "m_right", "m_th", "w_score", "w_right", "n_score", "w_n_score",
                                             "n_th", "stated", "upper", "size")}
    make_up: Counter[int] = Counter()
    caveats: set[str] = set()
    for _ in range(repeats):
        d = draw(pool, split, gallery, enrol, frames, rng, enrol_pick, probe_pick)
        if not d.mated:
            continue
        plain = [_template(pool, idx, False) for idx in d.templates]
        weighted = [_template(pool, idx, True) for idx in d.templates]
        extra = [pool.distractors[d.singles]] if len(d.singles) else []
        t = np.concatenate([np.stack(plain), *extra])
        tw = np.concatenate([np.stack(weighted), *extra])
        counts = Counter(openset.enrol_key(len(idx)) for idx in d.templates)
        counts[1] += len(d.singles)
        counts = {k: n for k, n in counts.items() if n}
        make_up.update(counts)
        points = {b: calibration.operating_point(target, counts, frames, b) for b in openset.QUALITY_BANDS}
        acc["size"].append(len(t))
        for owner, groups in d.mated:
            for g in groups:
                probe = openset.identity_template(pool.coded[g])
                point = points[_band(pool, g)]
                s, sw = t @ probe, tw @ probe
                acc["m_score"].append(s.max())
                acc["m_right"].append(int(np.argmax(s)) == owner)
                acc["w_score"].append(sw.max())
                acc["w_right"].append(int(np.argmax(sw)) == owner)
                acc["m_th"].append(point.threshold)
        for g in d.non_mated:
            good = g[faces.passes[g]]
            point = points[_band(pool, good) if len(good) else "good"]
            caveats |= set(point.caveats)
            acc["n_th"].append(point.threshold)
            acc["stated"].append(point.fpir)
            acc["upper"].append(point.fpir_upper)
            if not len(good):  # the gate drops rejected frames; nothing left: not matched at all
                acc["n_score"].append(-np.inf)
                acc["w_n_score"].append(-np.inf)
                continue
            probe = openset.identity_template(pool.coded[good])
            acc["n_score"].append((t @ probe).max())
            acc["w_n_score"].append((tw @ probe).max())
    if not acc["m_score"]:
        return None
    a = {k: np.array(v) for k, v in acc.items()}
    named = a["n_score"] >= a["n_th"]
    return {
        "dataset": split, "gallery": int(np.round(np.mean(a["size"]))), "enrol_images": enrol, "probe_frames": frames,
        "enrol_counts": {str(k): round(n / repeats) for k, n in sorted(make_up.items())},
        "descriptor": "base_layer",
        "fnir_at_fpir_1e-2": fnir_at(a["m_score"], a["m_right"], a["n_score"], 1e-2),
        "fnir_at_fpir_1e-3": fnir_at(a["m_score"], a["m_right"], a["n_score"], 1e-3),
        "weighted_fnir_at_fpir_1e-2": fnir_at(a["w_score"], a["w_right"], a["w_n_score"], 1e-2),
        "default_threshold": float(np.mean(a["n_th"])),
        "default_fpir": float(np.mean(named)), "default_fpir_named": int(named.sum()),
        "stated_fpir": float(np.mean(a["stated"])), "stated_fpir_upper": float(np.mean(a["upper"])),
        "caveats": sorted(caveats),
        "default_fnir": float(1 - np.mean(a["m_right"] & (a["m_score"] >= a["m_th"]))),
        "rank1": float(np.mean(a["m_right"])),
        "mated_probes": int(len(a["m_score"])), "non_mated_probes": int(len(a["n_score"])),
    }


GUIDANCE = {  # name -> (frontal photos, profile photos) enrolled
    "1 frontal": (1, 0), "3 frontal": (3, 0), "5 frontal": (5, 0), "2 frontal + 1 profile": (2, 1),
    "3 frontal + 2 profile": (3, 2),
}


def enrolment_guidance(pool: Pool, calibration: openset.OpenSetCalibration, target: float, repeats: int,
                       gallery: int = 1000) -> list[dict]:
    """FNIR by enrolment mix on CFP 251-500 (frontal and profile photos of each person), single-frame
    probes of each pose, in galleries of `gallery`."""
    keys = pool.faces.keys
    profile = np.array(["/profile/" in str(k) for k in keys])
    out = []
    for name, (n_front, n_side) in GUIDANCE.items():
        def enrol_pick(photos, n_front=n_front, n_side=n_side):
            front, side = photos[~profile[photos]], photos[profile[photos]]
            if len(front) < n_front or len(side) < n_side:
                return None
            return np.concatenate([front[:n_front], side[:n_side]])

        for pose in ("frontal", "profile"):
            def probe_pick(photos, used, pose=pose):
                left = [i for i in photos if i not in set(used)]
                return np.array([i for i in left if profile[i] == (pose == "profile")], int)

            p = evaluate(pool, "cfp_heldout", calibration, target, gallery, n_front + n_side, 1, repeats,
                         enrol_pick=enrol_pick, probe_pick=probe_pick)
            if p is not None:
                out.append({"enrolment": name, "probes": pose, "gallery": p["gallery"],
                            "fnir_at_fpir_1e-2": p["fnir_at_fpir_1e-2"], "default_fnir": p["default_fnir"],
                            "default_fpir": p["default_fpir"], "mated_probes": p["mated_probes"]})
    return out
