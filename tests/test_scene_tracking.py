"""Tracking prefers the tracked hand over a hand-like candidate far behind it (segment/tracking.jump_score),
on a constructed two-candidate frame and on generated egocentric sequences, with the real detector engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stream.preprocess import HandSegmenter, SegmenterConfig
from stream.preprocess.segment import HandDetection, Segmentation
from stream.preprocess.segment.tracking import far_behind, jump_score
from stream.synth import HandSynthesizer, SceneConfig
from stream.synth.hand import GESTURE_POSES_DEG, GESTURES_FINE, hand_shape
from stream.synth.scene import HandState


def test_jump_score_penalizes_only_far_behind_the_tracked_hand():
    prev = [np.array([0.0, 0.0, 400.0])]
    assert jump_score(0.6, np.array([0.0, 0.0, 300.0]), prev, 150.0, 100.0) == 0.6  # in front
    assert jump_score(0.6, np.array([0.0, 0.0, 540.0]), prev, 150.0, 100.0) == 0.6  # within the jump
    assert jump_score(0.6, np.array([0.0, 0.0, 950.0]), prev, 150.0, 100.0) == pytest.approx(0.6 / 5.0)
    assert jump_score(0.6, np.array([0.0, 0.0, 950.0]), [], 150.0, 100.0) == 0.6  # nothing tracked
    assert jump_score(0.6, np.array([0.0, 0.0, 950.0]), prev, 0.0, 100.0) == 0.6  # off


def test_far_behind_is_measured_from_the_farthest_previous_hand():
    prev = [np.array([0.0, 0.0, 400.0]), np.array([0.0, 0.0, 600.0])]
    assert far_behind(np.array([0.0, 0.0, 750.0]), prev, 100.0)
    assert not far_behind(np.array([0.0, 0.0, 650.0]), prev, 100.0)  # not behind the farther hand
    assert not far_behind(np.array([0.0, 0.0, 750.0]), [], 100.0)  # nothing tracked
    assert not far_behind(np.array([0.0, 0.0, 750.0]), prev, 0.0)  # off


def test_look_behind_does_not_carry_a_tracked_hand_far_behind_it():
    """Egocentric seed 9500, frames 102-103 of its second sequence: a hand gripping a cup 300 mm away. The
    hand and cup are as convex as an occluder, so look_behind cuts what lies behind: a sliver of the table at
    the hand's edge, 570 mm away. Tracked, the hand stays where it was (`behind_keeps_track`)."""
    from train.eval_synthetic import scene_frames
    from train.handedness.evaluate import _palm

    samples = [s for _, s in scene_frames("egocentric", 104, 9500, "d435_320x240", False, 60)]
    base = SegmenterConfig(method="learned")
    assert base.behind_keeps_track
    f0, f1 = samples[102].frame, samples[103].frame
    palm = _palm(samples[103].joints_xyz_mm)
    found = {}
    for keep in (True, False):
        seg = HandSegmenter(replace(base, behind_keeps_track=keep))
        prev = seg.segment(f0.depth_mm, f0.intrinsics, None)
        assert prev.found and np.linalg.norm(prev.best.com_xyz_mm - palm) < 50.0
        found[keep] = seg.segment(f1.depth_mm, f1.intrinsics, prev).best.com_xyz_mm
    assert found[False][2] > palm[2] + 200.0  # without the rule: the table behind the hand
    assert np.linalg.norm(found[True] - palm) < 50.0


def _hand_frame(syn: HandSynthesizer, center, gesture: str, roll_off: float, theta: float):
    """One rendered hand (no distractors) at a given place and pose, its forearm from below."""
    shape = hand_shape(5)
    pose = GESTURE_POSES_DEG[gesture].copy()
    st = HandState(np.array(center, float), -90.0, theta, 0.0, 0.0, 0.0, pose, GESTURES_FINE.index(gesture))
    st = HandState(
        st.center_mm, -90.0, theta, syn._palm_facing_roll(st) + roll_off, 0.0, 0.0, pose, st.gesture
    )
    ctx = syn._context(np.random.default_rng(0), shape, st, None)
    return syn._render(
        np.random.default_rng(1), shape, st, ctx, None, sequence=0, frame_index=0, timestamp_ms=0.0
    )


