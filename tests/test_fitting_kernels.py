"""The compiled fit (stream/fitting/kernels.py) against its numpy reference: the same observation, inverse
kinematics and Gauss-Newton steps on rendered frames and on the real NYU frame (shipped engine on ONNX
Runtime), compiled when the stage is set up (never on a stream's first frame), and the numpy fallback
where numba is missing."""

from __future__ import annotations

import numpy as np
import pytest

from stream.fitting import fit as fit_module
from stream.fitting import kernels
from stream.fitting.fit import FitConfig, compile_kernels, fit_hand, observe
from stream.fitting.ik import inverse_kinematics
from stream.fitting.model import (
    _DOF_INDEX,
    _I_FLEX1,
    _I_FLEX2,
    _I_LIFT,
    LIMITS_RAD,
    build_model,
    default_shape,
    pose_joints,
)
from stream.stages import FrameState
from stream.synth.hand import LIMITS_DEG, hand_shape

OBS_FIELDS = (
    "points",
    "origin",
    "points_m2",
    "points_sq",
    "depth_mm",
    "raw_mm",
    "dist_px",
    "grad_u",
    "grad_v",
)


def _rendered(seed: int):
    """A synthetic frame, our segmentation and the crop the pose stage would see (as tests/test_fitting)."""
    from stream.preprocess import HandSegmenter, crop_cube
    from stream.synth import HandSynthesizer, SceneConfig

    smp = HandSynthesizer(SceneConfig(distractors=True), seed=seed).sample()
    f = smp.frame
    seg = HandSegmenter().segment(f.depth_mm, f.intrinsics)
    assert seg.found
    crop = crop_cube(f.depth_mm, f.intrinsics, seg.best.com_xyz_mm, 250.0, 64, seg.best.mask)
    return smp, crop


def _same_observation(a, b) -> None:
    assert (a is None) == (b is None)
    if a is None:
        return
    for name in OBS_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=True), name


def _same_fit(a, b, tol_mm: float = 1e-6) -> None:
    np.testing.assert_allclose(a.joints, b.joints, rtol=0, atol=tol_mm)
    np.testing.assert_allclose(a.pose, b.pose, rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.rot, b.rot, rtol=0, atol=1e-9)
    assert a.data_rms_mm == pytest.approx(b.data_rms_mm, rel=1e-6)
    assert a.energy == pytest.approx(b.energy, rel=1e-6) and a.energy > 0


@pytest.mark.parametrize("seed", [3, 5, 11, 17])
def test_the_kernels_fit_rendered_frames_as_the_numpy_reference(seed):
    """Cold start, warm start, temporal term, a mirrored (left) hand and another number of points: the
    kernels reproduce the reference to rounding (1e-6 mm), and the fit did move the joints."""
    smp, crop = _rendered(seed)
    model = build_model(default_shape(*smp.hand_size_mm))
    engine = smp.joints_xyz_mm.astype(np.float64) + np.random.default_rng(seed).normal(0, 8.0, (21, 3))
    for mirror in (False, True):
        for n in (128, 256):
            ref = observe(crop, smp.frame.depth_mm, n, mirror=mirror, compiled=False)
            obs = observe(crop, smp.frame.depth_mm, n, mirror=mirror, compiled=True)
            _same_observation(ref, obs)
            cfg = FitConfig(points=n, iterations=4, w_temporal=0.3)
            a = fit_hand(model, ref, engine, cfg, compiled=False)
            b = fit_hand(model, obs, engine, cfg, compiled=True)
            _same_fit(a, b)
            assert np.abs(a.joints - engine).mean() > 1.0
            prev = a.joints + 3.0
            _same_fit(
                fit_hand(model, ref, engine, cfg, prev, compiled=False),
                fit_hand(model, obs, engine, cfg, prev),
            )
            warm = (a.rot, a.trans, a.pose)
            _same_fit(
                fit_hand(model, ref, engine, cfg, warm=warm, compiled=False),
                fit_hand(model, obs, engine, cfg, warm=warm),
            )


def _finger_bent_the_wrong_way(model, truth: np.ndarray, chain: int) -> np.ndarray:
    """Engine-like joints with one finger bent the other way from the truth (straight where it is curled,
    curled where it is straight): the local minimum re-seeding is for."""
    rot, trans, pose = inverse_kinematics(model, truth)
    dofs = [_I_LIFT[chain], _I_FLEX1[chain], _I_FLEX2[chain]]
    pose[dofs] = 0.0 if pose[_I_FLEX1[chain]] > 0.6 else np.radians([70.0, 85.0, 55.0])
    return pose_joints(model, rot, trans, np.clip(pose, LIMITS_RAD[:, 0], LIMITS_RAD[:, 1]))


