"""Dynamic gestures: the synthetic motions, the window features, the DD-Net-like embedding and its training,
the stage on joint tracks through the shipped engine, and `handstream gesture enroll|eval --dynamic`."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from stream.cli import main as cli
from stream.errors import InputError
from stream.frames import RGBDFrame, camera
from stream.geometry import xyz_to_uvd
from stream.gestures import Gallery
from stream.gestures.dynamic import (
    FEATURES,
    FRAMES,
    REST,
    DynamicGallery,
    example_window,
    motion_extent,
    motion_segments,
    resample_track,
    window_features,
)
from stream.stages import FrameState
from stream.synth import motions
from stream.synth.gestures import random_rotation

CAM = camera("d435_320x240")


def _window(name: str, seed: int, noise_mm: float = 0.0) -> np.ndarray:
    return motions.motion_windows((name,), 1, seed, noise_mm=noise_mm)["windows_xyz_mm"][0].astype(np.float64)


def _example(name: str, rng: np.random.Generator, noise_mm: float = 1.0) -> np.ndarray:
    """One performance at 30 fps, from 0.3 s before it starts to its end (what a user's file holds)."""
    s = motions.motion_sample(name, rng, start_s=0.3)
    return motions.motion_track(s, np.arange(0.0, s.end_s + 1e-6, 1 / 30), rng, noise_mm)


def test_vocabulary_and_split():
    assert len(motions.FINE) >= 8 and len(motions.COARSE) >= 4
    assert set(motions.TRAIN).isdisjoint(motions.UNSEEN)
    assert set(motions.TRAIN) | set(motions.UNSEEN) == set(motions.FINE)
    coarse = {f: motions.MOTIONS[f][0] for f in motions.FINE}
    assert {coarse[f] for f in motions.TRAIN} == set(motions.COARSE) == {coarse[f] for f in motions.UNSEEN}
    assert motions.REST == REST and REST not in motions.FINE
    with pytest.raises(ValueError, match="unknown motion"):
        motions.motion_sample("moonwalk", np.random.default_rng(0))


def test_motions_move_the_hand_as_named():
    for seed in range(4):
        wrist = {n: _window(n, seed)[:, 0] for n in motions.FINE}
        d = {n: w[-1] - w[0] for n, w in wrist.items()}
        assert d["swipe_left"][0] < -80 and d["swipe_right"][0] > 80  # image x: right
        assert d["swipe_up"][1] < -80 and d["swipe_down"][1] > 80  # image y: down
        for n in ("swipe_left", "swipe_right"):
            assert abs(d[n][0]) > 2 * abs(d[n][1])
        assert d["push"][2] < -80  # towards the camera, and stays
        z = wrist["tap"][:, 2]
        assert z.min() < z[0] - 30 and abs(z[-1] - z[0]) < 20  # pokes towards the camera and comes back

        def area(xy):  # shoelace: positive for clockwise on the image (y down)
            return 0.5 * float((xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]).sum())

        assert area(wrist["circle_cw"][:, :2]) > 2000 and area(wrist["circle_ccw"][:, :2]) < -2000
        # grab closes the hand mid-way and opens it again; bloom ends open from a fist
        g = _window("grab", seed)
        tips = np.linalg.norm(g[:, [8, 12, 16, 20]] - g[:, :1], axis=-1).mean(-1)
        assert tips.min() < 0.7 * tips[0] and tips[-1] > 0.9 * tips[0]
        b = _window("bloom", seed)
        tips = np.linalg.norm(b[:, [8, 12, 16, 20]] - b[:, :1], axis=-1).mean(-1)
        assert tips[-1] > 1.4 * tips[0]
        # turn: the palm's normal ends turned by more than 100 degrees
        from stream.gestures.dynamic import hand_frames

        rot, _ = hand_frames(_window("turn", seed))
        assert float(rot[0, 2] @ rot[-1, 2]) < np.cos(np.radians(100))
    # a still hand barely moves; every motion moves more than the stage's gate (0.3 palm lengths)
    s = _window(REST, 0)
    assert np.linalg.norm(s[:, 0] - s[0, 0], axis=-1).max() < 45
    for seed in range(3):
        assert min(motion_extent(_window(n, seed)) for n in motions.FINE) > 0.35