def test_tracking_keeps_the_near_hand_over_a_stronger_candidate_far_behind():
    syn = HandSynthesizer(SceneConfig(body=False, distractors=False, color=False), 0)
    # the tracked hand: a fist showing its back at 330 mm; behind it at 900 mm an open palm, which the
    # detector finds more hand-like (the way it fires on a bottle or jar on a table behind the hand)
    near = _hand_frame(syn, [-70.0, 10.0, 330.0], "fist", 180.0, 60.0)
    far = _hand_frame(syn, [110.0, -20.0, 900.0], "open_palm", 0.0, 20.0)
    keep = near.mask | (near.frame.meta["z_clean_mm"] < 600.0)
    depth = np.where(keep, near.frame.depth_mm, far.frame.depth_mm)
    intr = near.frame.intrinsics
    seg = HandSegmenter(SegmenterConfig(method="learned", max_hands=1))
    out = seg.detector.run(depth, 10000.0)
    peaks = seg.detector.peaks(out, 0.2, 4)
    near_peak = max(p.score for p in peaks if p.frame_uv[0] < intr.width / 2)
    far_peak = max(p.score for p in peaks if p.frame_uv[0] >= intr.width / 2)
    assert far_peak > near_peak >= 0.4  # the case: both pass on their own, the far one is stronger

    untracked = seg.segment(depth, intr)
    assert untracked.found and untracked.best.com_xyz_mm[2] > 800.0  # alone, the far one wins
    palm = near.joints_xyz_mm[[0, 5, 9, 13, 17]].mean(axis=0).astype(np.float64)
    prev = Segmentation(hands=(HandDetection(near.mask, np.zeros(3), palm, (0, 0, 1, 1), 0.5),))
    tracked = seg.segment(depth, intr, prev)
    assert tracked.found and np.linalg.norm(tracked.best.com_xyz_mm - palm) < 80.0
    # without the depth-jump rule the tracked hand would be traded for the far candidate, unless the rescue
    # detector, asked where the track would leave its lone hand, still sees it there
    off = HandSegmenter(
        SegmenterConfig(method="learned", max_hands=1, track_jump_mm=0.0, rescue_keeps_track=False)
    )
    assert off.segment(depth, intr, prev).best.com_xyz_mm[2] > 800.0
    rescued = HandSegmenter(SegmenterConfig(method="learned", max_hands=1, track_jump_mm=0.0))
    kept = rescued.segment(depth, intr, prev)
    assert kept.debug.get("rescue") and np.linalg.norm(kept.best.com_xyz_mm - palm) < 80.0
    # the hand gone (no previous hand): the far candidate is found again, nothing is suppressed for good
    assert seg.segment(far.frame.depth_mm, intr, None).found


def _track(seg: HandSegmenter, seed: int) -> tuple[int, int, int]:
    """(frames with a visible hand, of which found on something else, jumps of the result > 300 mm back
    from a previous result on the hand) over two tracked egocentric sequences of 45 frames."""
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import on_hand, truth_hands

    syn = HandSynthesizer(SceneConfig(scene_kind="egocentric", color=False), seed)
    alone = _Alone(syn.config.camera)
    visible = wrong = jumps = 0
    for _ in range(2):
        prev = None
        for s in syn.sequence(45):
            t = truth_hands(s, alone)[0]
            intr = s.frame.intrinsics
            r = seg.segment(s.frame.depth_mm, intr, prev)
            if t.visible:
                visible += 1
                wrong += bool(r.found and not on_hand(r.best.com_xyz_mm, t, intr))
                if r.found and prev is not None and on_hand(prev.best.com_xyz_mm, t, intr):
                    jumps += bool(r.best.com_xyz_mm[2] > prev.best.com_xyz_mm[2] + 300.0)
            prev = r if r.found else None
    return visible, wrong, jumps


