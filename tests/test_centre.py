"""The centre engine (stream/hands/centre.py, train/centre/): the first hand's centre moved to where a network
reading its crop puts the hand, in the preprocess stage; its recipe collects, trains, resumes and ships."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from stream.hands.centre import CENTRE_INPUT_PX, CentreRefiner


class _Fixed:
    """An engine-like object giving one offset (a stand-in only for the gate arithmetic; the tests below
    that judge what the network does run the shipped engine in ONNX Runtime)."""

    def __init__(self, offset) -> None:
        from engines.manifest import TensorSpec

        self.offset = np.asarray(offset, np.float32).reshape(1, 3)
        self.manifest = type(
            "M", (), {"output_names": ("offset",), "outputs": (TensorSpec("offset", (1, 3)),)}
        )
        self.calls: list[tuple] = []

    def infer(self, x):
        self.calls.append(x.shape)
        return {"offset": self.offset}


def _shipped():
    if "centre" not in engines.shipped_engines():
        pytest.skip("no centre engine shipped in engines/default")
    return engines.load_engine("centre", backend="onnxruntime", threads=1)


def _det(com):
    from stream.geometry import xyz_to_uvd
    from stream.preprocess.segment.config import HandDetection

    com = np.asarray(com, np.float64)
    intr = _intr()
    return HandDetection(
        np.zeros((intr.height, intr.width), bool), xyz_to_uvd(com, intr), com, (0, 0, 1, 1), 0.5
    )


def _intr():
    from stream.frames import KNOWN_CAMERAS

    return KNOWN_CAMERAS["d435_320x240"]


class _Crop:
    def __init__(self, size=96, cube_mm=300.0) -> None:
        self.depth = np.ones((size, size), np.float32)
        self.depth[40:56, 40:56] = 0.0
        self.cube_mm = cube_mm


def test_the_offset_is_scaled_by_half_the_cube_and_gated():
    det = _det([0.0, 0.0, 400.0])
    ref = CentreRefiner(_Fixed([0.2, -0.1, 0.1]), gate_mm=25.0)
    moved = ref.moved(det, _Crop(cube_mm=300.0), _intr())
    assert moved is not None
    np.testing.assert_allclose(moved.com_xyz_mm, [30.0, -15.0, 415.0])
    u, v, d = moved.com_uvd
    assert d == pytest.approx(415.0) and u > det.com_uvd[0] and v < det.com_uvd[1]
    assert ref.engine.calls == [(1, 1, CENTRE_INPUT_PX, CENTRE_INPUT_PX)]  # the 96-px crop resized to 64
    assert (
        CentreRefiner(_Fixed([0.05, 0.05, 0.0]), gate_mm=25.0).moved(det, _Crop(), _intr()) is None
    )  # 10.6 mm
    assert CentreRefiner(_Fixed([np.nan, 0, 0])).moved(det, _Crop(), _intr()) is None
    near = CentreRefiner(_Fixed([0.0, 0.0, -0.2]), max_towards_camera_mm=15.0)  # 30 mm towards the camera
    assert near.moved(det, _Crop(), _intr()) is None
    back = CentreRefiner(_Fixed([0.0, 0.0, 0.2]), max_towards_camera_mm=15.0)  # 30 mm away from it
    assert back.moved(det, _Crop(), _intr()).com_xyz_mm[2] == pytest.approx(430.0)
    with pytest.raises(ValueError, match="gate_mm"):
        CentreRefiner(_Fixed([0, 0, 0]), gate_mm=-1)


def _arm_frames(frames: int):
    """Generator frames of the egocentric kind (forearms enter from the border; seed 9400 holds the
    sequence where the mask runs onto the arm), with their truth hands."""
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import SEQUENCE_LENGTH, scene_frames, truth_hands

    alone = _Alone(_intr())
    for new_seq, s in scene_frames("egocentric", frames, 9400, "d435_320x240", False, SEQUENCE_LENGTH):
        yield new_seq, s, truth_hands(s, alone)


def test_the_shipped_engine_moves_close_range_centres_nearer_the_hand():
    """On egocentric frames the offset brings the runtime's centre nearer the hand's visible pixels' centre
    than the segmenter put it, on average and in most frames it moves (a wrong engine fails this)."""
    from stream.frames import RGBDFrame
    from stream.pipeline import build_pipeline
    from stream.stages import FrameState
    from train.centre.data import hand_centre_mm

    eng = _shipped()
    ref = CentreRefiner(eng, gate_mm=0.0)
    pipe = build_pipeline(overlay=False, warmup=False, centre=False)
    pre = pipe.stages[0]
    before, after = [], []
    with pipe:
        for new_seq, s, truths in _arm_frames(120):
            if new_seq:
                pre.reset()
            f = s.frame
            st = FrameState(
                RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics)
            )
            pre.run(st)
            if st.crop is None:
                continue
            c = hand_centre_mm(truths[0].mask, f.depth_mm, f.intrinsics)
            if c is None or np.linalg.norm(c - st.detection.com_xyz_mm) > 150:
                continue
            moved = ref.moved(st.detection, st.crop, f.intrinsics)
            before.append(np.linalg.norm(c - st.detection.com_xyz_mm))
            after.append(np.linalg.norm(c - moved.com_xyz_mm))
    eng.close()
    before, after = np.array(before), np.array(after)
    assert len(before) >= 60
    assert after.mean() < 0.85 * before.mean()  # 64 -> 50 mm with the shipped engine
    far = before > 30.0
    assert far.sum() >= 10 and (after[far] < before[far]).mean() > 0.8  # 70 of 74 frames nearer


def test_the_preprocess_stage_tracks_from_the_moved_centre():
    """With a refiner the first hand's centre, its crop and the next frame's track all follow the moved
    centre; the mask stays the segmenter's."""
    from stream.frames import RGBDFrame
    from stream.preprocess import crop_cube
    from stream.stages import FrameState, PreprocessStage

    frames = [s for _, s, _ in _arm_frames(3)]
    plain, moved = PreprocessStage(cube_mm=300.0), PreprocessStage(cube_mm=300.0)
    moved.centre = CentreRefiner(_Fixed([0.0, -0.2, 0.1]))  # 30 mm up, 15 mm back
    f = frames[0].frame
    a, b = (FrameState(RGBDFrame(0, 0.0, f.depth_mm, f.intrinsics)) for _ in range(2))
    plain.run(a)
    moved.run(b)
    assert a.detection is not None and b.detection is not None
    np.testing.assert_allclose(b.detection.com_xyz_mm, a.detection.com_xyz_mm + [0.0, -30.0, 15.0])
    assert np.array_equal(b.detection.mask, a.detection.mask)
    assert b.segmentation.hands[0] is b.detection and moved._prev is b.segmentation
    want = crop_cube(f.depth_mm, f.intrinsics, b.detection.com_xyz_mm, 300.0, 96, b.detection.mask)
    np.testing.assert_array_equal(b.crop.depth, want.depth)


