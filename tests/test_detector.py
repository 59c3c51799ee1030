"""The learned hand detector: the shipped engine and its manifest, what the segmenter makes of it on
synthetic frames (seeds disjoint from training), no-hand frames, the classic fallback, the letterboxed
input, and ONNX export parity through the runtime's own HandDetector."""

from __future__ import annotations

import numpy as np
import pytest

from engines.manifest import load_manifest, validate
from engines.registry import DEFAULT_DIR
from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.preprocess import HandDetector, HandSegmenter, SegmenterConfig, detector_input
from stream.preprocess.detect import DETECTOR_TASK, DetectorOutput, find_peaks, input_geometry
from stream.preprocess.segment import _peak_depth

ONNX = DEFAULT_DIR / "detector.onnx"
PALM = [0, 5, 9, 13, 17]


@pytest.fixture(scope="module")
def learned() -> HandSegmenter:
    return HandSegmenter(SegmenterConfig(method="learned"))


def test_shipped_engine_and_manifest():
    man = load_manifest(ONNX)
    validate(man, ONNX)  # sha256 of the committed ONNX matches its manifest
    assert man.task == DETECTOR_TASK
    pre = man.preprocessing
    assert (pre["input_width"], pre["input_height"], pre["output_stride"]) == (160, 120, 4)
    assert pre["depth_scale_mm"] == 1000.0 and pre["depth_clip_m"] > 1.5
    assert [t.name for t in man.outputs] == [
        "heatmap",
        "mask",
        "depth",
    ]  # depth: tells the hand from an occluder
    assert man.outputs[0].shape == (1, 1, 30, 40)
    assert man.metrics["trained"] is True
    # train/recipes/detector.py's DETECTOR_PARITY_ATOL: the mask logits reach +-30, float32 rounding ~2e-4
    assert man.export["parity_max_abs_diff"] <= 1e-3
    assert ONNX.stat().st_size < 1_000_000


def _frames(camera: str, seed: int, n: int):
    from stream.synth import HandSynthesizer, SceneConfig

    syn = HandSynthesizer(SceneConfig(camera=KNOWN_CAMERAS[camera], color=False), seed)
    return [syn.sample_at(k) for k in range(n)]


