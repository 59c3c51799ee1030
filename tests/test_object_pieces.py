"""A held object left out of the learned mask (segment/pieces.drop_object_pieces): a hand gripping a bottle,
cup or box lies in the object's depth band, the detector's coarse mask covers both, and the centre falls on
the object. Checked on drawn masks and on a generated desk sequence with the real detector engine."""

from __future__ import annotations

import numpy as np

from stream.preprocess import HandSegmenter, SegmenterConfig
from stream.preprocess.segment.pieces import drop_object_pieces

JUMP, LOGIT, MIN_PX = 8.0, 0.0, 200


def _grip(step_mm: float, object_logit: float = -1.5, object_px: tuple[int, int] = (30, 30)):
    """A 40x80 frame: "fingers" (40x30 pixels at 300 mm, logit 4) beside an "object" of `object_px` pixels
    lying `step_mm` behind them (logit `object_logit`), nothing elsewhere."""
    depth = np.zeros((40, 80), np.uint16)
    logits = np.full((40, 80), -6.0, np.float32)
    depth[5:35, 5:45] = 300
    logits[5:35, 5:45] = 4.0
    h, w = object_px
    depth[5 : 5 + h, 45 : 45 + w] = 300 + int(step_mm)
    logits[5 : 5 + h, 45 : 45 + w] = object_logit
    m8 = np.where(depth > 0, np.uint8(255), np.uint8(0))
    return m8, depth, logits


def test_the_object_piece_goes_and_the_fingers_stay():
    m8, depth, logits = _grip(step_mm=20.0)
    out = drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX)
    assert out is not m8
    assert np.count_nonzero(out[:, 45:]) <= 4  # the object and the cut line along it, but for its corners
    assert out[5:35, 5:45].all()  # the fingers
    assert m8[5:35, 45:75].all()  # the input is left as it was


def test_pieces_are_kept_without_a_depth_step_small_confident_or_alone():
    m8, depth, logits = _grip(step_mm=3.0)  # the object's surface continues the fingers': one piece
    assert drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX) is m8
    m8, depth, logits = _grip(step_mm=20.0, object_px=(10, 10))  # under MIN_PX pixels
    assert drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX) is m8
    m8, depth, logits = _grip(step_mm=20.0, object_logit=1.0)  # the detector calls it hand
    assert drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX) is m8
    m8, depth, logits = _grip(step_mm=20.0)
    logits[:] = -1.5  # every piece low: dropping would leave nothing
    assert drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX) is m8


def test_float_depth_gives_the_same_cut():
    m8, depth, logits = _grip(step_mm=20.0)
    a = drop_object_pieces(m8, depth, logits, JUMP, LOGIT, MIN_PX)
    b = drop_object_pieces(m8, depth.astype(np.float32), logits, JUMP, LOGIT, MIN_PX)
    assert np.array_equal(a, b)


def test_a_tracked_hand_gripping_a_bottle_stays_on_the_hand():
    """Tuning seed 9300's second desk sequence (frames 70-99): a hand grips a bottle at ~270 mm, the
    detector's mask covers the bottle too (40-50 % of it) and, tracked, the centre falls on the bottle in
    most frames from frame 79. With the bottle's piece left out it stays on the hand in most of them (the
    case the rule was built for; it is off by default, see config.py)."""
    from stream.frames import KNOWN_CAMERAS
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import SEQUENCE_LENGTH, on_hand, scene_frames, truth_hands

    alone = _Alone(KNOWN_CAMERAS["d435_320x240"])
    segs = {
        "on": HandSegmenter(SegmenterConfig(method="learned", max_hands=1, object_piece_logit=LOGIT)),
        "off": HandSegmenter(SegmenterConfig(method="learned", max_hands=1)),
    }
    prev = dict.fromkeys(segs)
    on_the_hand = dict.fromkeys(segs, 0)
    frames = scene_frames("desk", 100, 9300, "d435_320x240", False, SEQUENCE_LENGTH)
    for i, (_, s) in enumerate(frames):
        if i < 70:
            continue
        t = truth_hands(s, alone)[0]
        for k, seg in segs.items():
            r = seg.segment(s.frame.depth_mm, s.frame.intrinsics, prev[k])
            prev[k] = r
            on_the_hand[k] += bool(r.found and on_hand(r.best.com_xyz_mm, t, s.frame.intrinsics))
    assert on_the_hand["off"] <= 16  # the case (14 of 30 when measured)
    assert on_the_hand["on"] >= on_the_hand["off"] + 7  # 24 when measured