def test_the_pipeline_runs_the_shipped_centre_engine_unless_told_not_to():
    from stream.pipeline import build_pipeline

    _shipped().close()
    with (
        build_pipeline(overlay=False, warmup=False) as on,
        build_pipeline(overlay=False, warmup=False, centre=False) as off,
    ):
        assert isinstance(on.stages[0].centre, CentreRefiner)
        assert off.stages[0].centre is None
        assert len(on.engines) == len(off.engines) + 1  # closed with the pipeline


def test_the_run_command_takes_no_centre():
    from stream.app.run import build_parser

    assert build_parser().parse_args(["--source", "synthetic", "--no-centre"]).centre is False
    assert build_parser().parse_args(["--source", "synthetic"]).centre is None


def test_the_centre_recipe_collects_trains_resumes_and_ships(tmp_path, one_torch_thread):
    import torch

    from train.centre.data import CentreCrops, collect
    from train.centre.data import main as data_main
    from train.centre.train import main

    crops = collect(["egocentric", "frontal"], [31999], frames=6, jitter_mm=15.0)
    assert len(crops) >= 8 and crops.jittered.sum() >= 4 and set(np.unique(crops.kind)) == {0, 1}
    assert crops.depth.shape[1:] == (CENTRE_INPUT_PX, CENTRE_INPUT_PX)
    assert np.all(np.linalg.norm(crops.offset_mm, axis=1) <= 150.0 + 4 * 15.0 * np.sqrt(3))
    crops.save(tmp_path / "c.npz")
    assert len(CentreCrops.load(tmp_path / "c.npz")) == len(crops)
    with pytest.raises(SystemExit):
        data_main(["--kinds", "kitchen", "--seeds", "1", "--out", str(tmp_path / "x.npz")])
    ck = tmp_path / "ck"
    args = ["--train", str(tmp_path / "c.npz"), "--test", str(tmp_path / "c.npz"), "--out", str(ck)]
    assert main([*args, "--minutes", "0.0001", "--batch", "8"]) == 0
    first = torch.load(ck / "centre.pt", weights_only=False)
    assert first["epoch"] == 1
    assert main([*args, "--minutes", "0.02", "--batch", "8"]) == 0  # resumed, not restarted
    assert torch.load(ck / "centre.pt", weights_only=False)["epoch"] > 1
    out = tmp_path / "eng"
    assert main(["--ship", str(ck / "centre.pt"), "--test", str(tmp_path / "c.npz"), "--out", str(out)]) == 0
    eng = engines.load_engine(str(out / "centre.onnx"), backend="onnxruntime", threads=1)
    assert eng.manifest.task == "centre" and eng.manifest.output_names == ("offset",)
    det = _det([0.0, 0.0, 400.0])
    ref = CentreRefiner(eng, gate_mm=0.0)
    x = crops.depth[0].astype(np.float32)
    crop = type("C", (), {"depth": x, "cube_mm": 300.0})()
    from train.centre.train import create_model

    model = create_model(first["width"])
    model.load_state_dict(torch.load(ck / "centre.pt", weights_only=False)["state_dict"])
    model.eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x[None, None])).numpy()[0] * 150.0
    np.testing.assert_allclose(ref.moved(det, crop, _intr()).com_xyz_mm - det.com_xyz_mm, want, atol=1e-3)
    eng.close()


