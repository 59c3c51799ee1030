"""Stages that plug in by name: a stage defined here is registered, assembled from `--models`, adds its
field to the JSON-lines record and draws on the overlay; contracts are checked when the chain is built;
unknown names get the closest match; an engine given by path runs in the stage its manifest's task names.
All on the shipped engine with real ONNX Runtime and the synthetic source."""

import json
import shutil

import cv2
import numpy as np
import pytest

from stream.cli import main as cli
from stream.errors import InputError
from stream.pipeline import Pipeline, build_pipeline, run_stream
from stream.sinks import JsonlSink
from stream.sources.synthetic import SyntheticSource
from stream.stage_registry import order_stages, register_stage, stage_for_task, unregister_stage
from stream.stages import Stage

LABEL_ROWS = 22  # the spread stage draws its label in this many rows at the bottom of the camera view


class SpreadStage(Stage):
    """Thumb tip to little-finger tip distance (mm): reads the smoothed joints, writes one field."""

    reads = ("joints_mm",)
    writes = ("spread_mm",)

    def run(self, st):
        j = st.joints_mm
        if j is not None and len(j) == 21:
            st.fields["spread_mm"] = float(np.linalg.norm(j[4] - j[20]))

    def record_fields(self, st):
        v = st.fields.get("spread_mm")
        return {} if v is None else {"spread_mm": round(v, 2)}

    def draw(self, image, st):
        v = st.fields.get("spread_mm")
        if v is not None:
            h = st.frame.intrinsics.height
            cv2.rectangle(image, (0, h - LABEL_ROWS), (120, h - 1), (40, 40, 40), -1)
            cv2.putText(image, f"spread {v:.0f} mm", (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255))


class EmbeddingReader(Stage):
    """Reads a field no stage writes: its chain must be refused at build time."""

    reads = ("gesture_embedding",)
    writes = ("gesture",)

    def run(self, st):  # pragma: no cover - never runs: the chain is refused
        st.fields["gesture"] = "?"


class CropMean(Stage):
    """An engine stage for a made-up manifest task: runs its engine on the crop, records one number."""

    reads = ("crop",)
    writes = ("crop_score",)
    needs_engine = True

    def run(self, st):
        if st.crop is not None:
            x = st.crop.depth.reshape(1, 1, st.crop.size, st.crop.size)
            st.fields["crop_score"] = float(next(iter(self.engine.infer(x).values())).mean())

    def record_fields(self, st):
        v = st.fields.get("crop_score")
        return {} if v is None else {"crop_score": round(v, 4)}


@pytest.fixture
def registered():
    """The test's stages in the registry for one test, then gone again."""
    register_stage("spread")(SpreadStage)
    register_stage("needs_embedding")(EmbeddingReader)
    register_stage("crop_mean", tasks=("crop-score",))(CropMean)
    yield
    for name in ("spread", "needs_embedding", "crop_mean"):
        unregister_stage(name)


@pytest.fixture(scope="module")
def frames():
    return list(SyntheticSource(n_frames=8, seed=2))


def test_registered_stage_assembled_by_name_records_its_field(registered, tmp_path):
    out = tmp_path / "r.jsonl"
    # named before pose: the builder runs it after smooth, which writes the joints it reads
    with build_pipeline(backend="onnxruntime", models="spread,pose", overlay=False) as p:
        assert [s.name for s in p.stages] == ["preprocess", "pose", "fit", "smooth", "spread"]
        run_stream(SyntheticSource(n_frames=8, seed=4), p, [JsonlSink(out)])
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    hands = [r for r in recs if r["hand_found"]]
    assert len(recs) == 8 and hands
    assert all(("spread_mm" in r) == r["hand_found"] for r in recs)
    for r in hands:
        j = np.asarray(r["joints_xyz_mm"])
        assert r["spread_mm"] == pytest.approx(np.linalg.norm(j[4] - j[20]), abs=0.05)
        assert "spread" in r["stage_ms"]


