"""The synthetic generator: labels agree with the rendered geometry, determinism, datasets, CLI."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.geometry import xyz_to_uvd
from stream.synth import (
    FINE_TO_COARSE,
    GESTURES_COARSE,
    GESTURES_FINE,
    JOINT_NAMES,
    NYU_FROM_21,
    NYU_JOINT_NAMES,
    HandSynthesizer,
    SceneConfig,
    load_dataset,
    nyu_from_21,
    write_dataset,
)
from stream.synth.hand import BONES, GESTURE_POSES_DEG, LIMITS_DEG, hand_joints_local, hand_shape
from stream.synth.render import Rays, cast_round_cones
from stream.synth.scene import HandState

CAM = KNOWN_CAMERAS["d435_320x240"]


@pytest.fixture(scope="module")
def samples():
    synth = HandSynthesizer(SceneConfig(), seed=7)
    return [synth.sample() for _ in range(24)]


def _hand_alone(sample, rays: Rays) -> np.ndarray:
    """Re-render only the hand's primitives: (H*W,) z, inf where the hand is absent."""
    g = sample.frame.meta["hand_geometry"]
    pix, z, _, _ = cast_round_cones(rays, g.cone_a, g.cone_b, g.radius_a, g.radius_b, np.zeros(len(g.part)))
    out = np.full(rays.dx.size, np.inf, np.float32)
    np.minimum.at(out, pix, z)
    return out


def test_names_mapping_and_hierarchy():
    assert len(JOINT_NAMES) == 21 and JOINT_NAMES[0] == "wrist"
    assert JOINT_NAMES[1:5] == ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")
    assert JOINT_NAMES[17:21] == ("pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip")
    assert len(NYU_JOINT_NAMES) == 14 and NYU_FROM_21.shape == (14, 21)
    np.testing.assert_allclose(NYU_FROM_21.sum(1), 1.0)
    j = np.random.default_rng(0).normal(size=(2, 21, 3)) * 50
    nyu = nyu_from_21(j)
    assert nyu.shape == (2, 14, 3)
    np.testing.assert_allclose(nyu[:, 0], j[:, JOINT_NAMES.index("pinky_tip")])
    np.testing.assert_allclose(nyu[:, 8], j[:, JOINT_NAMES.index("thumb_tip")])
    # rows sum to one: the mapping commutes with translation
    np.testing.assert_allclose(nyu_from_21(j + 100.0), nyu + 100.0)
    assert len(GESTURES_FINE) >= 12 and len(GESTURES_COARSE) >= 4
    assert FINE_TO_COARSE.shape == (len(GESTURES_FINE),)
    assert set(FINE_TO_COARSE.tolist()) == set(range(len(GESTURES_COARSE)))
    for name in ("open_palm", "fist", "point", "victory", "thumbs_up", "ok", "pinch", "call", "rock"):
        assert name in GESTURES_FINE
    for pose in GESTURE_POSES_DEG.values():  # canonical gestures respect the anatomical limits
        assert np.all(pose >= LIMITS_DEG[:, 0]) and np.all(pose <= LIMITS_DEG[:, 1])


def test_sample_labels_are_consistent(samples):
    for s in samples:
        assert s.frame.depth_mm.dtype == np.uint16 and s.frame.depth_mm.shape == CAM.shape
        assert s.frame.color_bgr.dtype == np.uint8 and s.frame.color_bgr.shape == (*CAM.shape, 3)
        assert s.mask.dtype == bool and s.mask.shape == CAM.shape
        assert s.joints_xyz_mm.shape == (21, 3) and s.joints_xyz_mm.dtype == np.float32
        np.testing.assert_allclose(s.joints_uvd, xyz_to_uvd(s.joints_xyz_mm, CAM), rtol=1e-5, atol=1e-3)
        assert s.gesture_coarse == FINE_TO_COARSE[s.gesture_fine]
        assert -180.0 <= s.orientation_deg[0] <= 180.0 and -90.0 <= s.orientation_deg[1] <= 90.0
        length, width = s.hand_size_mm
        assert 110.0 < length < 215.0 and 45.0 < width < 100.0
        assert s.subject == s.frame.meta["subject"]
        assert s.sequence == -1
    # the palm centre lies in the demo range; most hands are visible
    z = np.array([s.joints_xyz_mm[[0, 9], 2].mean() for s in samples])
    assert np.all((z > 280) & (z < 720))
    assert np.mean([s.mask.sum() > 100 for s in samples]) > 0.8