def test_the_compiled_kernel_gives_the_numpy_reference_on_real_masks(monkeypatch):
    """`piece_kernels.object_pieces_kernel` against `object_pieces_numpy`, through `drop_object_pieces`, on
    the masks the learned path passes on generated desk, egocentric and frontal sequences at 320x240 and
    640x480 (every pixel, and every second one: strided views of the frame), uint16 and float32 depth; a
    few dozen of them acted on."""
    from stream.frames import KNOWN_CAMERAS
    from stream.preprocess.segment import pieces, refine
    from stream.synth import HandSynthesizer, SceneConfig

    assert pieces.compile_piece_kernels()
    calls = []
    real = refine.drop_object_pieces

    def recording(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(refine, "drop_object_pieces", recording)
    seg = HandSegmenter(SegmenterConfig(method="learned", object_piece_logit=LOGIT))
    for kind, cam, seed in (
        ("desk", "d435_320x240", 3),
        ("egocentric", "d435_320x240", 0),
        ("frontal", "d435_640x480", 2),
    ):
        syn = HandSynthesizer(SceneConfig(scene_kind=kind, color=False, camera=KNOWN_CAMERAS[cam]), seed)
        prev = None
        for s in syn.sequence(20):  # tracked, as the runtime segments a stream
            f = s.frame
            r = seg.segment(f.depth_mm, f.intrinsics, prev)
            seg.segment(f.depth_mm.astype(np.float32), f.intrinsics, prev)
            prev = r if r.found else None
    assert {c[1].dtype for c in calls} == {np.dtype(np.uint16), np.dtype(np.float32)}
    assert {c[6] for c in calls} == {1, 2}
    acted = 0
    for m8, depth, logits, jump, low, min_px, step in calls:
        fast = real(m8, depth, logits, jump, low, min_px, step)
        slow = real(m8, depth, logits, jump, low, min_px, step, False)
        np.testing.assert_array_equal(fast, slow)
        acted += fast is not m8
    assert acted >= 10


def test_the_rule_is_off_by_default_and_its_sizes_are_checked(monkeypatch):
    """Off by default (it trusts the detector's logits, which on unsure close-range hands favour the object):
    the learned path does not call it then."""
    import pytest

    from stream.errors import InputError
    from stream.preprocess.segment import refine

    assert SegmenterConfig().object_piece_logit <= -1e9
    called = []
    monkeypatch.setattr(refine, "drop_object_pieces", lambda *a: called.append(a) or a[0])
    from stream.synth import HandSynthesizer, SceneConfig

    f = HandSynthesizer(SceneConfig(scene_kind="desk", color=False), 3).sample_at(0).frame
    assert HandSegmenter(SegmenterConfig(method="learned")).segment(f.depth_mm, f.intrinsics).found
    assert not called
    assert (
        HandSegmenter(SegmenterConfig(method="learned", object_piece_logit=LOGIT))
        .segment(f.depth_mm, f.intrinsics)
        .found
    )
    assert called
    with pytest.raises(InputError, match="object_piece_work_width_px"):
        SegmenterConfig(object_piece_work_width_px=0)
    with pytest.raises(InputError, match="object_piece_min_px"):
        SegmenterConfig(object_piece_min_px=0)