def test_registered_stage_draws_on_the_overlay(registered, frames):
    with build_pipeline(backend="onnxruntime", models="pose,spread", overlay=True) as p:
        with_label = [p.process(f) for f in frames]
    with build_pipeline(backend="onnxruntime", models="pose", overlay=True) as p:
        plain = [p.process(f) for f in frames]
    r = next(r for r in with_label if r.hand_found)
    assert r.fields["spread_mm"] > 0 and r.record_fields["spread_mm"] == round(r.fields["spread_mm"], 2)
    h, w = frames[r.index].intrinsics.height, frames[r.index].intrinsics.width
    a, b = r.image, plain[r.index].image
    assert a.shape == b.shape == (h, 2 * w, 3)
    # the label changed the camera view's bottom rows; below the HUD band the rest is the same drawing
    assert not np.array_equal(a[h - LABEL_ROWS :, :120], b[h - LABEL_ROWS :, :120])
    np.testing.assert_array_equal(a[30 : h - LABEL_ROWS], b[30 : h - LABEL_ROWS])
    # frames without a hand draw no label
    for x, y in zip(with_label, plain):
        if not x.hand_found:
            np.testing.assert_array_equal(x.image[30:], y.image[30:])


def test_contract_violation_is_one_line_at_build_time(registered, frames):
    with pytest.raises(InputError) as exc:
        build_pipeline(backend="onnxruntime", models="pose,needs_embedding", overlay=False)
    msg = str(exc.value)
    assert "needs_embedding" in msg and "gesture_embedding" in msg and "\n" not in msg
    # an explicit chain in the wrong order is refused by Pipeline itself, before any frame
    with build_pipeline(backend="onnxruntime", models="pose", overlay=False) as p:
        pre, pose, fit, smooth = p.stages
        with pytest.raises(InputError, match="'spread' reads joints_mm, which no earlier stage writes"):
            Pipeline([pre, pose, fit, SpreadStage(name="spread"), smooth])
        Pipeline([pre, pose, fit, smooth, SpreadStage(name="spread")]).process(frames[0])  # right order runs


def test_contract_violation_from_the_cli_is_one_line(registered, capsys):
    argv = ["run", "--source", "synthetic", "--backend", "onnxruntime", "--models", "pose,needs_embedding"]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "gesture_embedding" in err and "\n" not in err and "Traceback" not in err


