"""Hand presence: the segmenter's alternatives, the presence check's choice among them, its training data
and recipe, and its place in the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from stream.frames import KNOWN_CAMERAS
from stream.hands.presence import PresenceCheck
from stream.preprocess import HandSegmenter
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]
# generator frames (frontal, seed 78, independent) where the detector's strongest peak lies on an object
# held in front of the hand (a ball or box: `SceneConfig.occluder_prob`) and the hand is the next peak
OBJECT_FIRST = (184, 570, 908, 1165)
# ... and frames where the segmenter's first hand is the hand and an alternative scores within the margin
# of it (the detector's peak on an object, or the presence engine's P(hand) of the hand itself, is high)
HAND_FIRST = (70, 252, 796)
# a 60-frame frontal sequence whose hand is tracked throughout, and whose scene without the hand has the
# detector track something else in most frames (in seed 54's scene with the hand the segmenter tracks a
# point 70-85 mm off the hand, on the arm, and the floor lets that go too)
TRACK_SEED = 48
# independent frontal two-hand frames (seed 5151) where the segmenter's first hand is a fist, its mask as
# convex as a jar, and gives way to the other hand's hand-shaped peak (`Segmentation.doubted`) ...
FIST_SET_ASIDE = (18, 38, 334, 392)
# ... and independent egocentric one-hand frames (seed 9200) where what gives way is an object beside or
# behind the hand; on frame 61 the presence engine takes that object for a hand (P 0.99), but it lies 200 mm
# behind the hand: farther than one user's two hands
OBJECT_SET_ASIDE = (27, 61, 71, 417)


def _engines():
    import engines

    if "presence" not in engines.shipped_engines():
        pytest.skip("no presence engine shipped in engines/default")
    return engines


def _frame(k: int, seed: int = 78):
    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), seed).sample_at(k)
    return s, s.frame


def _off_hand_mm(s, h) -> float:
    return float(np.linalg.norm(s.joints_xyz_mm - h.com_xyz_mm, axis=1).min())


def test_alternatives_only_when_asked_and_not_tracking():
    s, f = _frame(OBJECT_FIRST[0])
    seg = HandSegmenter()
    plain = seg.segment(f.depth_mm, f.intrinsics)
    asked = seg.segment(f.depth_mm, f.intrinsics, alternatives=True)
    assert plain.alternatives == ()
    # the same hands either way: asking only adds the other candidates
    assert len(asked.hands) == len(plain.hands)
    for a, b in zip(asked.hands, plain.hands, strict=True):
        assert np.array_equal(a.com_xyz_mm, b.com_xyz_mm) and np.array_equal(a.mask, b.mask)
    assert _off_hand_mm(s, asked.hands[0]) > 100.0  # the object the detector put first
    assert asked.alternatives and _off_hand_mm(s, asked.alternatives[0]) < 40.0  # the hand, as an alternative
    for h in asked.alternatives:  # never a found hand again
        assert all(np.linalg.norm(h.com_xyz_mm - o.com_xyz_mm) >= 80.0 for o in asked.hands)
    tracked = seg.segment(f.depth_mm, f.intrinsics, prev=asked, alternatives=True)
    assert tracked.alternatives == ()  # tracking keeps the hand it has: nothing to choose among


def test_with_no_hand_found_the_weak_peaks_are_cut_when_asked():
    from dataclasses import replace

    from stream.preprocess import SegmenterConfig

    s, f = _frame(HAND_FIRST[0])
    # no peak reaches the first hand's threshold, and neither the rescue detector nor the classic fallback
    # is asked: nothing is found
    cfg = SegmenterConfig(
        presence_threshold=0.95,
        rescue_detector_engine="",
        classic_fallback_presence=0.0,
        weak_first_presence=0.1,
    )
    seg = HandSegmenter(cfg)
    asked = seg.segment(f.depth_mm, f.intrinsics, alternatives=True)
    assert not asked.found and asked.alternatives
    assert min(_off_hand_mm(s, h) for h in asked.alternatives) < 40.0  # the hand is among them
    assert all(h.confidence >= 0.1 for h in asked.alternatives)
    assert seg.segment(f.depth_mm, f.intrinsics).alternatives == ()  # only when asked
    off = HandSegmenter(replace(cfg, weak_first_presence=0.0))
    assert off.segment(f.depth_mm, f.intrinsics, alternatives=True).alternatives == ()
    with pytest.raises(Exception, match="weak_first_presence"):
        SegmenterConfig(weak_first_presence=1.5)


def test_presence_score_is_log_odds_plus_weighted_peak():
    class Fixed:  # only score() is exercised: it needs no engine output
        output_names = ("p_hand",)
        manifest = None

    chk = PresenceCheck(Fixed(), peak_weight=4.0)
    assert PresenceCheck(Fixed()).peak_weight == 25.0 and PresenceCheck(Fixed()).margin == 3.0
    assert chk.score(0.5, 0.25) == pytest.approx(1.0)
    assert chk.score(0.9, 0.0) == pytest.approx(np.log(9.0))
    assert chk.score(1.0, 0.0) == pytest.approx(np.log((1 - 1e-4) / 1e-4))  # clipped, finite
    assert chk.score(0.2, 0.6) > chk.score(0.2, 0.5)


def test_the_rule_drops_unlikely_hands_swaps_by_the_margin_and_takes_a_plain_weak_hand():
    class Fixed:  # pick() reads only the scores
        output_names = ("p_hand",)
        manifest = None

    chk = PresenceCheck(Fixed(), margin=3.0, min_score=8.0, lone_score=17.0)
    # candidates [*hands, *alternatives]; n found hands first
    assert chk.pick(np.array([10.0, 5.0, 20.0]), 2) == (2, [])  # hand 1 dropped, the alternative wins
    assert chk.pick(np.array([10.0, 9.0, 12.0]), 2) == (0, [1])  # within the margin: the segmenter's order
    assert chk.pick(np.array([10.0, 9.0, 14.0]), 2) == (2, [1])  # the replaced hand goes, the other stays
    assert chk.pick(np.array([5.0, 4.0, 16.0, 18.0]), 2) == (3, [])  # no hand left: a plain weak one
    assert chk.pick(np.array([16.0, 16.5]), 0) == (-1, [])  # no found hand, none plain enough
    assert chk.pick(np.array([]), 0) == (-1, [])
    # an alternative under min_score never wins, however the first hand scores
    assert chk.pick(np.array([8.5, 7.9]), 1) == (0, [])
    off = PresenceCheck(Fixed(), min_score=None, lone_score=None)
    assert off.pick(np.array([-np.inf, 3.0]), 1) == (1, [])  # a hand without a crop gives way
    assert off.pick(np.array([-50.0, -48.0]), 1) == (0, [])  # nothing dropped, within the margin
    assert off.pick(np.array([30.0]), 0) == (-1, [])  # no weak hand taken


def test_the_check_puts_the_hand_before_the_object_in_front_of_it():
    engines = _engines()
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    check = PresenceCheck(engines.load_engine("presence", backend="onnxruntime", threads=1))
    for k in OBJECT_FIRST:
        s, f = _frame(k)
        found = {}
        for name, chk in (("detector", None), ("presence", check)):
            pre = PreprocessStage(cube_mm=300.0, crop_size=64, presence=chk)
            st = FrameState(
                RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics)
            )
            pre.run(st)
            found[name] = st
        assert _off_hand_mm(s, found["detector"].detection) > 100.0
        st = found["presence"]
        assert _off_hand_mm(s, st.detection) < 40.0
        # the crop is the chosen hand's own
        assert np.allclose(st.crop.com_xyz_mm, st.detection.com_xyz_mm)
        assert st.segmentation.hands[0] is st.detection
    for k in HAND_FIRST:
        s, f = _frame(k)
        pre = PreprocessStage(cube_mm=300.0, crop_size=64, presence=check)
        st = FrameState(RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics))
        pre.run(st)
        assert st.segmentation.alternatives  # there was a choice
        assert _off_hand_mm(s, st.detection) < 40.0


def _preprocessed(f, check):
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    st = FrameState(RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics))
    PreprocessStage(cube_mm=300.0, crop_size=64, presence=check).run(st)
    return st.segmentation


def test_a_fist_set_aside_as_an_object_becomes_the_second_hand():
    """The segmenter gives a first hand as convex as a jar up for a hand-shaped peak beside it; where that
    was a fist, the presence check keeps it as the second hand, and where it was an object, it does not."""
    from train.handedness.evaluate import _palm

    engine = _engines().load_engine("presence", backend="onnxruntime", threads=1)
    # the second-hand candidates off: this is the set-aside hand's rule alone (tests/test_second_candidates.py)
    check = PresenceCheck(engine, second_p_hand=None)
    never = PresenceCheck(engine, doubted_p_hand=None, second_p_hand=None)
    seg = HandSegmenter()
    for k in FIST_SET_ASIDE:
        s = HandSynthesizer(SceneConfig(camera=CAM, color=False, two_hands=True), 5151).sample_at(k)
        f = s.frame
        alone = seg.segment(f.depth_mm, f.intrinsics)
        palms = [_palm(s.joints_xyz_mm), _palm(s.other_hands[0].joints_xyz_mm)]
        assert len(alone.hands) == 1 and len(alone.doubted) == 1
        assert min(np.linalg.norm(alone.doubted[0].com_xyz_mm - q) for q in palms) < 40.0  # on a hand
        kept = _preprocessed(f, check)
        assert len(kept.hands) == 2 and kept.hands[1] is kept.doubted[0]
        assert len(_preprocessed(f, never).hands) == 1
    for k in OBJECT_SET_ASIDE:
        s = HandSynthesizer(SceneConfig(camera=CAM, color=False, scene_kind="egocentric"), 9200).sample_at(k)
        f = s.frame
        alone = seg.segment(f.depth_mm, f.intrinsics)
        assert len(alone.doubted) == 1 and _off_hand_mm(s, alone.doubted[0]) > 60.0  # not on the hand
        assert len(_preprocessed(f, check).hands) == 1


def test_only_a_two_hand_pipeline_looks_at_a_set_aside_hand():
    _engines()
    from stream.pipeline import build_pipeline

    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False, max_hands=2) as two:
        assert two.stages[0].presence.doubted_p_hand is not None
    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False, max_hands=1) as one:
        assert one.stages[0].presence.doubted_p_hand is None


def test_pipeline_has_the_check_by_default_and_not_when_told():
    _engines()
    from stream.pipeline import build_pipeline

    on = build_pipeline(backend="onnxruntime", overlay=False, warmup=False)
    off = build_pipeline(backend="onnxruntime", overlay=False, warmup=False, presence=False)
    try:
        assert isinstance(on.stages[0].presence, PresenceCheck)
        assert off.stages[0].presence is None
        s, f = _frame(OBJECT_FIRST[0])
        r_on, r_off = on.process(f), off.process(f)
        assert r_on.hand_found and r_off.hand_found
        assert _off_hand_mm(s, type("H", (), {"com_xyz_mm": r_on.com_xyz_mm})) < 40.0
        assert _off_hand_mm(s, type("H", (), {"com_xyz_mm": r_off.com_xyz_mm})) > 100.0
    finally:
        on.close()
        off.close()


def test_training_crops_are_labelled_by_where_the_candidate_lies(tmp_path):
    from train.presence.data import KINDS, PresenceCrops, make_crops

    c = make_crops(6, seed=5, subject_offset=1000)
    assert len(c) >= 6 and c.depth.shape[1:] == (64, 64)
    assert set(np.unique(c.hand)) <= {0, 1} and c.hand.sum() >= 4  # most candidates are hands
    assert np.all((c.kind >= 0) & (c.kind < len(KINDS)))
    assert np.all(c.depth <= 1.0) and np.all(c.depth >= -1.0)  # normalized: background 1, the cube -1..1
    c.save(tmp_path / "c.npz")
    back = PresenceCrops.load(tmp_path / "c.npz")
    assert np.array_equal(back.hand, c.hand) and np.array_equal(back.frame, c.frame)


def test_tracked_crops_follow_the_runtime_through_sequences():
    _engines()
    from train.presence.data import KINDS, tracked_crops

    c = tracked_crops(40, seed=5, empty_share=0.0, seq_len=20)
    # one crop a frame where the preprocess stage reports a hand (and the label is not left out)
    assert 20 <= len(c) <= 40 and c.depth.shape[1:] == (64, 64)
    assert set(np.unique(c.hand)) <= {0, 1} and c.hand.sum() >= len(c) // 2
    assert np.all(np.diff(c.frame) > 0) and c.frame.max() < 40
    assert np.all((c.kind >= 0) & (c.kind < len(KINDS)))
    empty = tracked_crops(20, seed=5, empty_share=1.0, seq_len=20)
    assert len(empty) == 0 or not empty.hand.any()  # no hand in view: whatever is tracked is not one


def test_auc_matches_a_hand_count():
    from train.presence.train import auc

    s = np.array([0.9, 0.8, 0.3, 0.3, 0.1])
    y = np.array([True, False, True, False, False])
    # positive 0.9 beats all 3 negatives; positive 0.3 beats 0.1, ties 0.3 (half), loses to 0.8: 3 + 1.5
    assert auc(s, y) == pytest.approx(4.5 / 6.0)
    assert np.isnan(auc(s, np.zeros(5, bool)))


@pytest.mark.parametrize("flag", ["--presence", "--no-presence"])
def test_run_takes_the_presence_flag(tmp_path, flag):
    _engines()
    import json

    from stream.cli import main as cli

    out = tmp_path / "r.jsonl"
    argv = [
        "run",
        "--source",
        "synthetic",
        "--max-frames",
        "3",
        "--max-hands",
        "1",
        flag,
        "--jsonl",
        str(out),
    ]
    assert cli([*argv, "--quiet"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 3 and all(r["hand_found"] for r in recs)


def _crops(n: int, seed: int) -> np.ndarray:
    """Normalized 64x64 crops of a palm-like blob with a finger-like bar off one side, at a random angle
    (background 1). Lopsided on purpose: the net turns a crop to its major axis and picks the end by the
    third moment, which a symmetric blob leaves to rounding, and then PyTorch and ONNX Runtime could pick
    different ends in the export's parity check."""
    rng = np.random.default_rng(seed)
    out = np.ones((n, 64, 64), np.float16)
    yy, xx = np.mgrid[:64, :64] - 32.0
    for k in range(n):
        t = rng.uniform(0, 2 * np.pi)
        u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
        palm = (u / rng.uniform(8, 12)) ** 2 + (v / rng.uniform(8, 12)) ** 2 < 1
        finger = (u > 0) & (u < rng.uniform(18, 26)) & (np.abs(v) < 3)
        out[k][palm | finger] = rng.uniform(-0.5, 0.5)
    return out


