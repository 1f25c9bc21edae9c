"""Checking the product formula of `facecodec.openset` on galleries of each calibration source.

The formula assumes a stranger's comparisons with the gallery are independent and that every kind of
face has the pooled impostor tail. Neither holds exactly: some people resemble many strangers, and
profiles, scans of old photos or low-resolution faces have heavier tails than press photos. So for each
source (a data set's training-side people, `facecodec.eval.splits`), each gallery size, enrolment size,
probe frame count and quality band, galleries are drawn as the benchmark draws them: up to half of the
source's people enrolled, the rest of the gallery filled from the other sources, every photo of the
source's other people a stranger's probe. The share of strangers named at the formula's threshold for
`CHECK_TARGET`, over the predicted share, is that cell's ratio; `OpenSetCalibration` corrects each cell
by its hardest source.
"""

from __future__ import annotations

import numpy as np

from facecodec.openset import (
    CHECK_TARGET,
    MAX_ENROL_KEY,
    MAX_PROBE_FRAMES,
    QUALITY_BANDS,
    CellCheck,
    OpenSetCalibration,
    identity_template,
)

GALLERIES = (100, 1000)
ENROL = (1, MAX_ENROL_KEY)
FRAMES = (1, MAX_PROBE_FRAMES)
DRAWS = 5
# A source's check of a cell counts only with this many strangers (people) and non-mated probes: a
# ratio from a few dozen probes is noise, and the cell takes the *largest* ratio over sources.
MIN_STRANGER_PEOPLE = 8
MIN_STRANGER_PROBES = 100


def _fused(vectors: np.ndarray, groups: list[np.ndarray], m: int, rng: np.random.Generator) -> np.ndarray:
    probes = []
    for idx in groups:
        shuffled = rng.permutation(idx)
        probes += [identity_template(vectors[shuffled[s : s + m]]) for s in range(0, len(shuffled) - m + 1, m)]
    return np.stack(probes) if probes else np.zeros((0, vectors.shape[1]), np.float32)


def check_cells(calibration: OpenSetCalibration, descriptors: np.ndarray, probe_side: np.ndarray,
                identities: np.ndarray, sources: np.ndarray, bands: np.ndarray, rng: np.random.Generator,
                galleries: tuple[int, ...] = GALLERIES, draws: int = DRAWS) -> list[CellCheck]:
    """Every cell's strangers named at the independent formula's threshold, per source."""
    people = np.unique(identities)
    photos = {p: np.flatnonzero(identities == p) for p in people}
    source_of = {p: str(sources[photos[p][0]]) for p in people}
    checks = []
    for source in sorted(set(source_of.values())):
        own = np.array([p for p in people if source_of[p] == source])
        others = np.array([p for p in people if source_of[p] != source])
        for gallery in galleries:
            for k in ENROL:
                for m in FRAMES:
                    named = {b: 0 for b in QUALITY_BANDS}
                    strangers = {b: 0 for b in QUALITY_BANDS}
                    stranger_people = {b: set() for b in QUALITY_BANDS}
                    for _ in range(draws):
                        order = rng.permutation(own)
                        eligible = [p for p in order if len(photos[p]) >= k]
                        enrolled = eligible[: min(gallery, len(own) // 2)]
                        fill = [p for p in rng.permutation(others) if len(photos[p]) >= k][: gallery - len(enrolled)]
                        taken = set(enrolled)
                        templates = np.stack([identity_template(descriptors[rng.choice(photos[p], k, replace=False)])
                                              for p in [*enrolled, *fill]])
                        counts = {k: len(templates)}
                        for band in QUALITY_BANDS:
                            groups = {p: photos[p][bands[photos[p]] == band] for p in order if p not in taken}
                            groups = {p: g for p, g in groups.items() if len(g) >= m}
                            probes = _fused(probe_side, list(groups.values()), m, rng)
                            if not len(probes):
                                continue
                            threshold = calibration.threshold(CHECK_TARGET, counts, m, band)
                            named[band] += int(((probes @ templates.T).max(1) >= threshold).sum())
                            strangers[band] += len(probes)
                            stranger_people[band] |= set(groups)
                    for band in QUALITY_BANDS:
                        if len(stranger_people[band]) >= MIN_STRANGER_PEOPLE and strangers[band] >= MIN_STRANGER_PROBES:
                            checks.append(CellCheck(gallery, k, m, band, source, named[band], strangers[band],
                                                    len(stranger_people[band])))
    return checks