@pytest.mark.parametrize(("seed", "chain"), [(5, 2), (17, 1), (17, 2)])
def test_reseeding_in_the_kernel_is_the_references_and_moves_only_the_reseeded_fingers(seed, chain):
    """A rendered frame whose engine joints bend one finger the wrong way: with re-seeding the energy is
    lower than the plain descent's (a seed was kept), compiled and numpy agree to rounding, and only the
    re-seeded fingers' 4 angles differ from the plain descent (the rest of the hand stays where it was)."""
    smp, crop = _rendered(seed)
    model = build_model(default_shape(*smp.hand_size_mm))
    engine = _finger_bent_the_wrong_way(model, smp.joints_xyz_mm.astype(np.float64), chain)
    obs = observe(crop, smp.frame.depth_mm, 256)
    plain = fit_hand(model, obs, engine, FitConfig(reseed_fingers=0, rescue_fingers=0))
    for fingers, steps in ((1, 1), (2, 2)):
        cfg = FitConfig(reseed_fingers=fingers, reseed_iterations=steps, rescue_fingers=0)
        a = fit_hand(model, obs, engine, cfg, compiled=False)
        b = fit_hand(model, obs, engine, cfg)
        _same_fit(a, b)
        assert b.energy < plain.energy - 1.0
        np.testing.assert_array_equal(b.rot, plain.rot)
        moved = np.flatnonzero(b.pose != plain.pose)
        chains = {c for c in range(5) if set(moved) & set(_DOF_INDEX[:, c])}
        assert moved.size > 0 and len(chains) <= fingers
        assert set(moved) <= set(_DOF_INDEX[:, sorted(chains)].ravel())


@pytest.mark.parametrize(("seed", "chains"), [(5, (1, 2)), (17, (2, 3)), (11, (0, 4))])
def test_the_rescue_in_the_kernel_is_the_references(seed, chains):
    """A rendered frame whose engine joints bend two fingers the wrong way, the rescue forced
    (rescue_energy 0): compiled and numpy agree to rounding on a right hand, a left (mirrored) one, from a
    warm start without steps (the stage's tracked rescue) and with other finger and step counts (after the
    worst finger's own re-seeding too); the
    rescued energy is never above the plain fit's (a seed is kept only where it lowers the energy)."""
    smp, crop = _rendered(seed)
    model = build_model(default_shape(*smp.hand_size_mm))
    truth = smp.joints_xyz_mm.astype(np.float64)
    engine = _finger_bent_the_wrong_way(model, _finger_bent_the_wrong_way(model, truth, chains[0]), chains[1])
    for mirror in (False, True):
        ref = observe(crop, smp.frame.depth_mm, 256, mirror=mirror, compiled=False)
        obs = observe(crop, smp.frame.depth_mm, 256, mirror=mirror)
        eng = engine * np.array([-1.0, 1.0, 1.0]) if mirror else engine
        plain = fit_hand(model, obs, eng, FitConfig(rescue_fingers=0))
        for fingers, steps, reseed in ((5, 2, 0), (2, 1, 1)):
            cfg = FitConfig(
                rescue_energy=0.0, rescue_fingers=fingers, rescue_iterations=steps, reseed_fingers=reseed
            )
            a = fit_hand(model, ref, eng, cfg, compiled=False)
            b = fit_hand(model, obs, eng, cfg)
            _same_fit(a, b)
            assert a.rescued and b.rescued and not plain.rescued
            assert b.energy <= plain.energy
        cfg = FitConfig(rescue_energy=0.0, tracking_iterations=0, reseed_fingers=0)
        start = (plain.rot, plain.trans, plain.pose)
        a = fit_hand(model, ref, eng, cfg, warm=start, compiled=False)
        b = fit_hand(model, obs, eng, cfg, warm=start)
        np.testing.assert_allclose(a.joints, b.joints, rtol=0, atol=1e-6)
        assert a.energy == pytest.approx(b.energy, rel=1e-6) and b.energy <= plain.energy + 1e-6


