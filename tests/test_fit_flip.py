"""The pose engine's twin read the other way up (engines/flip_canonical.py) and the fit stage's second
reading of a new hand from it (stream/fitting/stage.py)."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.flip_canonical import NAME, flip_canonical, twin_of
from engines.manifest import sha256_file
from stream.frames import KNOWN_CAMERAS
from stream.synth import HandSynthesizer, SceneConfig

CAM = KNOWN_CAMERAS["d435_320x240"]
# a generator frame (frontal, seed 78, independent) whose compact silhouette the pose engine reads upside
# down: the fit from its joints ends 64 mm off, from the twin's 4 mm (calibrated size)
UPSIDE_DOWN = 838


def _shipped():
    if NAME not in engines.shipped_engines():
        pytest.skip(f"no {NAME} engine shipped in engines/default")


def test_the_twin_is_rebuilt_byte_for_byte_and_differs_in_one_node(tmp_path):
    _shipped()
    import onnx

    path = flip_canonical(engines.default_engine_path("pose"), tmp_path)
    assert sha256_file(path) == sha256_file(engines.default_engine_path(NAME))
    a = onnx.load(str(engines.default_engine_path("pose"))).graph.node
    b = onnx.load(str(path)).graph.node
    diff = [(x, y) for x, y in zip(a, b, strict=True) if list(x.input) != list(y.input)]
    assert len(diff) == 1
    x, y = diff[0]
    assert x.op_type == "Where" and list(y.input) == [x.input[0], x.input[2], x.input[1]]


def test_a_graph_without_the_choice_is_refused(tmp_path):
    _shipped()
    from stream.errors import InputError

    with pytest.raises(InputError, match="canonical-angle sign"):
        flip_canonical(engines.default_engine_path("detector"), tmp_path)  # no canonical turn in it


def test_twin_of_only_the_pose_engine_it_came_from():
    _shipped()
    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    other = engines.load_engine("presence", backend="onnxruntime", threads=1)
    assert twin_of(pose) == NAME and twin_of(other) is None


def _stages(alternative):
    from stream.fitting.stage import FitStage
    from stream.stages import PoseStage, PreprocessStage

    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    return PreprocessStage(300.0, 64), PoseStage(pose), FitStage(alternative=alternative)


def test_a_new_hand_read_upside_down_is_fitted_from_the_twin():
    _shipped()
    from stream.frames import RGBDFrame
    from stream.stages import FrameState

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), 78).sample_at(UPSIDE_DOWN)
    twin = engines.load_engine(NAME, backend="onnxruntime", threads=1)
    out = {}
    for name, alt in (("engine only", None), ("with the twin", twin)):
        stages = _stages(alt)
        runs = []
        for _ in range(2):  # a new hand, then the same hand tracked
            st = FrameState(
                RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=s.frame.depth_mm, intrinsics=s.frame.intrinsics)
            )
            st.fields["hand_size_mm"] = np.asarray(s.hand_size_mm, np.float32)
            for stage in stages:
                stage.run(st)
            runs.append(
                (
                    float(np.linalg.norm(st.joints_raw_mm - s.joints_xyz_mm, axis=1).mean()),
                    st.fields["fit_flipped"],
                )
            )
        out[name] = runs
    (alone, flipped_alone), _ = out["engine only"]
    (first, flipped), (second, flipped_tracked) = out["with the twin"]
    assert not flipped_alone and alone > 40.0
    assert flipped and first < 10.0
    # tracked, the engine's wrist is again far from the last fit's: no warm start, so the twin reads it again
    assert flipped_tracked and second < 10.0


def test_the_pipeline_gives_the_fit_stage_the_twin():
    _shipped()
    from stream.fitting.stage import FitStage
    from stream.pipeline import build_pipeline

    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False) as p:
        fit = next(s for s in p.stages if isinstance(s, FitStage))
        assert fit.alternative is not None and fit.alternative.manifest.name == NAME
        assert fit.recut_engine is not None and fit.recut_engine.manifest.name == "pose"
    with build_pipeline(backend="onnxruntime", overlay=False, warmup=False, fit=False) as p:
        assert not any(isinstance(s, FitStage) for s in p.stages)


# a generator frame (frontal, seed 78) whose segmented mask holds a forearm beside the hand: a third of its
# pixels lie beyond 25 mm of the fitted bones, and the crop cut around the rest reads the hand far better
RECUT = 963


def test_bone_distance_by_hand():
    from stream.fitting.recut import bone_distance

    j = np.zeros((21, 3))
    j[1] = [0.0, 0.0, 100.0]  # the thumb's first bone runs from the wrist (0) along +z; the rest sit at 0
    pts = np.array([[0.0, 0.0, 50.0], [10.0, 0.0, 50.0], [0.0, 0.0, 130.0], [0.0, -4.0, -3.0]])
    np.testing.assert_allclose(bone_distance(pts, j), [0.0, 10.0, 30.0, 5.0], atol=1e-4)
    np.testing.assert_allclose(bone_distance(pts, j, compiled=False), [0.0, 10.0, 30.0, 5.0], atol=1e-4)


def test_bone_distance_kernel_matches_the_numpy_reference_bit_for_bit():
    """The compiled distances are the reference's to the last bit, so the recut keeps the same pixels: on a
    generator hand's own pixels (a thousand of them near its bones) and on points scattered around it,
    with a zero-length bone among them (the reference's floor on the divisor)."""
    from stream.fitting.fit import fit_kernels
    from stream.fitting.recut import bone_distance, bone_distance_numpy
    from stream.geometry import depth_to_points

    assert (
        fit_kernels() is not None
    )  # numba is a runtime dependency: the kernel, not the reference, is tested

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), 78).sample_at(RECUT)
    pts = depth_to_points(s.frame.depth_mm, s.frame.intrinsics, s.mask).astype(np.float32)
    rng = np.random.default_rng(3)
    scattered = (s.joints_xyz_mm.mean(0) + rng.normal(0.0, 60.0, (2000, 3))).astype(np.float32)
    joints = s.joints_xyz_mm.copy()
    joints[4] = joints[3]  # a zero-length thumb tip
    for p in (pts, scattered):
        ref = bone_distance_numpy(p, joints)
        assert ref.dtype == np.float32 and len(ref) == len(p) and np.isfinite(ref).all()
        np.testing.assert_array_equal(bone_distance(p, joints), ref)
    assert (bone_distance_numpy(pts, joints) < 25.0).mean() > 0.5  # most of the hand's pixels are in reach