def test_features_ignore_position_size_and_turning_but_keep_direction():
    w = _window("swipe_left", 3, noise_mm=2.0)
    f = window_features(w)
    assert f.shape == (FRAMES, FEATURES)
    # moved, scaled (another unit, a nearer hand of the same proportions): the same features
    assert np.allclose(window_features((w + [40.0, -25.0, 300.0]) * 0.001), f, atol=1e-4)
    # turned: the shape and the hand's turning stay, the motion turns with the camera
    rot = random_rotation(np.random.default_rng(1))
    g = window_features(w @ rot.T)
    assert np.allclose(g[:, :60], f[:, :60], atol=1e-4) and np.allclose(g[:, 63:], f[:, 63:], atol=1e-4)
    assert np.allclose(g[:, 60:63], f[:, 60:63] @ rot.T, atol=1e-4)
    # upside down on the image (180 degrees about the optical axis): a swipe left becomes one to the right
    flip = np.diag([-1.0, -1.0, 1.0])
    m = window_features(w @ flip.T)[:, 60:63]
    assert m[-1, 0] - m[0, 0] > 1.0 and f[-1, 60] - f[0, 60] < -1.0
    # a right swipe's motion is the left one's, not its shape
    r = window_features(_window("swipe_right", 3))
    assert (r[-1, 60] - r[0, 60]) > 1.0


def test_resampling_and_examples():
    t = np.array([0.0, 100.0, 200.0])
    j = np.stack([np.full((21, 3), v) for v in (0.0, 10.0, 30.0)])
    w = resample_track(t, j, end_ms=200.0, window_ms=400.0, frames=5)  # at -200, -100, 0, 100, 200
    assert np.allclose(w[:, 0, 0], [0.0, 0.0, 0.0, 10.0, 30.0])
    w = resample_track(t, j, end_ms=150.0, window_ms=100.0, frames=3)  # at 50, 100, 150
    assert np.allclose(w[:, 0, 0], [5.0, 10.0, 20.0])
    ex = example_window(np.stack([np.full((21, 3), float(i)) for i in range(16)]), fps=30.0)
    assert ex.shape == (FRAMES, 21, 3) and ex[0, 0, 0] == 0.0 and ex[-1, 0, 0] == 15.0
    # a performance track holds its gestures where it says, and enrollment finds each of them
    times, joints, segs = motions.performance(["swipe_up", "grab", "circle_cw"], np.random.default_rng(2))
    found = motion_segments(times, joints)
    assert len(found) == 3
    for (_, a, b), (fa, fb) in zip(segs, found):
        assert abs(fa - a * 1000) < 300 and abs(fb - b * 1000) < 300


def test_models_and_a_short_training_run():
    torch = pytest.importorskip("torch")
    from train.gesture.dynamic import DynamicTrainConfig, train_dynamic_embedding
    from train.gesture.dynamic_models import create_dynamic_model

    for name in ("ddnet", "window_mlp"):
        m = create_dynamic_model(name, dim=32).eval()
        x = torch.from_numpy(window_features(np.stack([_window("tap", 0), _window("wave", 1)])))
        e = m(x)
        assert e.shape == (2, 32) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    params = sum(p.numel() for p in create_dynamic_model("ddnet").parameters())
    assert params <= 150_000  # the size of DD-Net's small SHREC'17 variant
    with pytest.raises(ValueError, match="unknown dynamic gesture model"):
        create_dynamic_model("resnet")
    cfg = DynamicTrainConfig(
        steps=3, bank_per_class=4, pool_per_class=3, tuples=8, eval_per_class=6, eval_noise_mm=(0.0,)
    )
    model, metrics = train_dynamic_embedding(cfg, log=lambda *a: None)
    (u,) = metrics["unseen"]
    assert set(u["recall_at"]) == {"1", "2", "4", "8"} and u["classes"] == len(motions.UNSEEN)
    assert 0.0 <= u["recall_at"]["1"] <= u["recall_at"]["8"] <= 1.0 and -1e-9 <= u["nmi"] <= 1.0 + 1e-9
    assert len(metrics["history"]) == 2 and all(np.isfinite(loss) for _, loss in metrics["history"])


def _feed(stage, times_ms, joints) -> list[tuple[float, str]]:
    out = []
    for i, (t, j) in enumerate(zip(times_ms, joints)):
        st = FrameState(RGBDFrame(i, float(t), np.zeros(CAM.shape, np.uint16), CAM))
        st.joints_mm = np.asarray(j, np.float64)
        stage.run(st)
        assert set(stage.record_fields(st)) == {"dynamic_gesture", "dynamic_gesture_distance"}
        if st.fields["dynamic_gesture"]:
            out.append((float(t), st.fields["dynamic_gesture"]))
    return out