def test_joints_lie_inside_the_rendered_solid(samples):
    """The ray through a joint's pixel hits the hand at or before the joint (joints are inside the
    solid), and where the hand is seen at a joint, the measured depth agrees within the finger's
    radius plus sensor noise."""
    rays = Rays.for_camera(CAM)
    seen, agree = 0, 0
    for s in samples:
        hz = _hand_alone(s, rays).reshape(CAM.shape)
        uv = np.rint(s.joints_uvd[:, :2]).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < CAM.width) & (uv[:, 1] >= 0) & (uv[:, 1] < CAM.height)
        for j in np.nonzero(inside)[0]:
            u, v = uv[j]
            z = s.joints_xyz_mm[j, 2]
            assert hz[v, u] <= z + 1.0, (j, hz[v, u], z)
            d = s.frame.depth_mm[v, u]
            if s.mask[v, u] and hz[v, u] > z - 15.0 and d > 0:  # visible at its own surface
                seen += 1
                agree += abs(float(d) - z) <= 15.0 + 0.01 * z
    assert seen > 100
    assert agree / seen > 0.97


def test_open_palm_facing_camera_depth_at_joints():
    synth = HandSynthesizer(SceneConfig(distractors=False, body=False), seed=0)
    shape = hand_shape(5)
    st = HandState(np.array([0.0, 0.0, 400.0]), -90.0, 20.0, 0.0, 0.0, 0.0, GESTURE_POSES_DEG["open_palm"], 0)
    st = replace(st, roll_deg=synth._palm_facing_roll(st))
    ctx = synth._context(np.random.default_rng(0), shape, st, None)
    s = synth._render(
        np.random.default_rng(1), shape, st, ctx, None, sequence=0, frame_index=0, timestamp_ms=0.0
    )
    assert abs(s.orientation_deg[0]) < 25.0 and abs(s.orientation_deg[1]) < 30.0  # palm faces the camera
    for j in range(5, 21):  # every finger joint is visible, at its depth minus at most its radius
        u, v = np.rint(s.joints_uvd[j, :2]).astype(int)
        assert s.mask[v, u], JOINT_NAMES[j]
        z, d = s.joints_xyz_mm[j, 2], float(s.frame.depth_mm[v, u])
        if d > 0:
            assert z - 13.0 <= d <= z + 3.0, (JOINT_NAMES[j], z, d)
    # hand length = wrist to middle fingertip of the straight hand
    j = s.joints_xyz_mm
    assert abs(np.linalg.norm(j[12] - j[0]) - shape.length_mm) < 0.02 * shape.length_mm


def test_mask_is_exactly_the_visible_hand(samples):
    rays = Rays.for_camera(CAM)
    # nothing else in the scene: the mask is the hand alone, pixel for pixel
    synth = HandSynthesizer(SceneConfig(distractors=False, body=False, forearm=False), seed=3)
    for _ in range(4):
        s = synth.sample()
        alone = np.isfinite(_hand_alone(s, rays)).reshape(CAM.shape)
        assert np.array_equal(s.mask, alone)
    # full scenes: mask = hand pixels where the hand is the nearest surface
    occluded = 0
    for s in samples:
        hz = _hand_alone(s, rays).reshape(CAM.shape)
        zc = s.frame.meta["z_clean_mm"]
        assert not np.any(s.mask & ~np.isfinite(hz))
        np.testing.assert_allclose(zc[s.mask], hz[s.mask], atol=1e-2)
        hidden = np.isfinite(hz) & ~s.mask
        assert np.all(zc[hidden] < hz[hidden] + 1e-2)
        occluded += hidden.sum() > 20
    assert occluded >= 3  # forearms, other fingers' owners, occluders: some hands are partly hidden


