"""The static gesture stage's compiled kernel (stream/gestures/kernels.py) against its numpy reference, on the
shipped embedding engine and gallery: the same embeddings and distances (1e-5), the same answers frame by
frame on generated gesture sequences, its own votes per hand, and the numpy path without numba."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engines
from stream.gestures import Gallery, GestureRecognizer, kernels
from stream.gestures.canonical import canonical_hand
from stream.gestures.stage import GestureStage
from stream.synth import gestures as vocab

needs_numba = pytest.mark.skipif(
    not kernels.HAVE_NUMBA, reason="numba is not installed: no kernel to compare"
)


@pytest.fixture(scope="module")
def engine():
    with engines.load_engine("gesture", backend="onnxruntime", threads=1) as eng:
        yield eng


def _sequence(rng: np.random.Generator, names: list[str], frames_each: int, noise_mm: float) -> list:
    """Held gestures one after another, each from a random subject and hand and with pose-engine-like noise,
    with a lost hand (None) and a skeleton holding NaN between some of them."""
    seq: list = []
    for k, name in enumerate(names):
        subject, left = int(rng.integers(1 << 30)), bool(rng.random() < 0.5)
        for _ in range(frames_each):
            seq.append(vocab.gesture_joints(name, rng, subject, left, noise_mm=noise_mm).astype(np.float64))
        if k % 3 == 1:
            seq.append(None)
        if k % 4 == 2:
            bad = seq[-2].copy() if seq[-1] is None else seq[-1].copy()
            bad[7, 1] = np.nan
            seq.append(bad)
    return seq


@needs_numba
def test_the_kernel_gives_the_numpy_embeddings_and_distances(engine):
    rec = GestureStage(engine).recognizer  # the shipped gallery
    assert rec.runs_kernel and rec.runs_dense
    params, meta = rec._kernel
    gallery = Gallery.load(Path(engine.path).with_name("gesture_gallery.npz"))
    emb = np.empty(rec.embeddings.shape[1], np.float32)
    for c, ref in zip(gallery.joints, rec.embeddings):
        kernels.embed_canonical(np.ascontiguousarray(c), params, meta, emb)
        np.testing.assert_allclose(emb, ref, atol=1e-5, rtol=0)
    rng = np.random.default_rng(11)
    ref_rec = GestureRecognizer(engine, gallery, rec.reject_distance, use_kernel=False)
    assert not ref_rec.runs_kernel
    worst = 0.0
    for name in vocab.TRAIN + vocab.UNSEEN:
        j = vocab.gesture_joints(name, rng, noise_mm=6.0).astype(np.float64)
        c = canonical_hand(j)
        kernels.embed_canonical(c, params, meta, emb)
        e = ref_rec.embed(c[None])[0]
        np.testing.assert_allclose(emb, e, atol=1e-5, rtol=0)
        row, dist, _ = kernels.gesture_step(j, params, meta, kernels.new_votes(1), rec.reject_distance)
        d2 = ((rec.embeddings.astype(np.float64) - e) ** 2).sum(1)
        assert row == int(d2.argmin())
        worst = max(worst, abs(dist - np.sqrt(d2.min())))
    assert worst < 1e-5


@needs_numba
@pytest.mark.parametrize("window", [1, 2, 5])
def test_the_kernel_and_the_numpy_path_answer_the_same_on_a_gesture_sequence(engine, window):
    rng = np.random.default_rng(window)
    names = list(vocab.UNSEEN) + ["fist", "open_palm", "fist", "gun"]
    rng.shuffle(names)
    fast = GestureStage(engine, window=window).recognizer
    ref = GestureStage(engine, window=window).recognizer
    assert fast.runs_kernel
    named = 0
    for j in _sequence(rng, names, frames_each=6, noise_mm=8.0):
        a, b = fast(j), ref.numpy_step(j)
        assert a[0] == b[0]
        assert (a[1] is None) == (b[1] is None)
        if a[1] is not None:
            assert abs(a[1] - b[1]) < 1e-5
        named += a[0] is not None
    assert named > 20  # the sequence does name gestures: the comparison is not all None


@needs_numba
def test_each_hand_votes_on_its_own(engine):
    stage = GestureStage(engine, window=5)
    twin = stage.fork()
    assert twin.recognizer._ring is not stage.recognizer._ring
    assert twin.recognizer._kernel is stage.recognizer._kernel  # the weights and gallery are shared
    rng = np.random.default_rng(3)
    for _ in range(5):
        stage.recognizer(vocab.gesture_joints("fist", rng, noise_mm=2.0).astype(np.float64))
    assert stage.recognizer(vocab.gesture_joints("fist", rng).astype(np.float64))[0] == "fist"
    # the twin has seen one frame of another gesture: its vote is that frame's, not the fists'
    name, _ = twin.recognizer(vocab.gesture_joints("open_palm", rng).astype(np.float64))
    assert name != "fist"


@needs_numba
def test_the_kernel_takes_other_layouts_and_refuses_other_shapes(engine):
    rec = GestureStage(engine, window=1).recognizer
    rng = np.random.default_rng(4)
    j = vocab.gesture_joints("fist", rng, noise_mm=2.0)  # float32
    a = rec(j)
    assert a == rec(np.asfortranarray(j.astype(np.float64))) == rec(j.tolist())
    assert a[0] == "fist"
    with pytest.raises(ValueError, match="21, 3"):
        rec(np.zeros((20, 3)))


def test_without_numba_the_recogniser_runs_numpy(engine, monkeypatch):
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    rec = GestureStage(engine).recognizer
    assert not rec.runs_kernel and rec.runs_dense
    rng = np.random.default_rng(6)
    names = [rec(vocab.gesture_joints("fist", rng, noise_mm=2.0).astype(np.float64))[0] for _ in range(5)]
    assert names[-1] == "fist"
    assert rec(None) == (None, None)


@needs_numba
def test_in_the_running_pipeline_the_kernel_answers_as_the_numpy_path(engine):
    """Generator frames through segmentation, the pose engine and One Euro: the stage (the kernel) names each
    frame as a numpy-path recogniser fed the same smoothed skeletons does."""
    from stream.pipeline import build_pipeline
    from stream.sources.synthetic import SyntheticSource

    ref = GestureStage(engine).recognizer
    compared = named = 0
    with build_pipeline(backend="onnxruntime", models="pose,gesture", overlay=False, threads=1) as p:
        stage = next(s for s in p.stages if s.name == "gesture")
        assert stage.recognizer.runs_kernel
        for frame in SyntheticSource(n_frames=40, seed=7):
            r = p.process(frame)
            want = ref.numpy_step(r.joints_xyz_mm)
            assert r.fields["gesture"] == want[0]
            if want[1] is not None:
                assert abs(r.fields["gesture_distance"] - want[1]) < 1e-5
                compared += 1
            named += want[0] is not None
    assert compared >= 30 and named >= 10
