"""Two hands in the segmenter: a mask that holds both hands is split at the other hand's peak, and a
second hand missed for a frame is still looked for at its last place."""

from __future__ import annotations

import numpy as np
import pytest

from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandSegmenter
from stream.preprocess.segment.config import HandDetection, Segmentation, SegmenterConfig
from stream.preprocess.segment.refine import split_at_peaks
from stream.preprocess.segment.tracking import lost_hands, with_lost
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]


def two_pieces() -> tuple[np.ndarray, np.ndarray]:
    """A 0/255 mask of one blob whose right half lies 100 mm behind its left half (a hand over the other
    hand's forearm), and its depth."""
    m8 = np.zeros((40, 60), np.uint8)
    m8[10:30, 5:55] = 255
    depth = np.full((40, 60), 500.0, np.float32)
    depth[:, 30:] = 600.0
    return m8, depth


def test_split_drops_the_piece_that_holds_only_the_other_peak():
    m8, depth = two_pieces()
    out = split_at_peaks(m8, depth, (10.0, 20.0), [(45.0, 20.0)], 35.0)
    assert out[20, 10] == 255 and out[20, 45] == 0
    assert out[:, 31:].max() == 0  # the cut pixels along the dropped piece go with it
    assert m8[20, 45] == 255  # the caller's mask is not written


def test_split_keeps_the_mask_without_another_peak_or_with_both_peaks_on_one_piece():
    m8, depth = two_pieces()
    assert split_at_peaks(m8, depth, (10.0, 20.0), [], 35.0) is m8
    assert split_at_peaks(m8, depth, (10.0, 20.0), [(20.0, 20.0)], 35.0) is m8  # same piece as this hand
    flat = np.full_like(depth, 500.0)
    assert split_at_peaks(m8, flat, (10.0, 20.0), [(45.0, 20.0)], 35.0) is m8  # one continuous surface
    # another peak off the mask (beyond its reach, or outside the window): nothing it could take
    assert split_at_peaks(m8, depth, (10.0, 20.0), [(45.0, 36.0), (80.0, 20.0), (-9.0, -9.0)], 35.0) is m8
    # ... and one within reach of the mask's edge still takes its piece
    assert split_at_peaks(m8, depth, (10.0, 20.0), [(45.0, 32.0)], 35.0)[20, 45] == 0


@pytest.fixture(scope="module")
def crossing_frames():
    """Frames 49-53 of a two-hand tuning sequence (seed 5151): the hands touch in view, and the first mask
    found, mostly on one hand, runs onto the other."""
    cfg = SceneConfig(camera=CAM, two_hands=True)
    return list(HandSynthesizer(cfg, 5151).sequence(54))[49:54]


def test_first_hand_mask_holds_one_hand_when_the_other_crosses_it(crossing_frames):
    def other_share(split: float) -> list[float]:
        """The share of the first mask on the hand it holds less of."""
        seg = HandSegmenter(SegmenterConfig(split_peak_presence=split))
        shares = []
        for s in crossing_frames:
            h = seg.segment(s.frame.depth_mm, s.frame.intrinsics).best
            on = [float((h.mask & m).sum() / h.mask.sum()) for m in (s.mask, s.other_hands[0].mask)]
            shares.append(min(on))
        return shares

    before, after = other_share(1.0), other_share(SegmenterConfig().split_peak_presence)
    # measured: 15-32 % of the first mask on the other hand without the split (22 % on average), 0.5-10 %
    # with it (5 % on average)
    assert np.mean(before) > 0.2 and np.mean(after) < 0.07, (before, after)
    assert all(a < b for a, b in zip(after, before)), (before, after)


def det(x: float) -> HandDetection:
    com = np.array([x, 0.0, 500.0])
    return HandDetection(np.zeros((2, 2), bool), np.array([0.0, 0.0, 500.0]), com, (0, 0, 1, 1), 0.9)


def test_a_lost_second_hand_is_remembered_for_a_few_frames():
    a, b = det(-100.0), det(100.0)
    two, one = Segmentation(hands=(a, b)), Segmentation(hands=(a,))
    lost = lost_hands(two, (), one, 120.0, 2)
    assert [(h is b, age) for h, age in lost] == [(True, 1)]
    assert [h for h in with_lost(one, lost).hands] == [a, b]
    lost = lost_hands(one, lost, one, 120.0, 2)
    assert [age for _, age in lost] == [2]
    assert lost_hands(one, lost, one, 120.0, 2) == ()  # too old
    assert lost_hands(two, (), two, 120.0, 2) == ()  # found again
    assert lost_hands(one, (), Segmentation(), 120.0, 2) == ()  # a hand alone is not remembered
    assert with_lost(None, ()) is None


def hands_apart(s, r) -> bool:
    """Two found hands, each mostly on a different generator hand."""
    if len(r.hands) != 2:
        return False
    gen = [s.mask, s.other_hands[0].mask]
    cov = [[float((h.mask & m).sum() / h.mask.sum()) for m in gen] for h in r.hands]
    return int(np.argmax(cov[0])) != int(np.argmax(cov[1])) and min(max(c) for c in cov) > 0.4


def test_a_weak_second_peak_with_a_hand_shape_is_the_second_hand():
    """Seed 5151 (a tuning seed): the left hand's peak stays under second_hand_threshold for seconds."""
    frames = list(HandSynthesizer(SceneConfig(camera=CAM, two_hands=True), 5151).sequence(30))
    found = {}
    for weak in (0.5, SegmenterConfig().weak_second_threshold):
        seg = HandSegmenter(SegmenterConfig(weak_second_threshold=weak))
        found[weak] = sum(hands_apart(s, seg.segment(s.frame.depth_mm, s.frame.intrinsics)) for s in frames)
    assert found[0.5] <= 2 and found[0.4] >= 12, found  # measured 0 and 17 of 30


def test_weak_second_peaks_add_no_hand_to_one_hand_scenes():
    synth = HandSynthesizer(SceneConfig(camera=CAM, body=True, distractors=True, forearm=True), 1)
    frames = [synth.sample_at(k) for k in range(80)]
    two = {}
    for weak in (0.5, SegmenterConfig().weak_second_threshold):
        seg = HandSegmenter(SegmenterConfig(weak_second_threshold=weak))
        two[weak] = sum(len(seg.segment(s.frame.depth_mm, s.frame.intrinsics).hands) == 2 for s in frames)
    assert two[0.4] == two[0.5], two