@pytest.mark.parametrize("camera", ["d435_320x240", "d435_640x480"])
def test_finds_the_hand_in_synthetic_frames(learned, camera):
    """Seed 7 (training used 500-553 and 1000-1053): frames whose hand is mostly measured."""
    hits = tried = 0
    for s in _frames(camera, 7, 8):
        gt = s.mask & (s.frame.depth_mm > 0)
        if gt.sum() < 0.6 * s.mask.sum() or s.mask.sum() < 200:
            continue
        tried += 1
        seg = learned.segment(s.frame.depth_mm, s.frame.intrinsics)
        if not seg.found:
            continue
        h = seg.hands[0]
        iou = (h.mask & gt).sum() / max((h.mask | gt).sum(), 1)
        palm = s.joints_xyz_mm[PALM].mean(axis=0)
        hits += iou >= 0.5 and np.linalg.norm(h.com_xyz_mm - palm) < 50.0
        assert 0.0 < h.confidence <= 1.0
        x, y, w, hh = h.bbox_xywh
        ys, xs = np.nonzero(h.mask)
        assert (x, y, x + w - 1, y + hh - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
    assert tried >= 5
    assert hits >= tried - 1, f"found {hits} of {tried} clearly visible hands"


def test_no_hand_frames(learned):
    intr = KNOWN_CAMERAS["d435_640x480"]
    zeros = np.zeros(intr.shape, np.uint16)
    assert learned.segment(zeros, intr).reason == "all depth missing"
    nan = np.full(intr.shape, np.nan, np.float32)
    assert learned.segment(nan, intr).reason == "all depth missing"
    far = np.full(intr.shape, 4000, np.uint16)
    assert learned.segment(far, intr).reason == "nothing in range"
    wall = np.full(intr.shape, 800.0, np.float32)
    seg = learned.segment(wall, intr)
    assert not seg.found and seg.reason == "no hand detected"
    # a tilted plane with a torso-sized box: still nothing hand-like
    v = np.arange(intr.height, dtype=np.float32)[:, None]
    scene = np.broadcast_to(900.0 + 0.5 * v, intr.shape).copy()
    scene[150:480, 200:440] = 700.0
    assert not learned.segment(scene, intr).found


def test_method_choice_and_fallback(tmp_path):
    classic = HandSegmenter(SegmenterConfig(method="classic"))
    assert classic.method == "classic" and classic.detector is None
    auto = HandSegmenter()
    assert auto.method == "learned" and auto.detector is not None
    missing = str(tmp_path / "none.onnx")
    fallback = HandSegmenter(SegmenterConfig(detector_engine=missing))
    assert fallback.method == "classic" and "not found" in fallback.detector_error
    with pytest.raises(InputError):
        HandSegmenter(SegmenterConfig(method="learned", detector_engine=missing))
    with pytest.raises(InputError):
        SegmenterConfig(method="magic")
    with pytest.raises(InputError):
        SegmenterConfig(presence_threshold=1.5)
    # the classic path still segments a generator frame
    s = _frames("d435_320x240", 7, 1)[0]
    assert classic.segment(s.frame.depth_mm, s.frame.intrinsics).reason in ("", "no hand shape", "too small")


def test_pose_engine_is_refused_as_detector():
    with pytest.raises(InputError, match="task"):
        HandDetector("pose")


def test_letterboxed_input_for_other_aspect_ratios():
    d = np.full((480, 848), 500, np.uint16)  # 16:9
    d[:, 0] = 0
    d[0, 1:] = 65000  # absurd: above max_valid_mm -> missing
    x, geo = detector_input(d, (160, 120), 1000.0, 3.0, 10000.0, 4)
    assert x.shape == (120, 160) and geo.used_wh == (160, 91)
    assert np.all(x[91:] == 0.0), "padding rows read as missing depth"
    assert np.allclose(x[1:91, 1:], 0.5)
    assert np.all(x[:, 0] == 0.0) and np.all(x[0] == 0.0)
    u, v = geo.cell_to_frame(*geo.frame_to_cell(400.0, 300.0))
    assert abs(u - 400.0) < 1e-6 and abs(v - 300.0) < 1e-6
    assert input_geometry((640, 480), (160, 120), 4).scale == 0.25


@pytest.mark.parametrize("max_valid_mm", [10000.0, 900.5, 2999.0])
def test_camera_depth_gives_the_input_its_float_copy_gives(max_valid_mm: float):
    """uint16 depth takes a shorter path (missing zeroed while still integers): the network input must be
    the one the same depth gives as float32, out-of-range and saturated values included."""
    rng = np.random.default_rng(3)
    d = rng.integers(0, 4000, (480, 640)).astype(np.uint16)
    for value in (0, 65535, 10000, 10001, 900, 901, 2999, 3000):
        d[rng.random(d.shape) < 0.02] = value
    x16, geo16 = detector_input(d, (160, 120), 1000.0, 3.0, max_valid_mm, 4)
    x32, geo32 = detector_input(d.astype(np.float32), (160, 120), 1000.0, 3.0, max_valid_mm, 4)
    assert geo16 == geo32 and x16.dtype == np.float32
    np.testing.assert_array_equal(x16, x32)
    assert 0.0 < x16.max() <= 3.0 and (x16 == 0).any()


def test_find_peaks():
    hm = np.zeros((30, 40), np.float32)
    hm[5, 6], hm[20, 30], hm[20, 31] = 0.9, 0.7, 0.6
    assert find_peaks(hm, 0.5, 4) == [(6, 5, pytest.approx(0.9)), (30, 20, pytest.approx(0.7))]
    assert find_peaks(hm, 0.95, 4) == []
    assert len(find_peaks(hm, 0.5, 1)) == 1


def _two_layer_output(pred_depth_m: float | None) -> DetectorOutput:
    """A detector output over an occluder (0.40 m, 12 input columns) beside the hand (0.60 m, 8 columns)
    in front of a 1.2 m wall, the predicted mask covering both (as the coarse 40x30 mask does)."""
    x = np.full((120, 160), 1.2, np.float32)
    x[52:72, 72:84] = 0.40
    x[52:72, 84:92] = 0.60
    logits = np.full((30, 40), -5.0, np.float32)
    logits[13:18, 18:23] = 3.0
    depth = None if pred_depth_m is None else np.full((30, 40), pred_depth_m, np.float32)
    return DetectorOutput(
        np.zeros((30, 40), np.float32), logits, x, input_geometry((320, 240), (160, 120), 4), depth
    )


def test_peak_depth_snaps_to_the_predicted_hand_surface():
    """An occluder in front of the hand: the v1 rule (median under the mask near the peak) takes the
    occluder's depth; with the engine's hand-depth output the measured surface nearest that estimate is
    taken."""
    lo, hi = 0.15, 1.5
    assert _peak_depth(_two_layer_output(None), (20, 15), lo, hi, 0.06) == pytest.approx(0.40)
    assert _peak_depth(_two_layer_output(0.62), (20, 15), lo, hi, 0.0) == pytest.approx(0.40)  # snap off
    assert _peak_depth(_two_layer_output(0.62), (20, 15), lo, hi, 0.06) == pytest.approx(0.60)
    assert _peak_depth(_two_layer_output(0.37), (20, 15), lo, hi, 0.06) == pytest.approx(0.40)
    # no measured surface near the estimate (the hand fully hidden): the v1 rule, not a made-up depth
    assert _peak_depth(_two_layer_output(0.90), (20, 15), lo, hi, 0.06) == pytest.approx(0.40)


@pytest.mark.parametrize("depth_head", [False, True])
def test_export_parity_through_the_runtime(tmp_path, depth_head):
    """An untrained detector exported with engines.export and run by HandDetector matches PyTorch (with
    and without the hand-depth output)."""
    torch = pytest.importorskip("torch")
    from engines.export import export_onnx
    from train.detector import create_detector

    torch.manual_seed(0)
    model = create_detector(width=8, deep=16, depth_head=depth_head).eval()
    s = _frames("d435_320x240", 9, 1)[0]
    x, _ = detector_input(s.frame.depth_mm)
    inputs = np.stack([x, x[:, ::-1]])[:, None].astype(np.float32)
    pre = {"input_width": 160, "input_height": 120, "output_stride": 4, "depth_scale_mm": 1000.0}
    path = export_onnx(
        model,
        tmp_path,
        "det",
        (1, 1, 120, 160),
        {"task": DETECTOR_TASK, "preprocessing": {**pre, "depth_clip_m": 3.0}},
        simplify=False,  # onnxslim is exercised by tests/test_export.py; here the runtime path matters
        parity_inputs=inputs,
        output_names=("heatmap", "mask", "depth") if depth_head else ("heatmap", "mask"),
    )
    det = HandDetector(path)
    assert det.has_depth is depth_head
    out = det.run(s.frame.depth_mm)
    with torch.inference_mode():
        res = model(torch.from_numpy(x[None, None]))
    np.testing.assert_allclose(out.heatmap, res[0][0, 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(out.mask_logits, res[1][0, 0].numpy(), atol=1e-4)
    if depth_head:
        np.testing.assert_allclose(out.hand_depth_m, res[2][0, 0].numpy(), atol=1e-4)
    else:
        assert out.hand_depth_m is None


def test_two_channel_checkpoint_loads_into_the_depth_head_model():
    """Fine-tuning the shipped (v1) detector with the depth head keeps its heatmap and mask outputs."""
    torch = pytest.importorskip("torch")
    from train.detector import create_detector

    torch.manual_seed(0)
    old = create_detector(width=8, deep=16).eval()
    new = create_detector(width=8, deep=16, depth_head=True).eval()
    new.load_two_channel(old.state_dict())
    x = torch.rand(1, 1, 120, 160)
    with torch.inference_mode():
        a, b = old(x), new(x)
    assert len(b) == 3 and b[2].shape == (1, 1, 30, 40)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


@pytest.fixture(scope="module")
def occluder_frames():
    """Pose scenes where an object always lies in front of the hand (seed 11, disjoint from the detector's
    training seeds)."""
    from dataclasses import replace

    from train.data import default_scene, synthetic_frames

    # 200 frames: with the shipped detector (BatchNorm statistics recomputed) both rules put one of the
    # first 80 on a wrong object, too few to tell them apart
    return list(synthetic_frames(200, 11, replace(default_scene(), occluder_prob=1.0)))


def _wrong_objects(seg: HandSegmenter, frames) -> int:
    """Frames whose chosen centre lies > 100 mm from the ground-truth mask centre."""
    from train.data import mask_centre

    n = 0
    for fr in frames:
        s = seg.segment(fr.depth_mm, fr.intrinsics)
        gt = mask_centre(fr)
        n += bool(s.found and gt is not None and np.linalg.norm(s.best.com_xyz_mm - gt) > 100.0)
    return n


def test_occluder_scenes_take_the_hand_surface_not_the_occluder(occluder_frames):
    """In pose scenes where an object always lies in front of the hand (seed 11, disjoint from the
    detector's training seeds), snapping each peak's depth to the engine's hand-depth estimate puts the
    centre on a wrong object (> 100 mm from the ground-truth mask centre) less often than the v1 rule
    (measured 4 vs 7 of 80 frames with the first hand-depth detector, trained on 8 k frames; 3 vs 5 with
    mask growth and the look-behind rule added; of 200 frames: 5 vs 10 with the detector trained on 32 k
    frames, 3 vs 6 with its BatchNorm statistics recomputed, the shipped one)."""
    snap = HandSegmenter()
    if snap.detector is None or not snap.detector.has_depth:
        pytest.skip("the shipped detector engine has no hand-depth output")
    v1 = HandSegmenter(SegmenterConfig(hand_depth_snap_mm=0.0, fallback_depth_gate_mm=0.0))
    wrong = {"snap": _wrong_objects(snap, occluder_frames), "v1": _wrong_objects(v1, occluder_frames)}
    assert wrong["snap"] < wrong["v1"], wrong
    assert wrong["snap"] <= 6, wrong  # of 200


def test_only_the_strongest_weak_peak_vouches_for_a_fallback_hand():
    """Frames of the tuning set (generator seed 77, default pose scene, regenerated here) where
    no peak reached the presence threshold and the classic fallback cut out an occluder or the body that
    held one of the lesser weak peaks: with every weak peak allowed to vouch (the old rule) most of them
    put the centre on that wrong object; with only the strongest one, none does (they become misses).
    The frames are five of the 14 where the two rules differ with the shipped detector (a scan of the 2000
    tuning frames; in all 14 only the old rule is wrong). The rescue detector, which is asked before the
    fallback on such frames, is off here: this is the fallback's rule."""
    from train.data import LabelledFrame, default_scene, mask_centre, subject_synthesizer

    new = HandSegmenter(SegmenterConfig(rescue_detector_engine=""))
    if new.method != "learned":
        pytest.skip("the shipped detector engine did not load")
    old = HandSegmenter(SegmenterConfig(fallback_vouch_peaks=4, rescue_detector_engine=""))
    syn = subject_synthesizer(default_scene(), 77)
    wrong = {"old": 0, "new": 0}
    for k in (193, 557, 566, 822, 903):
        s = syn.sample_at(k)
        gt = mask_centre(LabelledFrame(s.frame.depth_mm, s.frame.intrinsics, s.joints_xyz_mm, s.mask))
        for name, seg in (("old", old), ("new", new)):
            r = seg.segment(s.frame.depth_mm, s.frame.intrinsics)
            wrong[name] += bool(r.found and np.linalg.norm(r.best.com_xyz_mm - gt) > 100.0)
    assert wrong["old"] >= 3 and wrong["new"] == 0, wrong
    with pytest.raises(InputError, match="fallback_vouch_peaks"):
        SegmenterConfig(fallback_vouch_peaks=0)


def test_mask_growth_follows_the_surface_not_the_depth_edge():
    """_grow_mask: a finger the coarse mask missed is continuous in depth with the palm and is
    taken back, ring by ring, up to `steps` pixels; an object beside the palm behind a 60 mm depth edge,
    and pixels whose logit says 'not hand', are not. Beyond 8 rings it works on every other pixel."""
    from stream.preprocess.segment import _grow_mask

    depth = np.full((60, 60), 900.0, np.float32)
    depth[20:40, 20:40] = 500.0  # palm
    depth[5:20, 28:32] = np.linspace(530.0, 502.0, 15, dtype=np.float32)[:, None]  # finger, 2 mm / px
    depth[20:40, 40:55] = 560.0  # an object touching the palm, 60 mm behind it
    band8 = (((depth > 375) & (depth < 625)) * 255).astype(np.uint8)
    m8 = np.zeros((60, 60), np.uint8)
    m8[22:38, 22:38] = 255  # the coarse mask: the palm, a little short of its edges
    logits = np.zeros((60, 60), np.float32)
    before = m8.copy()
    grown = _grow_mask(m8, band8, depth, logits, 8, 15.0, -1e9) > 0
    assert (m8 == before).all()  # the caller's (core) mask is left alone
    assert grown[20:40, 20:40].all() and grown[14:20, 28:32].all() and not grown[:14].any()
    assert not grown[20:40, 40:55].any() and not grown[depth == 900.0].any()
    short = _grow_mask(m8, band8, depth, logits, 4, 15.0, -1e9) > 0
    assert short[18, 30] and not short[17, 30]  # at most 4 rings beyond the coarse mask
    far = _grow_mask(m8, band8, depth, logits, 20, 15.0, -1e9) > 0  # 20 rings: every other pixel
    assert far[6:20, 28:32].all() and far[20:40, 20:40].all()
    assert not far[20:40, 40:55].any() and not far[depth == 900.0].any()
    logits[5:20, 28:32] = -10.0
    gated = _grow_mask(m8, band8, depth, logits, 8, 15.0, -5.0) > 0
    assert not gated[5:20, 28:32].any() and gated[20:40, 20:40].all()
    assert (_grow_mask(m8, band8, depth, logits, 0, 15.0, -1e9) == m8).all()


def test_mask_growth_recovers_missed_hand_pixels():
    """On generator frames (seed 7, disjoint from training) the grown mask misses far fewer of the hand's
    measured pixels than the coarse one (~11 % -> ~4 % on the pose test set with the first hand-depth
    detector) while its centre stays on the hand; the palm anchor does not change."""
    plain = HandSegmenter(SegmenterConfig(method="learned", mask_grow_mm=0.0))
    grown = HandSegmenter(SegmenterConfig(method="learned"))
    if grown.config.mask_grow_mm <= 0:
        pytest.skip("mask growth is off by default")
    missed = {"plain": 0, "grown": 0}
    total = 0
    for s in _frames("d435_320x240", 7, 24):
        gt = s.mask & (s.frame.depth_mm > 0)
        a, b = (
            plain.segment(s.frame.depth_mm, s.frame.intrinsics),
            grown.segment(s.frame.depth_mm, s.frame.intrinsics),
        )
        if not (a.found and b.found) or gt.sum() < 200 or (a.best.mask & gt).sum() < 0.5 * gt.sum():
            continue
        total += int(gt.sum())
        missed["plain"] += int((gt & ~a.best.mask).sum())
        missed["grown"] += int((gt & ~b.best.mask).sum())
        assert np.linalg.norm(b.best.com_xyz_mm - a.best.com_xyz_mm) < 40.0
        # the palm anchor stays on the detector's own mask (growth can reach into the forearm)
        assert (a.best.palm_uvd is None and b.best.palm_uvd is None) or np.allclose(
            a.best.palm_uvd, b.best.palm_uvd
        )
    assert total > 0
    assert missed["grown"] < 0.6 * missed["plain"], missed


def test_solidity_tells_a_hand_from_a_ball_or_a_box():
    from stream.preprocess.segment import _solidity

    yy, xx = np.mgrid[:80, :80]
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 < 30**2
    box = np.zeros((80, 80), bool)
    box[10:60, 20:70] = True
    hand = np.zeros((80, 80), bool)
    hand[40:75, 15:65] = True  # palm
    for k in range(4):  # four spread fingers
        hand[5:40, 17 + 13 * k : 24 + 13 * k] = True
    sol = {}
    for name, m in (("disc", disc), ("box", box), ("hand", hand)):
        ys, xs = np.nonzero(m)
        sol[name] = _solidity(m, (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    assert sol["disc"] > 0.95 and sol["box"] > 0.95 and sol["hand"] < 0.85, sol
    assert _solidity(np.zeros((10, 10), bool), (0, 0, 10, 10)) == 1.0


def test_looking_behind_a_convex_occluder_finds_the_hidden_hand(occluder_frames):
    """Scenes where an object always lies in front of the hand (seed 11, disjoint from the detector's
    training seeds). When the chosen mask is as convex as a ball or a box, the hand is looked for again
    behind it: wrong-object centres (> 100 mm from the ground-truth mask centre) measured 6 -> 3 of the
    first 80 frames (15 -> 8 of 200) with the first hand-depth detector; of these 200: 12 -> 5 with the
    detector trained on 32 k frames, 10 -> 3 with its BatchNorm statistics recomputed (shipped)."""
    on = HandSegmenter()
    if on.detector is None or on.config.occluder_solidity >= 1.0:
        pytest.skip("no learned detector, or the look-behind rule is off by default")
    off = HandSegmenter(SegmenterConfig(occluder_solidity=1.0))
    wrong = {"on": _wrong_objects(on, occluder_frames), "off": _wrong_objects(off, occluder_frames)}
    assert wrong["on"] < wrong["off"] and wrong["on"] <= 6, wrong  # of 200