@pytest.mark.parametrize("recipe", ["presence", "handedness"])
def test_the_crop_classifier_recipes_train_resume_and_ship(tmp_path, recipe):
    pytest.importorskip("torch")
    import engines
    from train.handedness.data import HandednessCrops
    from train.presence.data import PresenceCrops

    n = 48
    label = (np.arange(n) % 3 == 0).astype(np.uint8)
    if recipe == "presence":
        from train.presence.train import main

        crops = PresenceCrops(
            _crops(n, 1),
            label,
            np.linspace(0.1, 0.9, n).astype(np.float32),
            np.arange(n),
            np.zeros(n, np.int8),
        )
        extra = ["--epoch-crops", "64"]
    else:
        from train.handedness.train import main

        crops = HandednessCrops(_crops(n, 1), label, np.arange(n, dtype=np.int32))
        extra = []
    crops.save(tmp_path / "c.npz")
    ck = tmp_path / "ck"
    args = ["--train", str(tmp_path / "c.npz"), "--test", str(tmp_path / "c.npz"), "--out", str(ck)]
    assert (
        main([*args, "--minutes", "0.001", "--batch", "16", *extra]) == 0
    )  # one epoch: the budget is checked before each
    import torch

    first = torch.load(ck / f"{recipe}.pt", weights_only=False)
    assert first["epoch"] >= 1 and (ck / "epoch-001.pt").is_file()
    assert main([*args, "--minutes", "0.02", "--batch", "16", *extra]) == 0  # resumed, not restarted
    then = torch.load(ck / f"{recipe}.pt", weights_only=False)
    assert then["epoch"] > first["epoch"] and then["train_s"] > first["train_s"]
    out = tmp_path / "engine"
    assert (
        main(["--ship", str(ck / f"{recipe}.pt"), "--test", str(tmp_path / "c.npz"), "--out", str(out)]) == 0
    )
    e = engines.load_engine(str(out / f"{recipe}.onnx"), backend="onnxruntime", threads=1)
    p = e.infer(crops.depth[:1].astype(np.float32)[:, None])[e.output_names[0]]
    assert p.shape == (1, 1) and 0.0 <= float(p.flat[0]) <= 1.0