def test_forearm_attached_and_not_in_mask():
    """Without body or distractors, the only non-hand surface near the wrist's depth is the forearm:
    it touches the mask (attached) but is not in it."""
    synth = HandSynthesizer(SceneConfig(distractors=False, body=False, color=False), seed=11)
    attached = 0
    for _ in range(6):
        s = synth.sample()
        u, v = np.rint(s.joints_uvd[0, :2]).astype(int)
        if not (0 <= u < CAM.width and 0 <= v < CAM.height) or not s.mask.any():
            continue
        ring = cv2.dilate(s.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~s.mask
        z = s.frame.meta["z_clean_mm"]
        attached += bool(np.any(ring & (np.abs(z - s.joints_xyz_mm[0, 2]) < 60.0)))
    assert attached >= 3
    no_arm = HandSynthesizer(SceneConfig(distractors=False, body=False, forearm=False, color=False), seed=11)
    s = no_arm.sample()
    z = s.frame.meta["z_clean_mm"]
    assert not np.any(~s.mask & (z < s.joints_xyz_mm[:, 2].max() + 100.0))


def test_bone_lengths_constant_over_a_sequence():
    synth = HandSynthesizer(SceneConfig(color=False), seed=5)
    frames = list(synth.sequence(45, fps=30.0))
    assert [f.frame_index for f in frames] == list(range(45))
    assert len({f.subject for f in frames}) == 1 and len({f.sequence for f in frames}) == 1
    lengths = np.array(
        [[np.linalg.norm(f.joints_xyz_mm[c] - f.joints_xyz_mm[p]) for p, c in BONES] for f in frames]
    )
    assert np.all(lengths.std(0) < 1e-3 * lengths.mean(0) + 1e-3)
    # smooth motion: the wrist moves at most a few cm between frames at 30 fps
    steps = np.linalg.norm(np.diff(np.stack([f.joints_xyz_mm[0] for f in frames]), axis=0), axis=1)
    assert steps.max() < 40.0
    assert steps.sum() > 1.0  # and it does move
    ts = [f.frame.timestamp_ms for f in frames]
    np.testing.assert_allclose(np.diff(ts), 1000.0 / 30.0)


def test_calibration_pose_is_an_open_palm_held_towards_the_camera():
    """`calibration_pose`: what `handstream calibrate` asks of the user -- every frame an open palm facing
    the camera, the hand swaying by a few cm at most over a second (off, the frontal scenes draw every
    gesture)."""
    synth = HandSynthesizer(SceneConfig(color=False, calibration_pose=True), seed=3)
    for _ in range(6):
        frames = list(synth.sequence(30))
        assert {GESTURES_FINE[f.gesture_fine] for f in frames} == {"open_palm"}
        o = np.abs(np.stack([f.orientation_deg for f in frames]))
        assert o[:, 0].max() < 35.0 and o[:, 1].max() < 45.0  # azimuth, elevation of the palm normal
        wrist = np.stack([f.joints_xyz_mm[0] for f in frames])
        assert np.linalg.norm(wrist - wrist[0], axis=1).max() < 40.0
    gestures = {HandSynthesizer(SceneConfig(color=False), seed=3).sample_at(k).gesture_fine for k in range(8)}
    assert len(gestures) > 1  # the default draws other gestures


def test_hands_out_of_view_leave_the_rest_of_the_scene():
    """`hands_visible=False`: the same scenes (same draws: labels, objects, body) with no hand, forearm or
    raised arm's sleeve, for measuring what the detector finds when no hand is in view; it survives a
    round trip."""
    from stream.synth.scene import M_ARM, M_ARM2, M_BODY, M_HAND, M_HAND2

    for kind in ("frontal", "egocentric"):
        cfg = SceneConfig(color=False, scene_kind=kind, two_hands=True)
        seen, empty = HandSynthesizer(cfg, 5), HandSynthesizer(replace(cfg, hands_visible=False), 5)
        for k in range(3):
            a, b = seen.sample_at(k), empty.sample_at(k)
            assert a.mask.any() and not b.mask.any() and not b.other_hands[0].mask.any()
            assert not np.isin(b.material, (M_HAND, M_ARM, M_HAND2, M_ARM2)).any()
            assert np.array_equal(a.joints_xyz_mm, b.joints_xyz_mm)  # the draws are the same
            # where the hands and arms were not, the scene is what it was
            away = ~np.isin(a.material, (M_HAND, M_ARM, M_HAND2, M_ARM2, M_BODY))
            same = np.abs(a.frame.meta["z_clean_mm"] - b.frame.meta["z_clean_mm"])[away] < 1e-3
            assert same.mean() > 0.99
    assert SceneConfig.from_dict(SceneConfig(hands_visible=False).to_dict()).hands_visible is False


def test_same_seed_same_bytes_and_independent_samples():
    cfg = SceneConfig(two_hands=True)
    a = [HandSynthesizer(cfg, 42).sample() for _ in range(1)] + list(HandSynthesizer(cfg, 42).sequence(3))
    b = [HandSynthesizer(cfg, 42).sample() for _ in range(1)] + list(HandSynthesizer(cfg, 42).sequence(3))
    for x, y in zip(a, b):
        assert x.frame.depth_mm.tobytes() == y.frame.depth_mm.tobytes()
        assert x.frame.color_bgr.tobytes() == y.frame.color_bgr.tobytes()
        assert x.mask.tobytes() == y.mask.tobytes()
        assert x.joints_xyz_mm.tobytes() == y.joints_xyz_mm.tobytes()
    c = HandSynthesizer(cfg, 43).sample()
    assert c.frame.depth_mm.tobytes() != a[0].frame.depth_mm.tobytes()
    # sample k does not depend on earlier calls
    s = HandSynthesizer(cfg, 42)
    s.sample()
    second = s.sample()
    assert second.frame.depth_mm.tobytes() == HandSynthesizer(cfg, 42).sample_at(1).frame.depth_mm.tobytes()


def test_two_hands_have_separate_masks():
    synth = HandSynthesizer(SceneConfig(two_hands=True, color=False), seed=2)
    for _ in range(4):
        s = synth.sample()
        assert len(s.other_hands) == 1
        o = s.other_hands[0]
        assert o.mask.shape == s.mask.shape and not np.any(o.mask & s.mask)
        assert o.joints_xyz_mm.shape == (21, 3)


def test_two_hand_sequences_keep_the_second_hand_on_its_side():
    """A frontal two-hand sequence's left hand stays on the side of the right hand it started on: drawn
    afresh at every key, it passed through the first hand whenever the draw changed sides. Independent
    frames still put it on either side."""

    def side(s) -> float:
        palm = [0, 5, 9, 13, 17]
        return float(
            np.sign(s.other_hands[0].joints_xyz_mm[palm, 0].mean() - s.joints_xyz_mm[palm, 0].mean())
        )

    cfg = SceneConfig(camera=KNOWN_CAMERAS["d435_320x240"], two_hands=True, color=False)
    synth, seen = HandSynthesizer(cfg, seed=4242), set()
    for _ in range(6):
        sides = {side(s) for s in synth.sequence(24, fps=6.0)}  # 4 s: two to six keys
        assert len(sides) == 1
        seen |= sides
    assert seen == {-1.0, 1.0}
    assert {side(HandSynthesizer(cfg, seed=4242).sample_at(k)) for k in range(12)} == {-1.0, 1.0}


def test_scenes_have_things_in_front_of_the_hand(samples):
    """Distractors in front: some frames have non-hand surfaces nearer than the hand's nearest point."""
    nearer = 0
    for s in samples:
        z = s.frame.meta["z_clean_mm"]
        if s.mask.any():
            nearer += bool(np.any(z[~s.mask] < z[s.mask].min() - 10.0))
    assert nearer >= 3


def test_subjects_have_fixed_shapes_adult_and_child():
    assert hand_shape(3) == hand_shape(3)
    lengths = np.array([hand_shape(i).length_mm for i in range(60)])
    assert (lengths < 160).any() and (lengths > 170).any()
    g = hand_joints_local(hand_shape(3), GESTURE_POSES_DEG["fist"])
    g2 = hand_joints_local(hand_shape(3), GESTURE_POSES_DEG["open_palm"])
    bl = lambda j: np.array([np.linalg.norm(j[c] - j[p]) for p, c in BONES])  # noqa: E731
    np.testing.assert_allclose(bl(g.joints), bl(g2.joints), atol=1e-9)


def test_sensor_noise_grows_with_distance_and_keeps_units():
    from stream.synth.sensor import SensorModel, apply_sensor

    rng = np.random.default_rng(0)
    cos = np.ones(CAM.shape, np.float32)
    spread = []
    for z0 in (400.0, 1500.0):
        z = np.full(CAM.shape, z0, np.float32)
        d = apply_sensor(z, cos, CAM, rng, SensorModel()).astype(float)
        good = d > 0
        assert good.mean() > 0.95
        assert abs(np.median(d[good]) - z0) < 0.01 * z0
        spread.append(np.std(d[good] - z0))
    assert spread[1] > 4 * spread[0]
    # too near: nothing; grazing: holes; a near box casts a stereo shadow to its left
    z = np.full(CAM.shape, 100.0, np.float32)
    assert (apply_sensor(z, cos, CAM, rng) == 0).all()
    z = np.full(CAM.shape, 1000.0, np.float32)
    z[80:160, 150:200] = 400.0
    d = apply_sensor(z, cos, CAM, rng, replace(SensorModel(), edge_drop_prob=0.0, speckle_prob=0.0))
    assert (d[100:140, 140:148] == 0).mean() > 0.9  # left of the box: shadow (disparity difference ~ 14 px)
    assert (d[100:140, 205:215] > 0).mean() > 0.9  # right of it: measured


def test_round_cone_hits_match_brute_force():
    intr = KNOWN_CAMERAS["d435_320x240"].scaled(160, 120)
    rays = Rays.for_camera(intr)
    rng = np.random.default_rng(1)
    a = np.array([[10.0, -20.0, 300.0], [-30.0, 10.0, 260.0]])
    b = a + rng.normal(0, 40, (2, 3))
    ra, rb = np.array([18.0, 9.0]), np.array([8.0, 14.0])
    pix, z, n, m = cast_round_cones(rays, a, b, ra, rb, np.array([1, 2]))
    got = np.full(rays.dx.size, np.inf)
    np.minimum.at(got, pix, z)
    # brute force: sphere-swept volume (union of spheres along the axis) marched along each ray
    ts = np.linspace(0, 1, 300)
    centres = np.concatenate([a[i] + ts[:, None] * (b[i] - a[i]) for i in range(2)])
    radii = np.concatenate([ra[i] + ts * (rb[i] - ra[i]) for i in range(2)])
    dirs = np.stack([rays.dx, rays.dy, rays.dz], 1).astype(np.float64)
    expect = np.full(rays.dx.size, np.inf)
    for c, r in zip(centres, radii):
        bq = dirs @ c
        disc = bq**2 - (c @ c - r * r)
        t = np.where(disc >= 0, bq - np.sqrt(np.maximum(disc, 0)), np.inf)
        expect = np.minimum(expect, t * dirs[:, 2])
    hit_e, hit_g = np.isfinite(expect), np.isfinite(got)
    assert hit_e.sum() > 100
    assert (hit_e != hit_g).sum() <= 0.02 * hit_e.sum()  # silhouettes agree up to edge pixels
    both = hit_e & hit_g
    assert np.abs(got[both] - expect[both]).max() < 1.0
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)