def test_unknown_stage_name_suggests_the_closest(registered, capsys):
    with pytest.raises(InputError, match="did you mean 'spread'"):
        build_pipeline(backend="onnxruntime", models="pose,sprad", overlay=False)
    assert cli(["run", "--source", "synthetic", "--backend", "onnxruntime", "--models", "psoe"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'psoe'" in err and "did you mean 'pose'" in err and "\n" not in err
    with pytest.raises(InputError, match="always in the pipeline"):
        build_pipeline(backend="onnxruntime", models="pose,smooth", overlay=False)


def test_list_stages_without_a_source(registered, capsys):
    with pytest.raises(SystemExit) as exc:
        cli(["run", "--list-stages"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "spread: reads joints_mm -> writes spread_mm; no engine." in out
    assert (
        "pose: reads crop (uses handedness when written) -> writes joints_raw_mm, outputs; engine pose" in out
    )
    assert "shipped engines" in out and "pose" in out


def _engine_with_task(tmp_path, name: str, task: str):
    """A copy of the shipped pose engine whose manifest names another task (the ONNX bytes, and so the
    manifest's sha256, are unchanged)."""
    from engines.registry import default_engine_path

    src = default_engine_path("pose")
    dst = tmp_path / f"{name}.onnx"
    shutil.copy(src, dst)
    man = json.loads(src.with_suffix(".json").read_text())
    man["task"] = task
    dst.with_suffix(".json").write_text(json.dumps(man))
    return dst


def test_engine_path_runs_in_the_stage_its_task_names(registered, tmp_path, frames):
    path = _engine_with_task(tmp_path, "scorer", "crop-score")
    assert stage_for_task("crop-score") is CropMean and stage_for_task("pose").kind == "pose"
    with build_pipeline(backend="onnxruntime", models=["pose", str(path)], overlay=False) as p:
        assert [s.name for s in p.stages] == ["preprocess", "pose", "crop_mean", "fit", "smooth"]
        results = [p.process(f) for f in frames[:4]]
    r = next(r for r in results if r.hand_found)
    # the same network as the pose engine on the same crop: its mean output is the pose stage's
    assert r.fields["crop_score"] == pytest.approx(float(r.outputs["pose"].mean()), abs=1e-5)
    assert r.to_record()["crop_score"] == round(r.fields["crop_score"], 4)
    # STAGE=ENGINE gives a registered stage another engine; a task no stage claims runs as a raw engine
    other = _engine_with_task(tmp_path, "unclaimed", "no-such-task")
    with build_pipeline(backend="onnxruntime", models=[f"crop_mean={path}", str(other)], overlay=False) as p:
        assert [s.name for s in p.stages] == ["preprocess", "crop_mean", "unclaimed", "smooth"]
        results = [p.process(f) for f in frames[:4]]
    # no pose stage: smooth runs with no joints to smooth; the two engines run on every cropped hand
    assert not any(r.hand_found for r in results) and all("smooth" in r.stage_ms for r in results)
    cropped = [r for r in results if r.com_xyz_mm is not None]
    assert cropped and all("unclaimed" in r.outputs and "crop_score" in r.fields for r in cropped)
    # a path with '=' in a folder name is an engine path, not STAGE=ENGINE
    folder = tmp_path / "lr=1e-4"
    folder.mkdir()
    mine = _engine_with_task(folder, "mine", "pose")
    with build_pipeline(backend="onnxruntime", models=str(mine), overlay=False) as p:
        assert [s.name for s in p.stages] == ["preprocess", "pose", "fit", "smooth"]
    with pytest.raises(InputError, match="runs no engine"):
        build_pipeline(backend="onnxruntime", models=f"spread={mine}", overlay=False)


def test_order_keeps_given_order_and_refuses_cycles():
    class S(Stage):
        def run(self, st):
            pass

    def stage(name, reads=(), writes=(), optional=()):
        s = S(name=name)
        s.reads, s.writes, s.optional_reads = reads, writes, optional
        return s

    a, b = stage("a", ("frame",), ("x",)), stage("b", ("x",), ("y",))
    c = stage("c", (), ("z",), optional=("y",))
    assert [s.name for s in order_stages([a, b, c])] == ["a", "b", "c"]
    assert [s.name for s in order_stages([c, b, a])] == ["a", "b", "c"]
    assert [s.name for s in order_stages([stage("d", (), ("w",), optional=("nobody",)), a])] == ["d", "a"]
    with pytest.raises(InputError, match="no order"):
        order_stages([stage("p", ("q",), ("r",)), stage("q", ("r",), ("q",))])
    with pytest.raises(InputError, match="'b' reads x, which no earlier stage writes"):
        order_stages([b])


def test_registration_refuses_a_taken_name_and_a_class_that_is_no_stage(registered):
    class Other(Stage):
        def run(self, st):
            pass

    with pytest.raises(ValueError, match="already registered"):
        register_stage("spread")(Other)
    with pytest.raises(TypeError, match="not a stream.stages.Stage"):
        register_stage("plain")(object)
    with pytest.raises(ValueError, match="letters, digits"):
        register_stage("a.b")
    register_stage("spread")(SpreadStage)  # the same class again is harmless


def test_pipeline_uses_colour_only_with_a_stage_that_reads_it():
    # the source leaves its colour stream closed unless a stage reads colour (`Source.want_color`)
    from types import SimpleNamespace

    from stream.stages import EngineStage

    with build_pipeline(backend="onnxruntime", overlay=False) as p:
        assert not p.uses_color
    with build_pipeline(backend="onnxruntime", overlay=True) as p:
        assert p.uses_color  # the overlay draws on the colour image
    for kind, reads in (("depth", False), ("rgb", True), ("rgbd", True)):
        carrier = SimpleNamespace(manifest=SimpleNamespace(preprocessing={"input": kind, "crop_size": 64}))
        assert EngineStage(carrier, "x").uses_color is reads
