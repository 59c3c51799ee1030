"""The gesture stage in the real pipeline: the shipped embedding engine on ONNX Runtime, the shipped gallery,
record fields in every JSON line, the name on the overlay, and `handstream run --gestures`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.cli import main as cli
from stream.errors import InputError
from stream.frames import RGBDFrame, camera
from stream.geometry import xyz_to_uvd
from stream.gestures import Gallery, canonical_joints
from stream.pipeline import build_pipeline
from stream.stages import FrameState
from stream.synth import gestures as vocab


def test_the_stage_names_a_held_gesture_and_forgets_a_lost_hand():
    import engines
    from stream.gestures.stage import GestureStage

    rng = np.random.default_rng(0)
    cam = camera("d435_320x240")
    frame = RGBDFrame(0, 0.0, np.zeros(cam.shape, np.uint16), cam)
    with engines.load_engine("gesture", backend="onnxruntime") as eng:
        stage = GestureStage(eng)  # the gallery shipped beside the engine
        seen = []
        for _ in range(5):
            st = FrameState(frame)
            st.joints_mm = vocab.gesture_joints("fist", rng, noise_mm=2.0).astype(np.float64)
            stage.run(st)
            seen.append(st.fields["gesture"])
        assert seen[-1] == "fist"
        rec = stage.record_fields(st)
        assert rec["gesture"] == "fist" and 0 <= rec["gesture_distance"] < 2
        # drawn beside the wrist
        st.joints_uvd = xyz_to_uvd(np.array([[0.0, 0.0, 400.0]] * 21), cam)
        img = np.zeros((cam.height, cam.width * 2, 3), np.uint8)
        stage.draw(img, st)
        assert img[:, : cam.width].any()
        st = FrameState(frame)  # no hand
        stage.run(st)
        assert st.fields["gesture"] is None and stage.record_fields(st) == {
            "gesture": None,
            "gesture_distance": None,
        }
        # a gallery of one gesture: another shape is rejected as unknown rather than forced onto it
        only = Gallery()
        only.add("fist", canonical_joints(np.stack([vocab.gesture_joints("fist", rng) for _ in range(5)])))
        stage = GestureStage(eng, gallery=only, window=1)
        st = FrameState(frame)
        st.joints_mm = vocab.gesture_joints("open_palm", rng).astype(np.float64)
        stage.run(st)
        assert (
            st.fields["gesture"] is None and st.fields["gesture_distance"] > stage.recognizer.reject_distance
        )
        with pytest.raises(InputError, match="empty"):
            GestureStage(eng, gallery=Gallery())


def test_every_record_of_a_run_carries_the_gesture_fields(tmp_path):
    out = tmp_path / "g.jsonl"
    assert (
        cli(
            [
                "run",
                "--source",
                "synthetic:7",
                "--frames",
                "30",
                "--models",
                "pose,gesture",
                "--jsonl",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 30
    assert all("gesture" in r and "gesture_distance" in r for r in recs)
    named = [r["gesture"] for r in recs if r["gesture"]]
    assert len(named) >= 10  # a hand in every frame of this sequence: most frames are named
    assert set(named) <= set(Gallery.load(_shipped_gallery()).names)


def _shipped_gallery():
    from engines.registry import DEFAULT_DIR

    return DEFAULT_DIR / "gesture_gallery.npz"


def test_run_with_a_users_gallery(tmp_path, capsys):
    rng = np.random.default_rng(1)
    g = Gallery()
    g.add("mine", canonical_joints(np.stack([vocab.gesture_joints("gun", rng) for _ in range(5)])))
    path = g.save(tmp_path / "mine.npz")
    out = tmp_path / "r.jsonl"
    assert (
        cli(
            [
                "run",
                "--source",
                "synthetic:2",
                "--frames",
                "8",
                "--gestures",
                str(path),
                "--jsonl",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 8 and {r["gesture"] for r in recs} <= {"mine", None}
    capsys.readouterr()
    assert (
        cli(["run", "--source", "synthetic:2", "--frames", "8", "--gestures", str(tmp_path / "none.npz")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such gallery" in err[0]


def test_options_for_a_stage_that_is_not_in_the_pipeline_are_refused():
    with pytest.raises(InputError, match="not in the pipeline: gesture"):
        build_pipeline(backend="onnxruntime", models="pose", overlay=False, stage_options={"gesture": {}})


def test_pipeline_measure_scores_against_the_sources_labels(capsys):
    from stream.sources.synthetic import SyntheticSource
    from stream.synth import HandSynthesizer, SceneConfig
    from train.gesture.recipe import main as recipe

    # the source carries the generator's gesture label of each frame
    truth = [
        s.gesture_fine
        for s in HandSynthesizer(SceneConfig(camera=camera("d435_320x240")), seed=7).sequence(6)
    ]
    assert [f.meta["gesture_fine_true"] for f in SyntheticSource(n_frames=6, seed=7)] == truth
    capsys.readouterr()
    assert recipe(["pipeline", "--seeds", "7", "--frames", "12"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["seed"] == 7 and row["frames"] == 12 and 0 <= row["correct"] <= row["named"] <= 12
    assert row["named"] >= 6  # a hand in every frame of this sequence: most frames are named


def test_both_gesture_stages_take_gallery_and_rejection_distance_the_same_way(tmp_path):
    import engines
    from stream.gestures.dynamic import DynamicGallery
    from stream.gestures.dynamic_stage import DynamicGestureStage
    from stream.gestures.stage import GestureStage, stage_gallery, stage_reject_distance

    with engines.load_engine("gesture", backend="onnxruntime") as eng:
        src, g = stage_gallery(eng, None, Gallery, "gesture", "--gestures")  # shipped beside the engine
        assert src.name == "gesture_gallery.npz" and g.labels
        mine = Gallery()
        assert stage_gallery(eng, mine, Gallery, "gesture", "--gestures") == (mine, mine)
        assert stage_reject_distance(eng, None, "gesture") == float(eng.manifest.metrics["reject_distance"])
        assert stage_reject_distance(eng, 0.25, "gesture") == 0.25
        assert GestureStage(eng, reject_distance=0.25).recognizer.reject_distance == 0.25
        eng.manifest.metrics.pop("reject_distance")
        with pytest.raises(
            InputError, match="the gesture engine's manifest has no reject_distance; pass one"
        ):
            GestureStage(eng)
        with pytest.raises(InputError, match="not found"):
            GestureStage(eng, gallery=tmp_path / "none.npz")
    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        eng.manifest.metrics.pop("reject_distance")
        with pytest.raises(InputError, match="dynamic gesture engine's manifest has no reject_distance"):
            DynamicGestureStage(eng)
        assert DynamicGestureStage(eng, reject_distance=0.5).reject_distance == 0.5
        src, g = stage_gallery(eng, None, DynamicGallery, "dynamic gesture", "--dynamic-gestures")
        assert src.name == "dynamic_gesture_gallery.npz" and type(g) is DynamicGallery
        with pytest.raises(InputError, match="gallery of static gestures"):
            DynamicGestureStage(eng, gallery=engines.registry.DEFAULT_DIR / "gesture_gallery.npz")
