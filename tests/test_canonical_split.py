"""Engines that turn their crop upright in the graph, on the CPU (engines/backends/canonical.py): the views
and the rest of the graph in ONNX Runtime around one compiled kernel give the whole graph's outputs -- for
the pose engine and its flipped twin, the presence engine and the handedness engine -- on the crops the
pipeline cuts; a graph it cannot split runs whole."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.backends.canonical import CanonicalSplit, angle_flipped, graph_turn, made_up_hand
from engines.backends.ort import OrtEngine, session_options

onnx = pytest.importorskip("onnx")

TURNED = [
    ("pose", False, True),
    ("pose_flipped", True, True),
    ("presence", False, False),
    ("handedness", False, False),
]


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    from engines.canonical_graph import real_crops

    return real_crops(64, frames=40, seed=11)


@pytest.mark.parametrize("name, flipped, turns_back", TURNED)
def test_split_gives_the_whole_graphs_outputs(name: str, flipped: bool, turns_back: bool, crops) -> None:
    split = engines.load_engine(name, backend="onnxruntime", threads=1)
    assert split.split is not None and split.split.flip is flipped
    assert (split.split._rot is not None) is turns_back  # the pose engines turn their joints back
    whole = OrtEngine(split.path, split.manifest, threads=1, split_canonical=False)
    assert whole.split is None
    assert len(crops) >= 20
    for c in [*crops, made_up_hand(64)[None]]:
        a, b = split.infer(c[None]), whole.infer(c[None])
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].shape == b[k].shape and a[k].dtype == np.float32
            np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0)


def test_an_empty_crop_is_not_turned() -> None:
    """Where the silhouette's second moments vanish the exported atan2 is 0 / 0 and the whole graph's x, y
    are NaN; the split keeps train/canonical.py's definition, no turn."""
    split = engines.load_engine("pose", backend="onnxruntime", threads=1)
    whole = OrtEngine(split.path, split.manifest, threads=1, split_canonical=False)
    empty = np.ones((1, 1, 64, 64), np.float32)
    assert np.isnan(whole.infer(empty)["joints"]).any()
    assert np.isfinite(split.infer(empty)["joints"]).all()


def test_the_turn_and_its_end_are_told_by_the_graph() -> None:
    root = engines.registry.DEFAULT_DIR
    graphs = {
        n: onnx.load(str(root / f"{n}.onnx")).graph for n in ("pose", "pose_flipped", "presence", "detector")
    }
    assert angle_flipped(graphs["pose"]) is False and angle_flipped(graphs["pose_flipped"]) is True
    assert angle_flipped(graphs["presence"]) is False
    assert angle_flipped(graphs["detector"]) is None and graph_turn(graphs["detector"]) is None
    views, turned, rot, read_after = graph_turn(graphs["pose"])
    assert read_after and views != "input"  # the pose engine builds shifted views first
    assert graph_turn(graphs["presence"])[0] == "input" and not graph_turn(graphs["presence"])[3]


def test_what_it_cannot_split_runs_whole(monkeypatch) -> None:
    import engines.backends.canonical as canonical

    pose = engines.registry.resolve_engine_path("pose")
    assert CanonicalSplit.build(pose, session_options(1), ["CPUExecutionProvider"]) is not None
    # a graph larger than MAX_SPLIT_BYTES is not read at all (a large network: the split would not pay)
    monkeypatch.setattr(canonical, "MAX_SPLIT_BYTES", pose.stat().st_size - 1)
    assert CanonicalSplit.build(pose, session_options(1), ["CPUExecutionProvider"]) is None
    monkeypatch.undo()
    detector = engines.load_engine("detector", backend="onnxruntime", threads=1)
    assert detector.split is None
    assert CanonicalSplit.build(detector.path, session_options(1), ["CPUExecutionProvider"]) is None
