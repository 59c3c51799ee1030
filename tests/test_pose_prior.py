"""The fit's Gaussian pose prior (stream/fitting/pose_prior.py): its algebra, its file, the compiled fit
against the numpy reference with it, what it does to a fit, and where it is (and is not) used."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from stream.errors import InputError
from stream.fitting.fit import FitConfig, fit_hand, observe
from stream.fitting.model import LIMITS_RAD, build_model, default_shape
from stream.fitting.pose_prior import PosePrior, fit_pose_prior, load_pose_prior
from tests.test_fitting_kernels import _rendered as _frame  # a frame, our segmentation, the pose stage's crop


def _random_prior(seed: int = 0, n: int = 400) -> PosePrior:
    """A prior of correlated angles within the limits (fingers flexing together)."""
    rng = np.random.default_rng(seed)
    lo, hi = LIMITS_RAD[:, 0], LIMITS_RAD[:, 1]
    common = rng.uniform(0, 1, (n, 1))
    poses = lo + (hi - lo) * np.clip(0.6 * common + 0.4 * rng.uniform(0, 1, (n, 20)), 0, 1)
    return fit_pose_prior(poses, shrink_deg=4.0, made="test")


def test_the_energy_and_the_rows_are_one_quadratic_form():
    """E = w^2 d^T P d, P the inverse of the covariance plus shrink^2 I; the least-squares rows (w L^T)
    give the same matrix and the same energy for any pose."""
    prior = _random_prior()
    mean, prec, root = prior.weighted(3.0)
    want = np.linalg.inv(prior.covariance_rad2 + np.radians(4.0) ** 2 * np.eye(20))
    np.testing.assert_allclose(prec, 9.0 * want, rtol=1e-9)
    np.testing.assert_allclose(root.T @ root, prec, rtol=1e-9)
    d = np.random.default_rng(1).normal(0, 0.3, 20)
    assert prior.energy(mean + d, 3.0) == pytest.approx(float((root @ d) @ (root @ d)), rel=1e-9)
    assert prior.energy(mean, 3.0) == 0.0


def test_a_prior_file_round_trips_and_bad_ones_are_one_line(tmp_path):
    prior = _random_prior()
    back = load_pose_prior(prior.save(tmp_path / "p.json"))
    np.testing.assert_array_equal(back.mean_rad, prior.mean_rad)
    np.testing.assert_array_equal(back.covariance_rad2, prior.covariance_rad2)
    assert back.shrink_deg == 4.0 and back.made == "test"
    with pytest.raises(InputError, match="no pose prior"):
        load_pose_prior(tmp_path / "missing.json")
    doc = prior.to_json()
    doc["mean_rad"] = doc["mean_rad"][:19]
    (tmp_path / "short.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="cannot read the pose prior"):
        load_pose_prior(tmp_path / "short.json")
    with pytest.raises(ValueError):
        fit_pose_prior(np.zeros((10, 20)))  # fewer poses than angles


def test_the_shipped_prior_is_a_proper_gaussian_inside_the_limits():
    prior = load_pose_prior()
    assert "python -m train.fitting_prior" in prior.made
    assert np.all(prior.mean_rad >= LIMITS_RAD[:, 0]) and np.all(prior.mean_rad <= LIMITS_RAD[:, 1])
    assert np.all(np.linalg.eigvalsh(prior.covariance_rad2) > -1e-12)
    assert np.all(np.linalg.eigvalsh(prior.precision) > 0)


@pytest.mark.parametrize("seed", [3, 11])
def test_the_kernels_fit_with_the_prior_as_the_numpy_reference(seed):
    """Cold start with the rescue forced and the worst finger re-seeded, a warm start, a mirrored hand:
    compiled and numpy agree to rounding with the prior in every step and energy, the result's prior energy
    is the prior's at its pose, and the prior moved the fit."""
    smp, crop = _frame(seed)
    model = build_model(default_shape(*smp.hand_size_mm))
    engine = smp.joints_xyz_mm.astype(np.float64) + np.random.default_rng(seed).normal(0, 8.0, (21, 3))
    prior = _random_prior(seed)
    for mirror in (False, True):
        ref = observe(crop, smp.frame.depth_mm, 256, mirror=mirror, compiled=False)
        obs = observe(crop, smp.frame.depth_mm, 256, mirror=mirror)
        eng = engine * np.array([-1.0, 1.0, 1.0]) if mirror else engine
        cfg = FitConfig(pose_prior=prior, w_pose_prior=4.0, rescue_energy=0.0, reseed_fingers=1)
        a = fit_hand(model, ref, eng, cfg, compiled=False)
        b = fit_hand(model, obs, eng, cfg)
        np.testing.assert_allclose(a.joints, b.joints, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.pose, b.pose, rtol=0, atol=1e-8)
        assert a.energy == pytest.approx(b.energy, rel=1e-6)
        assert b.rescued and b.prior_energy == pytest.approx(prior.energy(b.pose, 4.0), rel=1e-9)
        assert 0 < b.prior_energy < b.energy and b.depth_energy == pytest.approx(b.energy - b.prior_energy)
        none = fit_hand(model, obs, eng, replace(cfg, pose_prior=None))
        assert none.prior_energy == 0.0 and np.abs(none.pose - b.pose).max() > 1e-3
        warm = (b.rot, b.trans, b.pose)
        a = fit_hand(model, ref, eng, cfg, warm=warm, compiled=False)
        b = fit_hand(model, obs, eng, cfg, warm=warm)
        np.testing.assert_allclose(a.joints, b.joints, rtol=0, atol=1e-6)


def test_a_strong_prior_pulls_the_pose_to_its_mean_and_a_zero_weight_is_no_prior():
    smp, crop = _frame(5)
    model = build_model(default_shape(*smp.hand_size_mm))
    obs = observe(crop, smp.frame.depth_mm, 256)
    engine = smp.joints_xyz_mm.astype(np.float64)
    prior = load_pose_prior()
    dist = {}
    for w in (0.0, 5.0, 200.0):
        res = fit_hand(model, obs, engine, FitConfig(pose_prior=prior, w_pose_prior=w, rescue_fingers=0))
        dist[w] = prior.energy(res.pose, 1.0)
    free = fit_hand(model, obs, engine, FitConfig(rescue_fingers=0))
    assert dist[0.0] == pytest.approx(prior.energy(free.pose, 1.0), rel=1e-9)
    assert dist[200.0] < dist[5.0] < dist[0.0]


def test_the_fit_stage_and_the_size_fits_use_the_shipped_prior():
    from stream.fitting.pose_prior import shipped_pose_prior
    from stream.fitting.stage import FitStage
    from stream.size.measure import SizeFitConfig

    assert FitStage().config.pose_prior is not None and FitStage().config.w_pose_prior == 5.0
    assert FitStage(pose_prior=None).config.pose_prior is None
    assert FitStage(config=FitConfig(w_pose_prior=0.0)).config.pose_prior is None
    # the size readout is trained on candidate fits with it: its settings name the weight
    assert SizeFitConfig().fit.pose_prior is shipped_pose_prior()
    assert SizeFitConfig().pose_prior_weight == 5.0


def test_training_poses_are_the_generators_angles_within_the_limits():
    from train.fitting_prior import training_poses

    poses = training_poses(4, seed=1000)
    assert poses.shape == (4, 20)
    assert np.all(poses >= LIMITS_RAD[:, 0] - 1e-9) and np.all(poses <= LIMITS_RAD[:, 1] + 1e-9)