def test_recut_keeps_the_pixels_near_the_bones_and_centres_on_them():
    from stream.fitting.recut import recut
    from stream.geometry import depth_to_points

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), 78).sample_at(RECUT)
    f = s.frame
    near = np.zeros_like(s.mask)
    near[max(0, s.mask.nonzero()[0].min() - 30) :, :] = True  # the hand and everything below it: arm, body
    mask = (
        near & (f.depth_mm > 0) & (np.abs(f.depth_mm.astype(np.float64) - s.joints_xyz_mm[:, 2].mean()) < 150)
    )
    assert (mask & ~s.mask).sum() > 0.3 * mask.sum()  # much of it is not the hand
    crop = recut(f.depth_mm, f.intrinsics, mask, s.joints_xyz_mm, 300.0, 64)
    hand = depth_to_points(f.depth_mm, f.intrinsics, s.mask).mean(0)
    whole = depth_to_points(f.depth_mm, f.intrinsics, mask).mean(0)
    assert np.linalg.norm(crop.com_xyz_mm - hand) < 0.5 * np.linalg.norm(whole - hand)
    assert (
        recut(f.depth_mm, f.intrinsics, mask, s.joints_xyz_mm + 500.0, 300.0, 64) is None
    )  # nothing in reach


def test_recut_measures_only_pixels_that_can_be_in_reach_and_keeps_the_same_ones(monkeypatch):
    """The recut measures only the pixels inside the image box of the skeleton's grown 3-D box; the crop is
    the one measuring every pixel gives, for several reaches and for a skeleton moved off the optical axis
    and nearer the camera (where perspective stretches the box most), on 320- and 640-pixel frames."""
    import stream.fitting.recut as rc
    from stream.frames import camera

    for cam in (CAM, camera("d435_640x480")):
        s = HandSynthesizer(SceneConfig(camera=cam, color=False), 78).sample_at(RECUT)
        f = s.frame
        mask = (f.depth_mm > 0) & (np.abs(f.depth_mm.astype(np.float64) - s.joints_xyz_mm[:, 2].mean()) < 200)
        cases = [
            (s.joints_xyz_mm, 25.0),
            (s.joints_xyz_mm, 60.0),
            (s.joints_xyz_mm + [40.0, -30.0, -60.0], 25.0),
        ]
        boxed = [rc.recut(f.depth_mm, f.intrinsics, mask, j, 300.0, 64, reach_mm=r) for j, r in cases]
        rows, cols = -(-mask.shape[0] // 2), -(-mask.shape[1] // 2)
        assert rc._reach_box(s.joints_xyz_mm, 25.0, f.intrinsics, rows, cols, 2) != (0, rows, 0, cols)
        with monkeypatch.context() as m:
            m.setattr(rc, "_reach_box", lambda j, r, intr, rows, cols, step: (0, rows, 0, cols))
            whole = [rc.recut(f.depth_mm, f.intrinsics, mask, j, 300.0, 64, reach_mm=r) for j, r in cases]
        for a, b in zip(boxed, whole):
            assert a is not None and b is not None
            np.testing.assert_array_equal(a.depth, b.depth)
            np.testing.assert_array_equal(a.com_xyz_mm, b.com_xyz_mm)


def test_a_new_hand_with_a_forearm_in_its_mask_is_fitted_from_the_recut_crop():
    _shipped()
    from stream.frames import RGBDFrame
    from stream.stages import FrameState

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), 78).sample_at(RECUT)
    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    errs = {}
    for name, engine in (("without", None), ("with", pose)):
        pre, pose_stage, _ = _stages(None)
        from stream.fitting.stage import FitStage

        fit = FitStage(recut_engine=engine)
        st = FrameState(
            RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=s.frame.depth_mm, intrinsics=s.frame.intrinsics)
        )
        st.fields["hand_size_mm"] = np.asarray(s.hand_size_mm, np.float32)
        for stage in (pre, pose_stage, fit):
            stage.run(st)
        errs[name] = (
            float(np.linalg.norm(st.joints_raw_mm - s.joints_xyz_mm, axis=1).mean()),
            st.fields["fit_recut"],
        )
    assert errs["without"][0] > 25.0 and not errs["without"][1]
    assert errs["with"][1] and errs["with"][0] < 10.0


