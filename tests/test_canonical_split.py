"""A canonical pose engine on the CPU (engines/backends/canonical.py): its network alone in ONNX Runtime
between two compiled kernels gives the whole graph's joints, for the engine and its flipped twin, on the
crops the pipeline cuts; anything it cannot split runs whole."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import engines
from engines.backends.canonical import CanonicalSplit, angle_flipped, made_up_hand
from engines.backends.ort import OrtEngine, session_options

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    from engines.canonical_graph import real_crops

    return real_crops(64, frames=40, seed=11)


@pytest.mark.parametrize("name, flipped", [("pose", False), ("pose_flipped", True)])
def test_split_gives_the_whole_graphs_joints(name: str, flipped: bool, crops: np.ndarray) -> None:
    split = engines.load_engine(name, backend="onnxruntime", threads=1)
    assert split.split is not None and split.split.flip is flipped
    whole = OrtEngine(split.path, split.manifest, threads=1, split_canonical=False)
    assert whole.split is None
    assert len(crops) >= 20
    for c in crops:
        a, b = split.infer(c[None])["joints"], whole.infer(c[None])["joints"]
        assert a.shape == b.shape == (1, 63) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    hand = made_up_hand(64)[None, None]
    np.testing.assert_allclose(split.infer(hand)["joints"], whole.infer(hand)["joints"], atol=1e-5, rtol=0)
    # where the silhouette's second moments vanish (no foreground) the exported atan2 is 0 / 0 and the
    # whole graph's x, y are NaN; the split keeps train/canonical.py's definition, no turn
    empty = np.ones((1, 1, 64, 64), np.float32)
    assert np.isnan(whole.infer(empty)["joints"]).any()
    assert np.isfinite(split.infer(empty)["joints"]).all()


def test_the_twin_is_told_by_its_graph() -> None:
    root = engines.registry.DEFAULT_DIR
    assert angle_flipped(onnx.load(str(root / "pose.onnx")).graph) is False
    assert angle_flipped(onnx.load(str(root / "pose_flipped.onnx")).graph) is True
    assert angle_flipped(onnx.load(str(root / "presence.onnx")).graph) is False  # it turns its crop too
    assert angle_flipped(onnx.load(str(root / "detector.onnx")).graph) is None


def test_what_it_cannot_split_runs_whole() -> None:
    pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
    so = session_options(1)
    # views the graph does not have
    three = replace(
        pose.manifest,
        training={**pose.manifest.training, "model_kwargs": {"test_shifts_px": [[1, 1], [0, 0], [-1, -1]]}},
    )
    assert CanonicalSplit.build(pose.path, three, so, ["CPUExecutionProvider"]) is None
    # not a canonical pose engine
    presence = engines.load_engine("presence", backend="onnxruntime", threads=1)
    assert CanonicalSplit.build(presence.path, presence.manifest, so, ["CPUExecutionProvider"]) is None
    assert getattr(presence, "split", None) is None
