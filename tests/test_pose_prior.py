"""The fit's pose prior (stream/fitting/pose_prior.py), one Gaussian or a mixture: its algebra, its file, the
compiled fit against the numpy reference with it, what it does to a fit, and where each is used."""

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


def _poses(seed: int = 0, n: int = 400) -> np.ndarray:
    """Correlated angles within the limits (fingers flexing together)."""
    rng = np.random.default_rng(seed)
    lo, hi = LIMITS_RAD[:, 0], LIMITS_RAD[:, 1]
    common = rng.uniform(0, 1, (n, 1))
    return lo + (hi - lo) * np.clip(0.6 * common + 0.4 * rng.uniform(0, 1, (n, 20)), 0, 1)


def _random_prior(seed: int = 0, n: int = 400) -> PosePrior:
    return fit_pose_prior(_poses(seed, n), shrink_deg=4.0, made="test")


def _two_shapes(seed: int = 0, n: int = 300) -> np.ndarray:
    """Open hands and fists: two clusters of angles, neither near their average."""
    rng = np.random.default_rng(seed)
    lo, hi = LIMITS_RAD[:, 0], LIMITS_RAD[:, 1]
    open_, fist = lo + 0.15 * (hi - lo), lo + 0.85 * (hi - lo)
    return np.concatenate([open_ + rng.normal(0, 0.05, (n, 20)), fist + rng.normal(0, 0.05, (n, 20))])


def test_the_energy_and_the_rows_are_one_quadratic_form():
    """One Gaussian: E = w^2 d^T P d, P the inverse of the covariance plus shrink^2 I; the least-squares rows
    (w L^T) give the same matrix and the same energy for any pose."""
    prior = _random_prior()
    means, prec, root, const = prior.weighted(3.0)
    assert prior.components == 1 and means.shape == (1, 20) and const.tolist() == [0.0]
    mean, prec, root = means[0], prec[0], root[0]
    want = np.linalg.inv(prior.covariances_rad2[0] + np.radians(4.0) ** 2 * np.eye(20))
    np.testing.assert_allclose(prec, 9.0 * want, rtol=1e-9)
    np.testing.assert_allclose(root.T @ root, prec, rtol=1e-9)
    d = np.random.default_rng(1).normal(0, 0.3, 20)
    assert prior.energy(mean + d, 3.0) == pytest.approx(float((root @ d) @ (root @ d)), rel=1e-9)
    assert prior.energy(mean, 3.0) == 0.0


def test_a_mixture_energy_is_its_nearest_components_negative_log_likelihood():
    """A mixture of two shapes finds both; at any pose its energy is the smallest over the components of
    w^2 [d_k^T P_k d_k + log det(C_k + s^2 I) - 2 log weight_k], less the smallest constant: by hand from the
    fitted weights, means and covariances. Near each shape that shape's component decides, and the average
    of the two shapes, which no hand takes, costs far more than under one Gaussian of the same poses."""
    poses = _two_shapes()
    mix = fit_pose_prior(poses, shrink_deg=4.0, components=2, seed=0)
    one = fit_pose_prior(poses, shrink_deg=4.0)
    assert mix.components == 2 and np.allclose(mix.weights, 0.5, atol=0.02)
    s2 = np.radians(4.0) ** 2 * np.eye(20)
    const = np.array([np.linalg.slogdet(c + s2)[1] for c in mix.covariances_rad2]) - 2 * np.log(mix.weights)
    const -= const.min()
    for pose in (poses[0], poses[-1], poses.mean(0), _poses(3, 1)[0]):
        by_hand = [
            float((pose - m) @ np.linalg.inv(c + s2) @ (pose - m)) + k
            for m, c, k in zip(mix.means_rad, mix.covariances_rad2, const)
        ]
        assert mix.energy(pose, 2.0) == pytest.approx(4.0 * min(by_hand), rel=1e-9)
    # each shape's own component is its nearest
    near = [int(np.argmin(mix.component_energies(p, 1.0))) for p in (poses[0], poses[-1])]
    assert sorted(near) == [0, 1]
    assert mix.energy(poses.mean(0), 1.0) > 10 * one.energy(poses.mean(0), 1.0)


