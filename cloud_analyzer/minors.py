"""Faces that look like a child's are flagged, and not named as freely as adults'.

The recogniser confuses children: on FG-NET, photos of two different children under 13 score as high as
photos of one adult do far more often than adults' (`bench/results/minors.json`), so the operator's FPIR
does not hold for them. Every face the analyzer decides on (a sighting, a search, an enrolment photo) is
read by the child-look probe (`facecodec.age`); when it is flagged, ANALYZER_CHILD_POLICY says what
happens to the decision (ANALYZER_CHILD_FLAG_AT moves the flag: lower flags more children and more adults):

- `withhold` (default): nobody is named; the answer says a name was withheld. Enrolment of a flagged
  photo is refused (422).
- `strict`: named only at or above ANALYZER_CHILD_THRESHOLD (a cosine, where it is stricter than the
  gallery's threshold). Enrolment is accepted with a warning.
- `off`: the probe is not run; children are decided like adults.

The flag is a proxy with measured errors (some adults are flagged, some children are not); it makes
decisions more cautious, never less.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cloud_analyzer.decision import Decision
from facecodec.age import ChildLook, child_probe

ChildPolicyMode = Literal["withhold", "strict", "off"]


@dataclass(frozen=True)
class ChildCheck:
    """What the child check did to one decision (additive fields of sightings and search answers)."""

    looks_child: bool | None = None  # None: not assessed (policy off, or another recogniser)
    child_probability: float | None = None  # the probe's P(age < 13)
    child_withheld: bool = False  # the adult threshold would have named someone; the child policy did not


@dataclass(frozen=True)
class ChildPolicy:
    mode: ChildPolicyMode = "withhold"
    threshold: float = 0.58  # cosine a flagged face must reach under `strict` (bench/minors.py: 0.579)
    flag_at: float | None = None  # P(age < 13) that flags a face; None: the probe's own (chosen in training)

    def look(self, descriptor: np.ndarray, model: str) -> ChildLook | None:
        return None if self.mode == "off" else child_probe().look(descriptor, model, self.flag_at)

    def decide(self, decision: Decision, descriptor: np.ndarray, model: str) -> tuple[Decision, ChildCheck]:
        """The decision as the policy leaves it for a probe `descriptor` of recogniser `model`."""
        look = self.look(descriptor, model)
        if look is None:
            return decision, ChildCheck()
        if not look.flagged:
            return decision, ChildCheck(False, look.probability)
        if self.mode == "withhold":
            kept, threshold = None, decision.threshold
        else:
            threshold = max(decision.threshold, self.threshold)
            kept = decision.match if decision.match is not None and decision.match.similarity >= threshold else None
        withheld = decision.match is not None and kept is None
        return replace(decision, match=kept, threshold=threshold), ChildCheck(True, look.probability, withheld)

    def enrolment_problem(self, descriptors: list[np.ndarray], model: str) -> tuple[list[int], list[float], str]:
        """(indices of enrolment photos that look like a child's, their probabilities, what to do): the
        what is `refuse` under `withhold`, else `warn`; empty when none is flagged or the policy is off."""
        looks = [self.look(d, model) for d in descriptors]
        flagged = [i for i, look in enumerate(looks) if look is not None and look.flagged]
        verdict = "refuse" if self.mode == "withhold" else "warn"
        return flagged, [looks[i].probability for i in flagged], verdict  # type: ignore[union-attr]


def child_policy(settings) -> ChildPolicy:  # noqa: ANN001  (AnalyzerSettings; imported lazily by callers)
    """The policy an analyzer's settings (ANALYZER_CHILD_POLICY, ANALYZER_CHILD_THRESHOLD) give."""
    return ChildPolicy(settings.child_policy, settings.child_threshold, settings.child_flag_at)
