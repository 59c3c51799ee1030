"""The rescue detector: a second detector engine, trained mostly on close-range scenes, that the segmenter asks
only where the shipped detector's peaks make no hand (`SegmenterConfig.rescue_detector_engine`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandSegmenter, SegmenterConfig
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]
RESCUE = "detector_close"
# independent egocentric frames (seed 9200) where the shipped detector's peaks make no hand (the classic
# fallback's guess, if any, lies 59-66 mm off the palm) and the rescue detector finds the hand (13-29 mm)
RESCUED = (15, 21, 34, 54, 57)


def _rescue_shipped() -> None:
    import engines

    if RESCUE not in engines.shipped_engines():
        pytest.skip(f"no {RESCUE} engine shipped in engines/default")


def _segmenters() -> tuple[HandSegmenter, HandSegmenter]:
    base = SegmenterConfig(method="learned")
    return (
        HandSegmenter(replace(base, rescue_detector_engine="")),
        HandSegmenter(replace(base, rescue_detector_engine=RESCUE)),
    )


def test_the_rescue_finds_close_range_hands_the_detector_does_not_see():
    from train.handedness.evaluate import _palm

    _rescue_shipped()
    plain, rescued = _segmenters()
    synth = HandSynthesizer(SceneConfig(camera=CAM, color=False, scene_kind="egocentric"), 9200)
    for k in RESCUED:
        s = synth.sample_at(k)
        f, palm = s.frame, _palm(s.joints_xyz_mm)
        a = plain.segment(f.depth_mm, f.intrinsics)
        b = rescued.segment(f.depth_mm, f.intrinsics)
        assert not a.found or a.debug.get("fallback") == "classic"
        assert not a.found or np.linalg.norm(a.hands[0].com_xyz_mm - palm) > 45.0
        assert b.found and b.debug.get("rescue")
        assert np.linalg.norm(b.hands[0].com_xyz_mm - palm) < 45.0


class _Counting:
    """A detector that counts its runs."""

    def __init__(self, inner) -> None:
        self.inner, self.runs = inner, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, *args, **kw):
        self.runs += 1
        return self.inner.run(*args, **kw)


def test_the_rescue_runs_only_where_the_detector_finds_no_hand():
    """A frame where the shipped detector finds a hand costs nothing more, and its result is unchanged."""
    _rescue_shipped()
    plain, rescued = _segmenters()
    counting = rescued.rescue = _Counting(rescued.rescue)
    misses = 0
    for kind, seed in (("frontal", 78), ("egocentric", 9200)):
        synth = HandSynthesizer(SceneConfig(camera=CAM, color=False, scene_kind=kind), seed)
        for k in range(12):
            f = synth.sample_at(k).frame
            a = plain.segment(f.depth_mm, f.intrinsics)
            before = counting.runs
            b = rescued.segment(f.depth_mm, f.intrinsics)
            learned = a.found and not a.debug.get("fallback")
            assert counting.runs - before == (0 if learned else 1)
            misses += not learned
            if learned:
                assert len(a.hands) == len(b.hands)
                for x, y in zip(a.hands, b.hands, strict=True):
                    assert np.array_equal(x.com_xyz_mm, y.com_xyz_mm) and np.array_equal(x.mask, y.mask)
    assert 0 < misses < 24  # both kinds of frame were seen


def test_the_rescue_is_off_when_not_named_and_without_the_learned_path():
    assert HandSegmenter(SegmenterConfig(rescue_detector_engine="")).rescue is None
    assert HandSegmenter(SegmenterConfig(method="classic", rescue_detector_engine=RESCUE)).rescue is None


def test_a_missing_rescue_engine_is_one_clear_line():
    with pytest.raises(InputError, match="no shipped engine named"):
        HandSegmenter(SegmenterConfig(method="learned", rescue_detector_engine="no_such_detector"))
    auto = HandSegmenter(SegmenterConfig(rescue_detector_engine="no_such_detector"))
    assert auto.method == "learned" and auto.rescue is None and "rescue detector" in auto.detector_error
    with pytest.raises(InputError, match="rescue_presence_threshold"):
        SegmenterConfig(rescue_presence_threshold=1.5)