def test_the_stage_reports_a_swipe_once():
    import engines
    from stream.gestures.dynamic_stage import DynamicGestureStage

    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        stage = DynamicGestureStage(eng)  # the gallery shipped beside the engine
        for seed in (0, 1):
            times, joints, segs = motions.performance(
                ["swipe_right"], np.random.default_rng(seed), noise_mm=1.0
            )
            stage.reset()
            reports = _feed(stage, times, joints)
            assert [n for _, n in reports] == ["swipe_right"]
            assert reports[0][0] > segs[0][1] * 1000  # not before the swipe began
        # a resting hand is never named
        s = motions.motion_sample(REST, np.random.default_rng(3))
        t = np.arange(0.0, 5.0, 1 / 30)
        stage.reset()
        assert _feed(stage, t * 1000, motions.motion_track(s, t, np.random.default_rng(3), 1.0)) == []
        # each hand's copy keeps its own track: reset() rebinds, never clears a shared deque
        other = copy.copy(stage)
        other.reset()
        assert other._times is not stage._times and other.matcher is stage.matcher
        # a lost hand: null fields; the name of the last report is drawn beside the wrist
        times, joints, _ = motions.performance(["push"], np.random.default_rng(5), noise_mm=1.0)
        stage.reset()
        got = _feed(stage, times, joints)
        st = FrameState(RGBDFrame(0, got[0][0] + 100.0 if got else 0.0, np.zeros(CAM.shape, np.uint16), CAM))
        stage.run(st)
        assert stage.record_fields(st) == {"dynamic_gesture": None, "dynamic_gesture_distance": None}
        st.joints_uvd = xyz_to_uvd(np.array([[0.0, 0.0, 400.0]] * 21), CAM)
        img = np.zeros((CAM.height, CAM.width * 2, 3), np.uint8)
        stage.draw(img, st)
        assert img.any() == bool(got)
        with pytest.raises(InputError, match="no gesture enrolled"):
            DynamicGestureStage(eng, gallery=DynamicGallery())