@pytest.mark.parametrize("frame, field", [(UPSIDE_DOWN, "fit_flipped"), (RECUT, "fit_recut")])
def test_the_second_readings_of_a_left_hand_are_mirrored_in_and_out(frame, field):
    """The same frames mirrored left-right: a left hand, which the pose stage and both second readings mirror
    into the right-hand engines and back out."""
    _shipped()
    from dataclasses import replace

    from stream.fitting.stage import FitStage
    from stream.frames import RGBDFrame
    from stream.stages import FrameState

    s = HandSynthesizer(SceneConfig(camera=CAM, color=False), 78).sample_at(frame)
    intr = s.frame.intrinsics
    intr = replace(intr, cx=(intr.width - 1) - intr.cx)  # pixel u -> W-1-u: x -> -x
    depth = np.ascontiguousarray(s.frame.depth_mm[:, ::-1])
    truth = s.joints_xyz_mm * np.array([-1.0, 1.0, 1.0])
    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    twin = engines.load_engine(NAME, backend="onnxruntime", threads=1)
    pre, pose_stage, _ = _stages(None)
    # one reading at a time: with both, the re-cut may start from the flipped fit and win after it
    fit = FitStage(alternative=twin) if field == "fit_flipped" else FitStage(recut_engine=pose)
    st = FrameState(RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=depth, intrinsics=intr))
    st.fields["hand_size_mm"] = np.asarray(s.hand_size_mm, np.float32)
    st.fields["handedness"] = "left"
    for stage in (pre, pose_stage, fit):
        stage.run(st)
    assert st.fields[field]
    assert float(np.linalg.norm(st.joints_raw_mm - truth, axis=1).mean()) < 12.0