def test_a_track_is_judged_by_its_mean_over_the_frames_checked():
    from stream.hands.presence import TrackPresence

    scores = iter([4.0, -9.0, 1.0, -2.0, 7.0])
    asked = []

    def now() -> float:
        asked.append(True)
        return next(scores)

    t = TrackPresence(every=2)
    # checked on the track's first frame and every 2nd after it: frames 0, 2, 4
    means = [t.update(k == 0, now) for k in range(5)]
    assert len(asked) == 3
    assert means == pytest.approx([4.0, 4.0, -2.5, -2.5, (4.0 - 9.0 + 1.0) / 3])
    # a new track starts over
    assert t.update(True, now) == pytest.approx(-2.0)
    with pytest.raises(ValueError):
        TrackPresence(every=0)


def test_a_tracked_object_is_let_go_and_a_tracked_hand_kept():
    """The preprocess stage with a floor on the track's presence, through generator sequences: the same
    scenes with and without the hand in view."""
    engines = _engines()
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    def reported(check, hands_visible: bool) -> int:
        pre = PreprocessStage(cube_mm=300.0, crop_size=64, presence=check)
        cfg = SceneConfig(camera=CAM, color=False, scene_kind="frontal", hands_visible=hands_visible)
        n = 0
        for s in HandSynthesizer(cfg, TRACK_SEED).sequence(60):
            st = FrameState(RGBDFrame(0, 0.0, s.frame.depth_mm, s.frame.intrinsics))
            pre.run(st)
            n += st.crop is not None
        return n

    eng = engines.load_engine("presence", backend="onnxruntime", threads=1)
    plain, floor = PresenceCheck(eng, track_floor=None), PresenceCheck(eng)  # the floor is on by default
    assert floor.track_floor is not None
    assert reported(plain, True) == reported(floor, True) == 60
    empty_plain, empty_floor = reported(plain, False), reported(floor, False)
    # with no hand in view the detector tracks the person's body, a box, a ball; the floor lets them go
    assert empty_plain >= 40 and empty_floor <= empty_plain // 2


def test_the_real_nyu_hand_is_kept_by_the_check_of_tracked_hands(nyu_dir):
    """The presence engine has seen only generated hands and gives the real NYU hand P(hand) under 0.01; the
    detector's strong peak on it keeps the track (the floor's score weighs the peak in)."""
    engines = _engines()
    from stream.depth_io import read_depth
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    depth = read_depth(nyu_dir / "depth_1_0000001.png", "nyu")
    check = PresenceCheck(engines.load_engine("presence", backend="onnxruntime", threads=1))
    pre = PreprocessStage(cube_mm=300.0, crop_size=64, presence=check)
    kept = 0
    for k in range(13):  # the first frame and two checks after it
        st = FrameState(RGBDFrame(k, 0.0, depth, KNOWN_CAMERAS["nyu"]))
        pre.run(st)
        kept += st.crop is not None
    assert kept == 13
    assert check.track_score(st.crop.depth, st.detection.confidence) > check.track_floor