def test_the_kernels_fit_the_real_nyu_frame_as_the_numpy_reference(nyu_dir):
    """The real NYU frame 1 through our segmentation and the shipped engine (ONNX Runtime): the same
    observation and the same fit, compiled or not."""
    from stream.fitting.ik import estimate_size
    from stream.preprocess import HandSegmenter, crop_cube, denormalize_joints
    from train.evaluate import load_predictor
    from train.nyu import NYU_CAMERA, read_nyu_depth_png

    depth = read_nyu_depth_png(nyu_dir / "depth_1_0000001.png")
    seg = HandSegmenter().segment(depth, NYU_CAMERA)
    assert seg.found
    predict, info = load_predictor("default")
    crop = crop_cube(
        depth, NYU_CAMERA, seg.best.com_xyz_mm, float(info["cube_mm"]), int(info["crop_size"]), seg.best.mask
    )
    engine = denormalize_joints(predict(crop.depth).reshape(-1, 3), crop).astype(np.float64)
    model = build_model(default_shape(*estimate_size(engine, build_model(default_shape(185.0, 83.0)))))
    ref = observe(crop, depth, compiled=False)
    obs = observe(crop, depth)
    _same_observation(ref, obs)
    a, b = fit_hand(model, ref, engine, compiled=False), fit_hand(model, obs, engine)
    _same_fit(a, b)
    assert np.abs(a.joints - engine).mean() > 1.0


def test_the_inverse_kinematics_kernel_is_the_references():
    """Horn's quaternion frame and the closed-form angles against the SVD reference, on joints of random
    poses moved by engine-like noise (so angles hit their limits and the palm is not rigid)."""
    rng = np.random.default_rng(0)
    for subject in (0, 5, 12):
        model = build_model(hand_shape(subject))
        for _ in range(30):
            pose = np.radians(rng.uniform(LIMITS_DEG[:, 0], LIMITS_DEG[:, 1]))
            rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
            rot *= np.linalg.det(rot)
            joints = pose_joints(model, rot, rng.normal(0, 100, 3) + [0, 0, 500], pose)
            joints += rng.normal(0, 6.0, joints.shape)
            want = inverse_kinematics(model, joints)
            got = kernels.inverse_kinematics_kernel(model.rest_joints, model.rest_xyz_by_chain, joints)
            for w, g in zip(want, got):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-9)
            assert np.all(got[2] >= LIMITS_RAD[:, 0]) and np.all(got[2] <= LIMITS_RAD[:, 1])


def _signatures() -> dict[str, int]:
    return {
        name: len(getattr(kernels, name).signatures)
        for name in (
            "gauss_newton_kernel",
            "inverse_kinematics_kernel",
            "observe_kernel",
            "finish_observation_kernel",
        )
    }


def test_the_stage_compiles_when_set_up_not_on_a_streams_first_frame():
    """After FitStage() every kernel has its one signature; a frame (uint16 depth, float32 engine joints
    as the engine writes them, a hand called left) adds none, so no frame pays a compile."""
    from stream.fitting.stage import FitStage

    stage = FitStage()
    assert stage.compiled and compile_kernels()
    before = _signatures()
    assert all(v >= 1 for v in before.values()), before
    smp, crop = _rendered(3)
    for hand in ("right", "left"):
        st = FrameState(smp.frame)
        st.crop, st.joints_raw_mm = crop, smp.joints_xyz_mm.astype(np.float32)
        st.fields["handedness"] = hand
        stage.reset()
        stage.run(st)
        assert np.isfinite(st.fields["fit_rms_mm"]) and st.fields["joints_engine_mm"] is not None
    assert _signatures() == before


def test_without_numba_the_stage_runs_the_numpy_reference(monkeypatch):
    """Where numba does not import, fit.py holds no kernels and the stage's fit is the numpy one: the same
    joints as the compiled stage's."""
    from stream.fitting.stage import FitStage

    smp, crop = _rendered(5)
    outs = []
    for kernels_there in (True, False):
        if not kernels_there:
            monkeypatch.setattr(fit_module, "_kernels", None)
        st = FrameState(smp.frame)
        st.crop, st.joints_raw_mm = crop, smp.joints_xyz_mm.astype(np.float64) + 5.0
        st.fields["hand_size_mm"] = smp.hand_size_mm
        FitStage().run(st)
        outs.append(st.joints_raw_mm)
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-6)
    assert np.abs(outs[0] - (smp.joints_xyz_mm + 5.0)).mean() > 1.0
