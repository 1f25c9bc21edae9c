"""The person-disjoint split rules that keep calibration identities out of every held-out figure."""

import numpy as np

from facecodec.eval import splits


def test_fgnet_split_is_by_person_and_age():
    assert splits.fgnet_age("001A43a") == 43 and splits.fgnet_person("fgnet/012A05") == 12
    assert splits.split_of("fgnet/002", "002A20") == "fgnet_calibration"
    assert splits.split_of("fgnet/002", "002A17") == "fgnet_calibration_children"
    assert splits.split_of("fgnet/003", "003A18") == "fgnet_adults"
    assert splits.split_of("fgnet/003", "003A02") == "fgnet_children"


def test_no_identity_is_on_both_sides():
    lists = {"lfw_train": {"A"}, "lfw_eval": {"B"}}
    faces = [("cfp/250", "250/frontal/01"), ("cfp/251", "251/frontal/01"), ("glint/Tom_Hanks", "0"),
             ("glint/Barack_Obama", "0"), ("celeba/10", "x"), ("celeba/11", "x"), ("lfw/A", "A/A_0001"),
             ("lfw/B", "B/B_0001")]
    got = {f: splits.split_of(*f, **lists) for f in faces}
    assert got[("cfp/250", "250/frontal/01")] == "cfp_calibration"
    assert got[("cfp/251", "251/frontal/01")] == "cfp_heldout"
    assert got[("glint/Tom_Hanks", "0")] is None  # an LFW evaluation person: never calibrates
    assert got[("glint/Barack_Obama", "0")] == "glint_calibration"
    assert got[("celeba/11", "x")] == "celeba_heldout" and got[("celeba/10", "x")] == "celeba_calibration"
    assert got[("lfw/B", "B/B_0001")] == "lfw"
    held = {i for (i, _), s in got.items() if s in splits.HELDOUT_SPLITS}
    calibrating = {i for (i, _), s in got.items() if s in splits.CALIBRATION_SPLITS}
    assert not held & calibrating
    mask = splits.split_mask("celeba_heldout", np.array(["celeba/10", "celeba/11"]), np.array(["x", "y"]))
    assert mask.tolist() == [False, True]