def test_a_prior_file_round_trips_and_bad_ones_are_one_line(tmp_path):
    prior = _random_prior()
    back = load_pose_prior(prior.save(tmp_path / "p.json"))
    np.testing.assert_array_equal(back.means_rad, prior.means_rad)
    np.testing.assert_array_equal(back.covariances_rad2, prior.covariances_rad2)
    assert back.shrink_deg == 4.0 and back.made == "test"
    mix = fit_pose_prior(_two_shapes(), shrink_deg=4.0, components=2)
    back = load_pose_prior(mix.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(back.weights, mix.weights)
    np.testing.assert_array_equal(back.means_rad, mix.means_rad)
    # a file of one Gaussian in the single form (mean_rad, covariance_rad2) reads as one component
    single = {
        k: v for k, v in prior.to_json().items() if k not in ("weights", "means_rad", "covariances_rad2")
    }
    single.update(mean_rad=prior.means_rad[0].tolist(), covariance_rad2=prior.covariances_rad2[0].tolist())
    (tmp_path / "single.json").write_text(json.dumps(single))
    assert load_pose_prior(tmp_path / "single.json").energy(prior.means_rad[0] + 0.1, 1.0) == pytest.approx(
        prior.energy(prior.means_rad[0] + 0.1, 1.0), rel=1e-12
    )
    with pytest.raises(InputError, match="no pose prior"):
        load_pose_prior(tmp_path / "missing.json")
    doc = prior.to_json()
    doc["means_rad"] = [doc["means_rad"][0][:19]]
    (tmp_path / "short.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="cannot read the pose prior"):
        load_pose_prior(tmp_path / "short.json")
    doc = mix.to_json()
    doc["weights"] = [1.0, -0.5]
    (tmp_path / "negative.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="positive weights"):
        load_pose_prior(tmp_path / "negative.json")
    with pytest.raises(ValueError):
        fit_pose_prior(np.zeros((10, 20)))  # fewer poses than angles
    with pytest.raises(ValueError):
        fit_pose_prior(np.zeros((30, 20)), components=2)  # fewer poses than angles per component


@pytest.mark.parametrize("name, components", [("pose_prior", 1), ("pose_prior_mixture", 8)])
def test_the_shipped_priors_are_proper_gaussians_inside_the_limits(name, components):
    prior = load_pose_prior(name)
    assert "python -m train.fitting_prior" in prior.made and prior.components == components
    assert np.all(prior.means_rad >= LIMITS_RAD[:, 0] - 1e-9) and np.all(
        prior.means_rad <= LIMITS_RAD[:, 1] + 1e-9
    )
    assert np.all(np.linalg.eigvalsh(prior.covariances_rad2) > -1e-12)
    assert np.all(np.linalg.eigvalsh(prior.precisions) > 0)
    assert prior.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed, components", [(3, 1), (11, 1), (3, 3), (11, 4)])
def test_the_kernels_fit_with_the_prior_as_the_numpy_reference(seed, components):
    """Cold start with the rescue forced and the worst finger re-seeded, a warm start, a mirrored hand, one
    Gaussian and mixtures: compiled and numpy agree to rounding with the prior in every step and energy
    (the same component chosen at every evaluation), the result's prior energy is the prior's at its pose,
    and the prior moved the fit."""
    smp, crop = _frame(seed)
    model = build_model(default_shape(*smp.hand_size_mm))
    engine = smp.joints_xyz_mm.astype(np.float64) + np.random.default_rng(seed).normal(0, 8.0, (21, 3))
    prior = fit_pose_prior(
        np.concatenate([_poses(seed), _two_shapes(seed)]), shrink_deg=4.0, components=components, seed=seed
    )
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


def test_the_fit_stage_uses_the_shipped_mixture_and_the_size_fits_the_gaussian():
    from stream.fitting.pose_prior import shipped_pose_prior
    from stream.fitting.stage import FitStage
    from stream.size.measure import SizeFitConfig

    assert FitStage().config.pose_prior is shipped_pose_prior("pose_prior_mixture")
    assert FitStage().config.w_pose_prior == 5.0
    assert FitStage(pose_prior=None).config.pose_prior is None
    assert FitStage(config=FitConfig(w_pose_prior=0.0)).config.pose_prior is None
    # the size readout is trained on candidate fits with it: its settings name the weight
    assert SizeFitConfig().fit.pose_prior is shipped_pose_prior()
    # the handedness cue's fits keep the Gaussian its combination with the engine was learned with
    from stream.hands.fit_side import FitSide

    assert FitSide()._fit.config.pose_prior is shipped_pose_prior("pose_prior")
    assert SizeFitConfig().pose_prior_weight == 5.0


def test_training_poses_are_the_generators_angles_within_the_limits():
    from train.fitting_prior import training_poses

    poses = training_poses(4, seed=1000)
    assert poses.shape == (4, 20)
    assert np.all(poses >= LIMITS_RAD[:, 0] - 1e-9) and np.all(poses <= LIMITS_RAD[:, 1] + 1e-9)