def test_a_hand_found_beside_another_keeps_the_segmenters_centre():
    """Only a hand found alone is moved: with two hands in view, moving the first cost the two-hand tuning
    sequences handedness. The second hand here is the first one's twin 200 mm aside, from a segmenter that
    reports both (the stage's rule is what is tested, not the segmenter)."""
    from dataclasses import replace

    from stream.frames import RGBDFrame
    from stream.preprocess import HandSegmenter
    from stream.stages import FrameState, PreprocessStage

    class TwoHands(HandSegmenter):
        def segment(self, depth_mm, intr, prev=None, **kw):
            seg = super().segment(depth_mm, intr, prev, **kw)
            if not seg.found:
                return seg
            h = seg.hands[0]
            twin = replace(h, com_xyz_mm=h.com_xyz_mm + [200.0, 0.0, 0.0])
            return replace(seg, hands=(h, twin))

    f = next(_arm_frames(1))[1].frame
    one, two = PreprocessStage(cube_mm=300.0), PreprocessStage(cube_mm=300.0, segmenter=TwoHands())
    for stage in (one, two):
        stage.centre = CentreRefiner(_Fixed([0.0, -0.2, 0.1]))
    a, b = (FrameState(RGBDFrame(0, 0.0, f.depth_mm, f.intrinsics)) for _ in range(2))
    one.run(a)
    two.run(b)
    assert len(b.segmentation.hands) == 2
    np.testing.assert_allclose(b.detection.com_xyz_mm, a.detection.com_xyz_mm - [0.0, -30.0, 15.0])


def test_a_tracked_hand_left_in_place_is_looked_at_every_few_frames():
    """While the engine leaves a tracked hand's centre where it is, it runs on every `idle_every`-th frame
    only; while it moves the centre, and on a new track, on every frame."""
    from stream.frames import RGBDFrame
    from stream.stages import FrameState, PreprocessStage

    ref = CentreRefiner(_Fixed([0.0, 0.0, 0.0]), idle_every=4)
    assert ref.due(None) and not ref.due(0) and not ref.due(2) and ref.due(3)
    with pytest.raises(ValueError, match="idle_every"):
        CentreRefiner(_Fixed([0, 0, 0]), idle_every=0)
    frames = [s.frame for _, s, _ in _arm_frames(9)]
    calls = {}
    for name, offset in (("still", [0.0, 0.0, 0.0]), ("moving", [0.0, -0.2, 0.1])):
        stage = PreprocessStage(cube_mm=300.0)
        stage.centre = CentreRefiner(_Fixed(offset), idle_every=4)
        found = 0
        for f in frames:
            st = FrameState(RGBDFrame(0, 0.0, f.depth_mm, f.intrinsics))
            stage.run(st)
            found += st.detection is not None and len(st.segmentation.hands) == 1
        assert found == len(frames)  # one hand, tracked through all of them
        calls[name] = len(stage.centre.engine.calls)
    assert calls == {"still": 3, "moving": 9}  # frames 0, 4 and 8; every frame
