"""`handstream gesture`: galleries that survive bad input, enrollment from skeletons and from a real
pipeline run, and evaluation through a real ONNX Runtime session of an exported embedding."""

from __future__ import annotations

import numpy as np
import pytest

from stream.cli import main as cli
from stream.errors import InputError
from stream.gestures import UNKNOWN, Gallery, GestureRecognizer, canonical_joints
from stream.synth import gestures as vocab


def test_gallery_round_trip_and_bad_input(tmp_path):
    g = Gallery()
    rng = np.random.default_rng(0)
    g.add("fist", canonical_joints(np.stack([vocab.gesture_joints("fist", rng) for _ in range(3)])))
    g.add("ok", canonical_joints(np.stack([vocab.gesture_joints("ok", rng) for _ in range(2)])))
    g.add("fist", canonical_joints(vocab.gesture_joints("fist", rng)[None]))  # replaces the three
    assert g.counts() == {"fist": 1, "ok": 2}
    p = g.save(tmp_path / "g.npz")
    back = Gallery.load(p)
    assert back.labels == g.labels and np.array_equal(back.joints, g.joints)
    with pytest.raises(InputError, match="1-64 characters"):
        g.add("", g.joints[:1])
    with pytest.raises(InputError, match="NaN"):
        g.add("x", np.full((1, 21, 3), np.nan))
    with pytest.raises(InputError, match="no gesture named 'wave'"):
        g.remove("wave")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a gesture gallery"):
        Gallery.load(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="not found"):
        Gallery.load(tmp_path / "none.npz")


def test_enroll_list_remove_from_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(1)
    j = np.stack([vocab.gesture_joints("gun", rng, noise_mm=3.0) for _ in range(50)])
    np.savez(tmp_path / "gun.npz", joints_xyz_mm=j)
    gal = str(tmp_path / "mine.npz")
    assert cli(["gesture", "enroll", "gun", "--gallery", gal, "--joints", str(tmp_path / "gun.npz")]) == 0
    assert Gallery.load(gal).counts() == {"gun": 30}  # --keep 30, evenly spaced
    # a real pipeline run over the generator: the skeletons of the frames with a hand
    assert (
        cli(["gesture", "enroll", "seq", "--gallery", gal, "--source", "synthetic:3", "--max-frames", "12"])
        == 0
    )
    counts = Gallery.load(gal).counts()
    assert 1 <= counts["seq"] <= 12 and counts["gun"] == 30
    capsys.readouterr()
    assert cli(["gesture", "list", "--gallery", gal, "--json"]) == 0
    assert '"gun": 30' in capsys.readouterr().out
    assert cli(["gesture", "remove", "gun", "--gallery", gal]) == 0
    assert cli(["gesture", "remove", "gun", "--gallery", gal]) == 2
    assert "no gesture named 'gun'" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", joints_xyz_mm=np.zeros((4, 14, 3)))
    assert cli(["gesture", "enroll", "x", "--gallery", gal, "--joints", str(tmp_path / "bad.npz")]) == 2
    assert "(N, 21, 3)" in capsys.readouterr().err
    assert Gallery.load(gal).counts() == {"seq": counts["seq"]}  # a refused enrollment changed nothing


torch = pytest.importorskip("torch", reason="exporting an embedding needs torch (the train extra)")


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    from train.gesture.recipe import main as recipe

    d = tmp_path_factory.mktemp("gesture")
    assert recipe(["train", "--out", str(d), "--steps", "40"]) == 0
    assert recipe(["ship", "--checkpoint", str(d / "gesture.pt"), "--out", str(d / "eng")]) == 0
    return d / "eng"


def test_exported_engine_recognises_enrolled_gestures(engine_dir, tmp_path, capsys):
    import engines
    from engines.manifest import load_manifest

    m = load_manifest(engine_dir / "gesture.json")
    assert m.task == "gesture_embedding" and m.input_names == ("joints",)
    reject = m.metrics["reject_distance"]
    assert 0 < reject < 2  # unit vectors are at most 2 apart
    rng = np.random.default_rng(3)
    gallery = Gallery()
    for name in ("fist", "open_palm", "point"):
        gallery.add(name, canonical_joints(np.stack([vocab.gesture_joints(name, rng) for _ in range(5)])))
    with engines.load_engine(engine_dir / "gesture.onnx", backend="onnxruntime") as eng:
        rec = GestureRecognizer(eng, gallery, reject_distance=reject, window=3)
        hits = sum(rec(vocab.gesture_joints("open_palm", rng))[0] == "open_palm" for _ in range(6))
        assert hits >= 4
        rec.reset()
        assert rec(None) == (None, None)
        names = [rec(vocab.gesture_joints("fist", rng))[0] for _ in range(3)]
        assert names[-1] in ("fist", None) and UNKNOWN not in names
    # the eval verb through the same engine, on unseen classes
    d = vocab.gesture_dataset(vocab.UNSEEN[:6], 12, 5, noise_mm=3.0)
    np.savez(tmp_path / "unseen.npz", **d)
    capsys.readouterr()
    assert (
        cli(
            [
                "gesture",
                "eval",
                "--joints",
                str(tmp_path / "unseen.npz"),
                "--engine",
                str(engine_dir / "gesture.onnx"),
                "--json",
            ]
        )
        == 0
    )
    import json

    out = json.loads(capsys.readouterr().out)
    assert set(out["recall_at"]) == {"1", "2", "4", "8"} and out["classes"] == 6 and out["samples"] == 72
    assert out["recall_at"]["1"] > 0.5  # far above chance (1/6) even after 40 steps
    from stream.synth.hand import GESTURES_FINE

    gal = Gallery.load(engine_dir / "gesture_gallery.npz")
    assert gal.names == list(GESTURES_FINE) and set(gal.counts().values()) == {10}