def test_dataset_round_trip(tmp_path):
    cfg = SceneConfig(color=True)
    out = write_dataset(tmp_path / "ds", 5, seed=9, config=cfg, shard_size=2, progress=False)
    meta, arrays = load_dataset(out)
    assert len(meta["shards"]) == 3 and meta["seed"] == 9 and meta["n_frames"] == 5
    assert meta["joint_names"] == list(JOINT_NAMES) and meta["gestures_fine"] == list(GESTURES_FINE)
    assert meta["fine_to_coarse"] == FINE_TO_COARSE.tolist()
    assert np.allclose(meta["nyu_from_21"], NYU_FROM_21)
    assert meta["intrinsics"]["fx"] == CAM.fx
    assert SceneConfig.from_dict(meta["config"]) == cfg
    expect = {
        "depth_mm": ((5, 240, 320), np.uint16),
        "color": ((5, 240, 320, 3), np.uint8),
        "mask": ((5, 240, 320), np.uint8),
        "joints_xyz_mm": ((5, 21, 3), np.float32),
        "joints_uvd": ((5, 21, 3), np.float32),
        "orientation_deg": ((5, 2), np.float32),
        "hand_size_mm": ((5, 2), np.float32),
    }
    for k, (shape, dtype) in expect.items():
        assert arrays[k].shape == shape and arrays[k].dtype == dtype, k
    for k in ("gesture_fine", "gesture_coarse", "subject", "sequence", "frame"):
        assert arrays[k].shape == (5,)
    synth = HandSynthesizer(cfg, 9)
    for i in range(5):
        s = synth.sample()
        assert np.array_equal(arrays["depth_mm"][i], s.frame.depth_mm)
        assert np.array_equal(arrays["mask"][i], s.mask.astype(np.uint8))
        assert np.array_equal(arrays["joints_xyz_mm"][i], s.joints_xyz_mm)
        assert arrays["gesture_fine"][i] == s.gesture_fine and arrays["frame"][i] == i


