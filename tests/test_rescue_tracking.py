"""The rescue detector in tracking: a tracked close-range hand the main detector loses is kept where the rescue
detector still sees it (`SegmenterConfig.rescue_keeps_track`), and a track the presence check doubts is handed
to a rescue candidate it calls a hand (`PresenceCheck.rescue_below`, the preprocess stage)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import engines
from stream.frames import KNOWN_CAMERAS, RGBDFrame
from stream.preprocess import HandSegmenter, SegmenterConfig
from stream.preprocess.segment.config import Segmentation
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]
# independent egocentric frames where, with last frame's hand at one of the rescue detector's candidates
# (within 45 mm of the palm), the main detector's tracked first hand lies over 60 mm off the palm
LOST = (
    ("egocentric", 9200, 69),
    ("egocentric", 9300, 33),
    ("egocentric", 9400, 51),
    ("egocentric", 9400, 77),
    ("egocentric", 9500, 49),
    ("egocentric", 9500, 68),
)


def _shipped() -> None:
    shipped = engines.shipped_engines()
    for name in ("detector_close", "presence"):
        if name not in shipped:
            pytest.skip(f"no {name} engine shipped in engines/default")


def _frame(kind: str, seed: int, k: int):
    from train.handedness.evaluate import _palm

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False, scene_kind=kind), seed).sample_at(k)
    return s.frame, _palm(s.joints_xyz_mm)


def test_a_tracked_hand_the_main_detector_loses_is_kept_where_the_rescue_detector_sees_it():
    _shipped()
    # the look-behind's tracking rule (`behind_keeps_track`) keeps one of these frames on its own: off, to
    # judge this rule alone
    base = SegmenterConfig(method="learned", behind_keeps_track=False)
    keeps, lets_go = HandSegmenter(base), HandSegmenter(replace(base, rescue_keeps_track=False))
    assert SegmenterConfig().rescue_keeps_track
    for kind, seed, k in LOST:
        f, palm = _frame(kind, seed, k)
        near = [
            h
            for h in keeps.rescue_candidates(f.depth_mm, f.intrinsics)
            if np.linalg.norm(h.com_xyz_mm - palm) < 45
        ]
        assert near, (seed, k)
        prev = Segmentation(hands=(near[0],))  # last frame's hand, where it is
        a = lets_go.segment(f.depth_mm, f.intrinsics, prev)
        b = keeps.segment(f.depth_mm, f.intrinsics, prev)
        assert a.found and np.linalg.norm(a.hands[0].com_xyz_mm - palm) > 60.0, (seed, k)  # the track jumps
        assert b.found and b.debug.get("rescue"), (seed, k)
        assert np.linalg.norm(b.hands[0].com_xyz_mm - palm) < 45.0, (seed, k)


def test_a_doubted_track_is_handed_to_a_rescue_candidate_the_presence_check_calls_a_hand():
    """A tracked first hand whose P(hand) on a checked frame is under `rescue_below` is doubted: the rescue
    detector's candidates are cut and one the presence engine calls a hand, far from it, becomes the hand.
    Here the segmenter tracks a patch of the table (a stand-in for a track started on an object) and its
    rescue detector offers the real hand, as the real segmenter finds it; the presence engine is real."""
    from stream.hands.presence import PresenceCheck
    from stream.stages import FrameState, PreprocessStage

    _shipped()
    f, palm = _frame(*LOST[1])
    hand = [
        h
        for h in HandSegmenter().rescue_candidates(f.depth_mm, f.intrinsics)
        if np.linalg.norm(h.com_xyz_mm - palm) < 45
    ][0]
    real = HandSegmenter().segment(f.depth_mm, f.intrinsics)

    class OnTheTable(HandSegmenter):
        def segment(self, depth_mm, intr, prev=None, **kw):
            h, w = depth_mm.shape
            yy, xx = np.mgrid[:h, :w]
            u, v = 40, h - 40  # a patch of the table's near edge, far from the hand
            mask = ((xx - u) ** 2 + (yy - v) ** 2 < 15**2) & (depth_mm > 0)
            z = float(np.median(depth_mm[mask]))
            com = np.array([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z])
            table = replace(
                hand, mask=mask, com_xyz_mm=com, com_uvd=np.array([u, v, z], float), confidence=0.5
            )
            return replace(real, hands=(table,), alternatives=(), doubted=(), second_candidates=())

        def rescue_candidates(self, depth_mm, intr):
            return (hand,)

    engine = engines.load_engine("presence", backend="onnxruntime", threads=1)
    check = PresenceCheck(engine, track_every=1, track_floor=-1e9, doubted_p_hand=None, second_p_hand=None)
    check.rescue_below, check.rescue_p_hand = 0.1, 0.9
    stage = PreprocessStage(cube_mm=300.0, segmenter=OnTheTable(), presence=check)
    first, second = (FrameState(RGBDFrame(i, 0.0, f.depth_mm, f.intrinsics)) for i in range(2))
    stage.run(first)  # a new track: not doubted
    assert np.linalg.norm(first.detection.com_xyz_mm - hand.com_xyz_mm) > 80.0
    stage.run(second)  # tracked, doubted: the rescue detector's hand takes its place
    np.testing.assert_allclose(second.detection.com_xyz_mm, hand.com_xyz_mm)
    assert second.segmentation.hands == (hand,) and stage._prev is second.segmentation
    check.rescue_below = None  # never doubted: the table patch stays
    stage.reset()
    for i in range(2):
        st = FrameState(RGBDFrame(i, 0.0, f.depth_mm, f.intrinsics))
        stage.run(st)
    assert np.linalg.norm(st.detection.com_xyz_mm - hand.com_xyz_mm) > 80.0
    engine.close()


def test_the_first_hand_lost_beside_a_second_one_is_kept_where_the_rescue_detector_sees_it():
    """Egocentric seed 9800, first sequence: the hand at 250-280 mm, too close for the main detector. From
    frame 24 the segmenter, tracking, holds two hands: the hand (by the rescue detector) and a spurious one at
    the table's depth. At frame 25 the main detector sees only the spurious one; the first hand is kept where
    the rescue detector still sees it (before, with two previous hands, the spurious one became the first)."""
    from train.eval_synthetic import scene_frames
    from train.handedness.evaluate import _palm

    _shipped()
    samples = [s for _, s in scene_frames("egocentric", 26, 9800, "d435_320x240", False, 60)]
    seg = HandSegmenter(SegmenterConfig(method="learned"))
    prev = None
    for s in samples[:25]:
        prev = seg.segment(s.frame.depth_mm, s.frame.intrinsics, prev)
    assert len(prev.hands) == 2
    f, palm = samples[25].frame, _palm(samples[25].joints_xyz_mm)
    assert np.linalg.norm(prev.hands[0].com_xyz_mm - palm) < 45.0
    assert np.linalg.norm(prev.hands[1].com_xyz_mm - palm) > 100.0
    assert seg._leaves_first(Segmentation(hands=(prev.hands[1],)), [h.com_xyz_mm for h in prev.hands])
    main_only = HandSegmenter(SegmenterConfig(method="learned", rescue_keeps_track=False))
    lost = main_only.segment(f.depth_mm, f.intrinsics, prev)
    assert lost.found and np.linalg.norm(lost.hands[0].com_xyz_mm - palm) > 100.0
    now = seg.segment(f.depth_mm, f.intrinsics, prev)
    assert now.debug.get("rescue") and np.linalg.norm(now.hands[0].com_xyz_mm - palm) < 45.0