def test_eval_on_a_synth_dataset(tmp_path, capsys):
    import json

    data = tmp_path / "synth"
    assert cli(["synth", "--out", str(data), "--frames", "40", "--seed", "3"]) == 0
    capsys.readouterr()
    assert cli(["gesture", "eval", "--data", str(data), "--json"]) == 0  # the shipped engine
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == 40 and out["classes"] >= 2
    assert set(out["seen_in_training"]) <= set(vocab.TRAIN) and out["recall_at"]["1"] > 0.5
    # the scene generator's vocabulary holds one class the embedding never saw: too few to evaluate alone
    assert cli(["gesture", "eval", "--data", str(data), "--unseen-only"]) == 2
    assert "fewer than two classes" in capsys.readouterr().err


def test_static_and_dynamic_galleries_share_one_file_format_but_refuse_each_other(tmp_path):
    from stream.gestures.dynamic import DynamicGallery, load_any_gallery

    rng = np.random.default_rng(1)
    g = Gallery()
    g.add("fist", canonical_joints(np.stack([vocab.gesture_joints("fist", rng) for _ in range(2)])))
    d = DynamicGallery()
    d.add("swipe", rng.normal(size=(3, 8, 21, 3)))
    gp, dp = g.save(tmp_path / "static.npz"), d.save(tmp_path / "dynamic.npz")
    back = DynamicGallery.load(dp)
    assert back.labels == d.labels and np.array_equal(back.joints, d.joints)
    assert type(load_any_gallery(dp)) is DynamicGallery and type(load_any_gallery(gp)) is Gallery
    with pytest.raises(InputError, match="is a gallery of static gestures"):
        DynamicGallery.load(gp)
    with pytest.raises(InputError, match=r"joints \(3, 8, 21, 3\) do not match 3 labels"):
        Gallery.load(dp)
    with pytest.raises(InputError, match="make one with `handstream gesture enroll`"):
        Gallery.load(tmp_path / "none.npz")
    with pytest.raises(InputError, match="make one with `handstream gesture enroll --dynamic`"):
        DynamicGallery.load(tmp_path / "none.npz")
    assert DynamicGallery.load(tmp_path / "none.npz", missing_ok=True).labels == []
    assert Gallery.load(tmp_path / "none.npz", missing_ok=True).labels == []
    for gallery in (g, d):
        with pytest.raises(InputError, match="a gallery is an .npz file, got g.txt"):
            gallery.save(tmp_path / "g.txt")
        with pytest.raises(InputError, match="cannot write the gallery"):
            gallery.save(tmp_path / "no" / "such" / "g.npz")
    assert not (tmp_path / "g.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "dynamic.npz",
        "static.npz",
    ]


def test_unseen_only_keeps_the_classes_the_embedding_never_saw_for_skeletons_and_windows():
    from stream.app.gesture import _only_unseen
    from stream.synth import motions

    labels = np.array([vocab.TRAIN[0], *vocab.UNSEEN[:2], vocab.UNSEEN[0]])
    x, kept = _only_unseen(np.arange(4), labels, vocab.UNSEEN, "classes")
    assert x.tolist() == [1, 2, 3] and kept.tolist() == labels[1:].tolist()
    windows = np.zeros((3, 8, 21, 3))
    names = np.array([motions.TRAIN[0], motions.TRAIN[1], motions.UNSEEN[0]])
    with pytest.raises(
        InputError, match=rf"fewer than two motions .*\({motions.UNSEEN[0]}\); evaluate without"
    ):
        _only_unseen(windows, names, motions.UNSEEN, "motions")
    with pytest.raises(InputError, match=r"fewer than two classes .*\(none\)"):
        _only_unseen(np.arange(1), np.array([vocab.TRAIN[0]]), vocab.UNSEEN, "classes")
