"""The hand-model augmentation (train.gesture.augment): what each setting does to a skeleton's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from stream.gestures.canonical import canonical_joints
from stream.synth import gestures as vocab
from train.gesture.augment import CHAINS, HandModelAugment, augment_hand_model


@pytest.fixture(scope="module")
def hands() -> np.ndarray:
    return canonical_joints(vocab.gesture_dataset(vocab.TRAIN[:4], 3, seed=5)["joints_xyz_mm"])


def bone_lengths(c: np.ndarray) -> np.ndarray:
    """(N, 5, 4) each chain's bone lengths: palm bone, proximal, middle, distal."""
    return np.linalg.norm(np.diff(np.asarray(c, np.float64)[:, CHAINS], axis=2), axis=-1)


def test_all_settings_off_leave_the_skeletons_alone(hands):
    assert augment_hand_model(hands, np.random.default_rng(0), HandModelAugment()) is hands


def test_the_mcp_slides_along_the_proximal_phalanx(hands):
    out = augment_hand_model(hands, np.random.default_rng(0), HandModelAugment(mcp_shift=(0.4, 0.4)))
    before, after = bone_lengths(hands), bone_lengths(out)
    # proximal / middle phalanx: 0.6 of what it was on the four fingers (ratios survive the re-scaling)
    ratio = (after[:, 1:, 1] / after[:, 1:, 2]) / (before[:, 1:, 1] / before[:, 1:, 2])
    np.testing.assert_allclose(ratio, 0.6, rtol=1e-4)
    # the thumb is not moved; the result is canonical again (wrist at the origin, unit palm length)
    np.testing.assert_allclose(
        after[:, 0, 1:] / after[:, 0, 1:2], before[:, 0, 1:] / before[:, 0, 1:2], rtol=1e-4
    )
    np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(after[:, 1:, 0].mean(1), 1.0, rtol=1e-5)


def test_bone_ratios_scale_one_phalanx_type_on_every_finger_alike(hands):
    out = augment_hand_model(hands, np.random.default_rng(1), HandModelAugment(bone_ratio=(0.5, 1.5)))
    r = bone_lengths(out)[:, :, 1:] / bone_lengths(hands)[:, :, 1:]  # (N, 5, 3)
    np.testing.assert_allclose(r, np.broadcast_to(r[:, :1], r.shape), rtol=1e-4)  # alike on all five chains
    assert np.ptp(r[:, 0], axis=0).max() > 0.1  # differing between samples


def test_flexion_noise_bends_fingers_without_changing_their_bones(hands):
    out = augment_hand_model(hands, np.random.default_rng(2), HandModelAugment(angle_deg=20.0))
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(hands), rtol=1e-4)
    tips = np.linalg.norm(out[:, CHAINS[:, 4]] - hands[:, CHAINS[:, 4]], axis=-1)
    assert tips.mean() > 0.1  # fingertips moved by a tenth of the palm length or more on average
    np.testing.assert_allclose(out[:, CHAINS[1:, 1]], hands[:, CHAINS[1:, 1]], atol=1e-5)  # MCPs stay


def test_the_recipe_flags_reach_the_training_config_and_refuse_a_reversed_range():
    import argparse

    pytest.importorskip("torch", reason="the training config lives beside the torch trainer")
    from train.gesture.recipe import add_hand_model_options, config_from_args
    from train.gesture.train import GestureTrainConfig, hand_model_augment

    ap = argparse.ArgumentParser()
    add_hand_model_options(ap)
    args = ap.parse_args(["--aug-mcp-shift", "0,0.45", "--aug-angle-deg", "30"])
    aug = hand_model_augment(config_from_args(GestureTrainConfig(), args))
    assert aug == HandModelAugment(mcp_shift=(0.0, 0.45), angle_deg=30.0) and aug.active
    assert not hand_model_augment(GestureTrainConfig()).active  # the shipped recipe: off
    cfg = config_from_args(
        GestureTrainConfig(), ap.parse_args(["--other-skeletons", "o.npz", "--other-share", "0.25"])
    )
    assert (cfg.other_skeletons, cfg.other_share) == ("o.npz", 0.25)
    assert GestureTrainConfig().other_skeletons == ""  # the shipped recipe: our hand model alone
    with pytest.raises(SystemExit):
        ap.parse_args(["--aug-bone-ratio", "1.4,0.6"])
