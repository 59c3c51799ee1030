"""Second-hand candidates: where a second hand has room, the segmenter cuts the hands the detector does not
vouch for (a lost hand of the previous two-hand frame where it was, the weak peaks' hands), and the preprocess
stage keeps one as the second hand only when the second-hand check calls its crop a hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stream.frames import KNOWN_CAMERAS
from stream.geometry import xyz_to_uvd
from stream.preprocess import HandDetection, HandSegmenter, Segmentation, SegmenterConfig
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]
# independent frontal two-hand frames (seed 5151) where the segmenter's rules find one hand and the other
# hand's detector peak is weak (0.19-0.27): its hand is the first second-hand candidate, within 34 mm of the
# other palm, and the second-hand check keeps it
WEAK_SECOND = (71, 144, 234, 320, 349)
# independent one-hand frames (scene kind, seed, index) whose segmenter offers a second-hand candidate more
# than 80 mm from every joint (a box, a slab, a forearm) that the presence engine itself would keep
# (P(hand) >= 0.95) and the second-hand engine, fine-tuned on such candidates, refuses
OFF_HAND = (("egocentric", 9200, 115), ("egocentric", 9200, 144), ("desk", 9300, 114), ("frontal", 78, 105))


def _two(k: int):
    s = HandSynthesizer(SceneConfig(camera=CAM, color=False, two_hands=True), 5151).sample_at(k)
    return s, s.frame


def _palms(s) -> list[np.ndarray]:
    from train.handedness.evaluate import _palm

    return [_palm(s.joints_xyz_mm), _palm(s.other_hands[0].joints_xyz_mm)]


def _skip_without_detector(seg: HandSegmenter) -> None:
    if seg.detector is None:
        pytest.skip(f"no detector engine: {seg.detector_error}")


def test_a_weak_peak_on_the_other_hand_is_a_second_candidate():
    seg = HandSegmenter()
    _skip_without_detector(seg)
    off = HandSegmenter(replace(seg.config, second_candidate_presence=0.0))
    for k in WEAK_SECOND:
        s, f = _two(k)
        r = seg.segment(f.depth_mm, f.intrinsics)
        palms = _palms(s)
        assert len(r.hands) == 1 and len(r.second_candidates) == 1
        first = int(np.argmin([np.linalg.norm(r.hands[0].com_xyz_mm - q) for q in palms]))
        assert np.linalg.norm(r.second_candidates[0].com_xyz_mm - palms[1 - first]) < 40.0
        assert r.second_candidates[0].confidence < SegmenterConfig().second_hand_threshold  # weak
        assert off.segment(f.depth_mm, f.intrinsics).second_candidates == ()  # no previous hand either
        assert seg.segment(f.depth_mm, f.intrinsics, weak_seconds=False).second_candidates == ()


def test_a_lost_hand_of_the_previous_two_hand_frame_is_cut_again_where_it_was():
    """With the weak peaks off, the other hand is still offered when the previous frame had it; not when the
    previous frame had one hand, nor with `revisit_lost_hands` off. (The second hand's thresholds are raised
    so that tracking, which halves them near a previous hand, does not take the weak peak as a hand.)"""
    seg = HandSegmenter()
    _skip_without_detector(seg)
    strict = replace(seg.config, second_hand_threshold=0.95, weak_second_threshold=0.95)
    only_revisit = HandSegmenter(replace(strict, second_candidate_presence=0.0))
    neither = HandSegmenter(replace(strict, second_candidate_presence=0.0, revisit_lost_hands=False))
    for k in WEAK_SECOND:
        s, f = _two(k)
        palms = _palms(s)
        first = seg.segment(f.depth_mm, f.intrinsics).hands[0]
        other = palms[int(np.argmin([np.linalg.norm(first.com_xyz_mm - q) for q in palms])) ^ 1]
        # the previous frame's result: the same first hand and the other hand at its palm
        lost = HandDetection(
            mask=np.zeros(f.depth_mm.shape, bool),
            com_uvd=xyz_to_uvd(other, f.intrinsics),
            com_xyz_mm=other,
            bbox_xywh=(0, 0, 1, 1),
            confidence=0.9,
        )
        prev = Segmentation(hands=(first, lost))
        r = only_revisit.segment(f.depth_mm, f.intrinsics, prev)
        assert len(r.hands) == 1 and len(r.second_candidates) == 1
        assert np.linalg.norm(r.second_candidates[0].com_xyz_mm - other) < 40.0
        assert (
            only_revisit.segment(f.depth_mm, f.intrinsics, Segmentation(hands=(first,))).second_candidates
            == ()
        )
        assert neither.segment(f.depth_mm, f.intrinsics, prev).second_candidates == ()


def test_no_candidates_where_a_second_hand_has_no_room():
    seg = HandSegmenter(SegmenterConfig(max_hands=1))
    _skip_without_detector(seg)
    none = HandSegmenter(SegmenterConfig(max_second_candidates=0))
    for k in WEAK_SECOND[:2]:
        _, f = _two(k)
        assert seg.segment(f.depth_mm, f.intrinsics).second_candidates == ()
        assert none.segment(f.depth_mm, f.intrinsics).second_candidates == ()


@pytest.mark.parametrize(
    "field, value",
    [
        ("second_candidate_presence", 1.0),
        ("second_candidate_presence", -0.1),
        ("max_second_candidates", -1),
        ("max_second_candidates", 1.5),
        ("second_candidate_grow_mm", -5.0),
    ],
)
def test_bad_second_candidate_settings_are_one_line(field, value):
    from stream.errors import InputError

    with pytest.raises(InputError, match=field):
        SegmenterConfig(**{field: value})


def _checks():
    import engines

    shipped = engines.shipped_engines()
    if "presence" not in shipped or "presence_second" not in shipped:
        pytest.skip("no presence or presence_second engine shipped in engines/default")
    from stream.hands.presence import PresenceCheck

    def load(name):
        return engines.load_engine(name, backend="onnxruntime", threads=1)

    second = load("presence_second")
    return PresenceCheck(load("presence"), second_engine=second), PresenceCheck(
        load("presence"), second_p_hand=None
    )


def _preprocessed(f, check):
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    st = FrameState(RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics))
    PreprocessStage(cube_mm=300.0, crop_size=64, presence=check).run(st)
    return st.segmentation


def test_the_stage_keeps_a_candidate_the_second_hand_check_calls_a_hand():
    check, never = _checks()
    for k in WEAK_SECOND:
        s, f = _two(k)
        kept = _preprocessed(f, check)
        assert len(kept.hands) == 2 and kept.hands[1] is kept.second_candidates[0]
        assert min(np.linalg.norm(kept.hands[1].com_xyz_mm - q) for q in _palms(s)) < 40.0
        assert len(_preprocessed(f, never).hands) == 1


def test_the_second_hand_engine_refuses_candidates_off_every_hand_that_presence_would_keep():
    check, _ = _checks()
    from stream.hands.presence import PresenceCheck

    by_presence = PresenceCheck(check.engine)  # no second engine: the presence engine judges candidates
    for kind, seed, k in OFF_HAND:
        s = HandSynthesizer(SceneConfig(camera=CAM, color=False, scene_kind=kind), seed).sample_at(k)
        f = s.frame
        seg = _preprocessed(f, check)
        assert seg.second_candidates, "a candidate to refuse"
        for c in seg.second_candidates:
            assert np.linalg.norm(s.joints_xyz_mm - c.com_xyz_mm, axis=1).min() > 80.0
        assert len(seg.hands) == 1
        assert len(_preprocessed(f, by_presence).hands) == 2


def test_only_a_two_hand_pipeline_loads_the_second_hand_check():
    _checks()
    from stream.pipeline import build_pipeline

    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False, max_hands=2) as two:
        chk = two.stages[0].presence
        assert chk.second_p_hand is not None and chk.second_engine is not None
    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False, max_hands=1) as one:
        chk = one.stages[0].presence
        assert chk.second_p_hand is None and chk.second_engine is None


def test_the_second_hand_check_asks_its_own_engine_when_given():
    from stream.hands.presence import PresenceCheck

    class Fixed:
        manifest = None

        def __init__(self, p: float, name: str = "p_hand") -> None:
            self.p, self.output_names = p, (name,)

        def infer(self, x):
            assert x.shape == (1, 1, 64, 64)
            return {self.output_names[0]: np.array([[self.p]], np.float32)}

    crop = np.ones((64, 64), np.float32)
    assert PresenceCheck(Fixed(0.99)).keeps_second(crop)  # no second engine: the presence engine judges
    assert not PresenceCheck(Fixed(0.99), second_engine=Fixed(0.1, "out")).keeps_second(crop)
    assert PresenceCheck(Fixed(0.1), second_engine=Fixed(0.97, "out")).keeps_second(crop)
    assert not PresenceCheck(Fixed(0.99), second_p_hand=None).keeps_second(crop)
    assert PresenceCheck(Fixed(0.1), second_engine=Fixed(0.97)).p_hand(crop) == pytest.approx(0.1)


def test_weak_candidates_are_cut_now_and_then_in_a_one_hand_stream_and_always_near_two_hands():
    """A stream with one hand pays for the weak peaks' cuts on every `weak_second_every`-th (6th) frame only;
    within `weak_second_recent_frames` of a frame with two hands they are cut on every frame."""
    check, _ = _checks()
    from stream.frames import RGBDFrame
    from stream.hands.presence import PresenceCheck
    from stream.stages import FrameState, PreprocessStage

    class Spy:
        def __init__(self) -> None:
            self.inner, self.weak = HandSegmenter(), []

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def segment(self, *a, **kw):
            self.weak.append(kw.get("weak_seconds", True))
            return self.inner.segment(*a, **kw)

    _, f = _two(WEAK_SECOND[0])
    refuse = PresenceCheck(check.engine, second_p_hand=1.5)  # no crop reaches P(hand) 1.5
    for chk, two, want in (
        (refuse, False, [True, False, False, False, False, False, True]),
        (check, True, [True] * 7),
    ):
        spy = Spy()
        stage = PreprocessStage(cube_mm=300.0, crop_size=64, segmenter=spy, presence=chk)
        for i in range(7):
            st = FrameState(
                RGBDFrame(index=i, timestamp_ms=33.0 * i, depth_mm=f.depth_mm, intrinsics=f.intrinsics)
            )
            stage.run(st)
            assert (len(st.segmentation.hands) == 2) is two
        assert spy.weak == want


def test_second_hand_training_crops_are_labelled_candidates(tmp_path):
    _checks()
    from train.presence.data import KINDS, PresenceCrops, second_crops

    c = second_crops(240, seed=7, seq_len=60)
    # seed 7's 240 frames: two-hand and one-hand sequences, candidates on missed hands and on objects
    assert len(c) >= 20 and c.depth.shape[1:] == (64, 64)
    assert 0 < int(c.hand.sum()) < len(c)
    assert np.all(np.diff(c.frame) >= 0) and c.frame.max() < 240
    assert np.all((c.kind >= 0) & (c.kind < len(KINDS)))
    both = PresenceCrops.concat([c, c])
    assert len(both) == 2 * len(c) and np.array_equal(both.hand[len(c) :], c.hand)


def test_a_fine_tune_starts_from_the_exported_engine_exactly():
    """`train.presence.train --init`: the model loaded from the shipped presence engine gives the engine's
    P(hand), and training does not move its batch norms out of eval mode."""
    pytest.importorskip("torch")
    check, _ = _checks()
    import engines
    from train.handedness.train import create_model
    from train.presence.train import load_exported, p_hand

    model = create_model(16)
    load_exported(model, str(engines.resolve_engine_path("presence")))
    _, f = _two(WEAK_SECOND[0])
    seg = _preprocessed(f, check)
    from stream.preprocess import crop_cube

    crops = [crop_cube(f.depth_mm, f.intrinsics, h.com_xyz_mm, 300.0, 64, h.mask).depth for h in seg.hands]
    crops = np.stack(crops).astype(np.float32)
    model.train()
    assert not any(m.training for m in model.modules() if type(m).__name__ == "BatchNorm2d")
    model.eval()
    ours = p_hand(model, crops)
    theirs = np.array([check.p_hand(c) for c in crops])
    assert np.allclose(ours, theirs, atol=1e-5)