def test_tracking_through_a_generated_egocentric_sequence_stays_on_the_hand():
    # seed 3: a hand holding a bottle over a table with a jar 130-150 mm behind it that the detector scores
    # about as high as the hand (the shipped detector took the jar in 33 of 86 frames without the rule)
    on = _track(HandSegmenter(SegmenterConfig(method="learned")), 3)
    off = _track(HandSegmenter(SegmenterConfig(method="learned", track_jump_mm=0.0)), 3)
    assert on[0] == off[0] >= 60
    assert on[2] == 0  # never moved from the hand to something far behind it
    assert on[1] <= off[1] and on[1] <= 0.15 * on[0]


def test_a_convex_object_beside_the_hand_gives_way_to_the_hand_shaped_peak():
    """Egocentric frame 158 of seed 9200 (found by comparing the rule on and off over 300 frames): the
    strongest peak sits on a table object beside the hand; its mask is convex, the hand's peak gives a mask
    with fingers, and the segmenter takes the hand."""
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import on_hand, truth_hands, what_is_at

    syn = HandSynthesizer(SceneConfig(scene_kind="egocentric", color=False), 9200)
    s = syn.sample_at(158)
    t = truth_hands(s, _Alone(syn.config.camera))[0]
    intr = s.frame.intrinsics
    off = HandSegmenter(SegmenterConfig(method="learned", object_solidity=1.0)).segment(
        s.frame.depth_mm, intr
    )
    assert off.found and not on_hand(off.best.com_xyz_mm, t, intr)
    assert what_is_at(s, off.best.com_xyz_mm) == "object"
    on = HandSegmenter(SegmenterConfig(method="learned")).segment(s.frame.depth_mm, intr)
    assert on.found and on_hand(on.best.com_xyz_mm, t, intr)


def _wrong_in_first_sequence(seg: HandSegmenter, seed: int, frames: int) -> tuple[int, int, int]:
    """(frames with a visible hand, found on it, found on something else) over the first tracked egocentric
    sequence of a generator seed."""
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import on_hand, truth_hands

    syn = HandSynthesizer(SceneConfig(scene_kind="egocentric", color=False), seed)
    alone = _Alone(syn.config.camera)
    visible = found = wrong = 0
    prev = None
    for s in syn.sequence(frames):
        t = truth_hands(s, alone)[0]
        intr = s.frame.intrinsics
        r = seg.segment(s.frame.depth_mm, intr, prev)
        if t.visible and r.found:
            ok = on_hand(r.best.com_xyz_mm, t, intr)
            found += ok
            wrong += not ok
        visible += t.visible
        prev = r if r.found else None
    return visible, found, wrong


def test_a_hand_taken_from_behind_an_object_gives_way_to_the_hand_shaped_peak_beside_it():
    """Seed 9200's first egocentric sequence: a convex table object beside the hand, at its depth, scores
    above the hand; look_behind takes it for an occluder and finds a jar on the table behind it. Without
    verifying that choice the track stays on the table for a third of the sequence; with it (a hand-shaped
    peak beside the object wins) it stays on the hand. The rescue detector's keeping of a lone track
    (`rescue_keeps_track`) mends most of these frames too, and a tracked hand is not carried far behind it
    (`behind_keeps_track`); both are off here, to judge the check alone."""
    alone = SegmenterConfig(method="learned", max_hands=1, rescue_keeps_track=False, behind_keeps_track=False)
    on = _wrong_in_first_sequence(HandSegmenter(alone), 9200, 60)
    off = _wrong_in_first_sequence(HandSegmenter(replace(alone, behind_verify=False)), 9200, 60)
    assert on[0] == off[0] >= 50
    assert off[2] >= 10  # the case: the table object and the jar behind it held the track
    assert on[2] <= 3 and on[1] >= off[1] + 8
    default = _wrong_in_first_sequence(
        HandSegmenter(SegmenterConfig(method="learned", max_hands=1)), 9200, 60
    )
    assert default[2] <= 3