def test_dataset_sequences_and_errors(tmp_path):
    out = write_dataset(
        tmp_path / "seq", 4, seed=1, config=SceneConfig(color=False), sequences=True, progress=False
    )
    meta, arrays = load_dataset(out)
    assert meta["sequences"] and np.all(arrays["sequence"] == 0)
    assert arrays["frame"].tolist() == [0, 1, 2, 3]
    assert not arrays["color"].any()
    with pytest.raises(InputError):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(InputError):
        write_dataset(tmp_path / "x", 0, seed=1)
    (out / meta["shards"][0]["file"]).unlink()
    with pytest.raises(InputError):
        load_dataset(out)


def test_cli_writes_dataset_and_preview(tmp_path, capsys):
    from stream.cli import main

    out = tmp_path / "cli"
    assert (
        main(["synth", "--out", str(out), "--frames", "3", "--seed", "4", "--no-body", "--no-distractors"])
        == 0
    )
    meta, arrays = load_dataset(out)
    assert arrays["depth_mm"].shape == (3, 240, 320) and meta["config"]["body"] is False
    sheet = tmp_path / "sheet.png"
    assert main(["synth", "--preview", str(sheet), "--frames", "3", "--size", "640x480"]) == 0
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape == (2 * 480, 2 * 4 * 640, 3)
    # user errors: one line, exit code 2
    assert main(["synth", "--frames", "3"]) == 2
    assert main(["synth", "--out", str(out), "--frames", "2", "--camera", "nope"]) == 2
    assert "unknown camera" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "--frames", "2", "--camera", "nyu"]) == 0
    assert load_dataset(out)[1]["depth_mm"].shape == (2, 480, 640)