def test_enroll_list_eval_and_run_from_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(7)
    names = ["swipe_down", "circle_ccw", "double_tap", "beckon", "pinch_release"]  # never trained on
    ex = [(n, _example(n, rng)) for n in names for _ in range(8)]
    # examples of different lengths: a file holds one length, so pad each at its start (the hand rested)
    n_max = max(len(j) for _, j in ex)
    pad = np.stack([np.concatenate([np.repeat(j[:1], n_max - len(j), 0), j]) for _, j in ex])
    data = tmp_path / "motions.npz"
    np.savez(data, joints_xyz_mm=pad, label=np.array([n for n, _ in ex]), fps=30.0)
    assert cli(["gesture", "eval", "--dynamic", "--joints", str(data), "--shots", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"recall_at", "nmi", "shot_accuracy", "classes", "samples"} <= set(out)
    assert set(out["recall_at"]) == {"1", "2", "4", "8"} and out["classes"] == 5 and out["samples"] == 40
    assert out["recall_at"]["1"] >= 0.6 and out["seen_in_training"] == []

    gal = tmp_path / "mine.npz"
    for n in ("swipe_down", "circle_ccw"):
        one = tmp_path / f"{n}.npz"
        np.savez(one, joints_xyz_mm=pad[[i for i, (m, _) in enumerate(ex) if m == n][:5]])
        assert cli(["gesture", "enroll", n, "--dynamic", "--gallery", str(gal), "--joints", str(one)]) == 0
    capsys.readouterr()
    assert cli(["gesture", "list", "--gallery", str(gal), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"swipe_down": 5, "circle_ccw": 5}
    # the user's gallery names a performance of one of its motions (a resting hand finds the shipped REST)
    import engines
    from stream.gestures.dynamic_stage import DynamicGestureStage

    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        stage = DynamicGestureStage(eng, gallery=gal)
        assert REST in stage.matcher.labels
        times, joints, _ = motions.performance(["swipe_down"], np.random.default_rng(11), noise_mm=1.0)
        assert [n for _, n in _feed(stage, times, joints)] == ["swipe_down"]
    assert cli(["gesture", "remove", "circle_ccw", "--gallery", str(gal)]) == 0
    assert DynamicGallery.load(gal).names == ["swipe_down"]
    # every record of a run carries the fields
    jl = tmp_path / "r.jsonl"
    args = ["run", "--source", "synthetic:2", "--frames", "12", "--dynamic-gestures", str(gal)]
    assert cli([*args, "--jsonl", str(jl), "--quiet"]) == 0
    recs = [json.loads(line) for line in jl.read_text().splitlines()]
    assert len(recs) == 12 and all("dynamic_gesture" in r and "dynamic_gesture_distance" in r for r in recs)
    assert {r["dynamic_gesture"] for r in recs} <= {"swipe_down", None}
    # bad input is one line
    capsys.readouterr()
    static = Gallery()
    static.add("fist", np.zeros((2, 21, 3), np.float32))
    static.save(tmp_path / "static.npz")
    for argv in (
        [
            "run",
            "--source",
            "synthetic:2",
            "--frames",
            "4",
            "--dynamic-gestures",
            str(tmp_path / "static.npz"),
        ],
        [
            "gesture",
            "enroll",
            "x",
            "--dynamic",
            "--gallery",
            str(gal),
            "--joints",
            str(tmp_path / "nope.npz"),
        ],
        ["gesture", "eval", "--dynamic", "--joints", str(tmp_path / "swipe_down.npz")],
    ):
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
    flat = tmp_path / "flat.npz"
    np.savez(flat, joints_xyz_mm=np.zeros((3, 21, 3)))
    assert cli(["gesture", "enroll", "x", "--dynamic", "--gallery", str(gal), "--joints", str(flat)]) == 2
    assert "(N, T, 21, 3)" in capsys.readouterr().err


def test_unfinished_motions_are_rest_windows():
    full = motions.motion_windows(("swipe_left",), 3, 5)
    part = motions.motion_windows(("swipe_left",), 3, 5, partial=True)
    assert set(part["label"]) == {REST} and set(part["coarse"]) == {motions.REST_COARSE}
    # the same performances, cut 5-85 % of the way: the wrist has not gone as far
    travelled = lambda d: np.abs(d["windows_xyz_mm"][:, -1, 0, 0] - d["windows_xyz_mm"][:, 0, 0, 0])  # noqa: E731
    assert travelled(part).mean() < 0.8 * travelled(full).mean()


def test_sweep_table_and_stream_measure(tmp_path, capsys):
    pytest.importorskip("torch")
    from train.gesture.dynamic_recipe import main as recipe

    out = tmp_path / "sweep.jsonl"
    small = ["--steps", "2", "--bank-per-class", "4", "--pool-per-class", "3", "--tuples", "6"]
    argv = ["sweep", "--out", str(out), *small, "--eval-per-class", "6", "--models", "window_mlp"]
    assert recipe([*argv, "--losses", "triplet", "--selections", "random"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and "baseline" in rows[0] and rows[1]["config"]["loss"] == "triplet"
    assert rows[0]["unseen"][0]["samples"] == rows[1]["unseen"][0]["samples"] == 6 * len(motions.UNSEEN)
    capsys.readouterr()
    assert recipe(["table", str(out)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 4 and "no learning" in table[2] and "window_mlp | triplet | random" in table[3]
    assert recipe(["stream", "--tracks", "1", "--per-track", "2", "--seed", "3"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["performances"] == 2 and m["right"] + m["wrong"] + m["missed"] == 2 and m["extra"] >= 0


def test_enroll_a_motion_from_a_source(tmp_path, capsys):
    gal = tmp_path / "src.npz"
    argv = ["gesture", "enroll", "wiggle", "--dynamic", "--gallery", str(gal), "--source", "synthetic:7"]
    assert cli([*argv, "--max-frames", "90"]) == 0  # the generator's hand moves between its gestures
    g = DynamicGallery.load(gal)
    assert g.names == ["wiggle"] and g.joints.shape[1:] == (FRAMES, 21, 3)
    capsys.readouterr()
    assert cli([*argv, "--max-frames", "3"]) == 2  # too short to hold a movement: one line, nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not move" in err[0]
    assert DynamicGallery.load(gal).counts() == g.counts()


def test_the_stage_waits_for_the_hand_to_settle():
    import engines
    from stream.gestures.dynamic_stage import DynamicGestureStage

    with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
        stage = DynamicGestureStage(eng, settle_ms=150.0)
        rng = np.random.default_rng(4)
        s = motions.motion_sample("double_tap", rng, start_s=0.5, duration_s=1.2)
        t = np.arange(0.0, 2.5, 1 / 30)
        track = motions.motion_track(s, t, rng, noise_mm=5.0)
        for tt, j in zip(t * 1000, track):
            stage._times.append(tt)
            stage._joints.append(j.astype(np.float64))
            if 1.05 < tt / 1000 < 1.15:  # between the two taps the hand is on its way
                assert not stage._settled(tt)
        assert stage._settled(t[-1] * 1000)  # a second after the end it rests, through 5 mm of jitter
