"""The learned reading of the size_fit evidence (stream/size/readout.py, train/size/readout.py): the shipped
file loads and matches the shipped settings, the runtime reads real frames as the training code's examples
say, a constructed map is recovered, and a readout refuses settings it was not trained for."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from stream.errors import InputError
from stream.size.measure import SizeFitConfig, SizeFitter, read_size
from stream.size.readout import SHIPPED, SizeReadout, config_dict, load_readout, readout_inputs, readout_path
from train.size.readout import (
    Examples,
    build_evidence,
    cross_validate,
    fit_readout,
    load_examples,
    readout_sizes,
)


def test_the_shipped_readout_loads_for_the_shipped_settings_and_says_how_it_was_made():
    cfg = SizeFitConfig()
    assert cfg.readout == SHIPPED and readout_path(SHIPPED).is_file()
    r = load_readout(SHIPPED, cfg)
    assert "handstream train size readout" in r.made and "CV" in r.made
    n_in = 4 + len(cfg.lengths_mm) * len(cfg.width_offsets_mm) + 3
    assert r.in_mean.shape == (n_in,) and r.correction(r.in_mean).shape == (2,)
    # at the training examples' mean input the correction is a few mm at most (the readout refines the
    # posterior mean, it does not replace it)
    assert np.all(np.abs(r.correction(r.in_mean)) < 10.0)


def test_a_readout_refuses_other_settings_and_a_broken_file_is_one_line(tmp_path):
    r = load_readout(SHIPPED)
    with pytest.raises(InputError, match="temperature_length"):
        r.check(replace(SizeFitConfig(), temperature_length=50.0))
    with pytest.raises(InputError, match="lengths_mm"):
        SizeFitter(SizeFitConfig(lengths_mm=(160.0, 180.0, 200.0)))
    no_prior = SizeFitConfig()
    no_prior = replace(no_prior, fit=replace(no_prior.fit, pose_prior=None))
    with pytest.raises(InputError, match="pose_prior_weight"):
        r.check(no_prior)  # trained on candidate fits with the pose prior
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({**r.to_json(), "out_mean": [0.0]}))
    with pytest.raises(InputError, match="cannot read the size readout"):
        load_readout(bad)
    with pytest.raises(InputError, match="no size readout"):
        load_readout(tmp_path / "missing.json")


def _examples(n: int, rng) -> tuple[Examples, np.ndarray, np.ndarray]:
    """Made-up examples whose truth is the posterior mean plus a known linear map of two inputs."""
    x = rng.normal(size=(n, 6)) * [1.0, 2.0, 0.1, 1.0, 3.0, 0.5] + [180.0, 80.0, 0.5, 6.0, 1.0, 0.2]
    base = x[:, :2] + rng.normal(0.0, 3.0, (n, 2))
    coef = np.zeros((6, 2))
    coef[3, 0], coef[4, 1] = 2.0, -0.7
    size = base + x @ coef + [1.5, -0.5]
    ex = Examples(x, base, size, np.arange(n) % 50, np.ones(n, int), -np.ones(n, int))
    return ex, coef, size


def test_ridge_recovers_a_known_correction_and_the_saved_file_reads_the_same(tmp_path):
    ex, _, size = _examples(400, np.random.default_rng(0))
    cfg = SizeFitConfig()
    r = fit_readout(ex, cfg, hidden=0, ridge=1e-9, made="test")
    np.testing.assert_allclose(readout_sizes(r, ex), size, atol=1e-6)
    again = load_readout(r.save(tmp_path / "r.json"), cfg)
    np.testing.assert_allclose(again.correction(ex.x), r.correction(ex.x), rtol=1e-12, atol=1e-12)
    # no readout: the posterior mean; a heavy penalty: only the mean residual is left
    np.testing.assert_array_equal(readout_sizes(None, ex), ex.base)
    heavy = fit_readout(ex, cfg, hidden=0, ridge=1e9)
    np.testing.assert_allclose(
        heavy.correction(ex.x), np.broadcast_to((size - ex.base).mean(0), size.shape), atol=1e-3
    )


def test_the_network_learns_a_known_correction_and_cross_validation_groups_subjects():
    pytest.importorskip("torch", reason="the readout's network trains with torch (train/ only)")
    ex, _, size = _examples(600, np.random.default_rng(1))
    cfg = SizeFitConfig()
    r = fit_readout(ex, cfg, hidden=16, weight_decay=0.0, epochs=60, seed=0)
    before = np.abs(ex.base - size).mean()
    assert np.abs(readout_sizes(r, ex) - size).mean() < 0.25 * before
    cv = cross_validate(ex, cfg, folds=5, hidden=0, ridge=1e-6)
    assert cv["readout"]["frame_mae_mm"][0] < 0.01 < cv["posterior_mean"]["frame_mae_mm"][0]
    assert sum(f["frames"] for f in cv["readout_folds"]) == 600


def test_a_constructed_evidence_reads_as_the_posterior_plus_the_readout_s_correction():
    """A sharp bowl at 200 mm and a flat one: the readout's inputs carry the posterior's mean and
    confidence, and a readout whose map is zero but for a constant gives posterior + constant."""
    cfg = SizeFitConfig()
    cand = cfg.candidates()
    bowl = 574.0 + 20.0 * (cand[..., 0] - 200.0) ** 2
    x, base, conf = readout_inputs(bowl, np.log(574.0), np.zeros(3), cfg)
    np.testing.assert_allclose(base, read_size(bowl, cfg)[0])
    assert x[2] == pytest.approx(conf) and conf > 0.9
    assert x[3] == pytest.approx(np.log(574.0))
    assert x[4 + np.argmin(bowl.ravel())] == pytest.approx(0.0)  # log(e / min e) is 0 at the minimum
    zero = SizeReadout(config_dict(cfg), np.zeros(len(x)), np.ones(len(x)), ((np.zeros((len(x), 2)), np.zeros(2)),),
                       np.array([3.0, -1.0]), np.ones(2))  # fmt: skip
    size, c = zero.read(bowl, np.log(574.0), np.zeros(3), cfg)
    np.testing.assert_allclose(size, base + [3.0, -1.0])
    assert c == pytest.approx(conf)


def _state(maker, frame):
    """The frame through the maker's real preprocess and pose stages; None without a hand."""
    from stream.stages import FrameState

    st = FrameState(frame)
    maker.pre.run(st)
    if st.crop is None:
        return None
    maker.pose.run(st)
    return st


@pytest.fixture(scope="module")
def evidence_dir(tmp_path_factory):
    """Three frames and one 30-frame sequence of training subjects measured by `build_evidence`."""
    out = tmp_path_factory.mktemp("evidence")
    build_evidence(out, 3, 1, log=lambda *_: None)
    return out


def test_extra_frames_come_from_their_own_stream_in_blocks(tmp_path, monkeypatch):
    """`extra_frames`: frames of a second stream with more training subjects, chunk k of block b starting
    at sample 100 000 x (b + 1): with blocks and chunks of one frame, frames 100 000 and 200 000."""
    import train.size.readout as R
    from train.size.data import TRAIN_SUBJECT_OFFSET

    monkeypatch.setattr(R, "EXTRA_BLOCK", 1)
    monkeypatch.setattr(R, "EXTRA_CHUNK", 1)
    paths = build_evidence(tmp_path, 0, 0, log=lambda *_: None, extra_frames=2)
    assert [p.name for p in paths] == ["frames_x000.npz", "frames_x001.npz"]
    z = [np.load(p) for p in paths]
    assert [int(a["frame"][0]) for a in z] == [100_000, 200_000]
    assert all(
        TRAIN_SUBJECT_OFFSET <= int(a["subject"][0]) < TRAIN_SUBJECT_OFFSET + R.EXTRA_SUBJECTS for a in z
    )


def test_shards_share_the_chunks_between_processes(tmp_path, monkeypatch):
    """`shard` (i, n): each process measures every n-th chunk from the i-th and returns every chunk's path;
    together they write what one process would."""
    import train.size.readout as R

    monkeypatch.setattr(R, "EXTRA_BLOCK", 1)
    monkeypatch.setattr(R, "EXTRA_CHUNK", 1)
    names = ["frames_x000.npz", "frames_x001.npz", "frames_x002.npz"]
    paths = build_evidence(tmp_path, 0, 0, log=lambda *_: None, extra_frames=3, shard=(1, 2))
    assert [p.name for p in paths] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames_x001.npz"]
    build_evidence(tmp_path, 0, 0, log=lambda *_: None, extra_frames=3, shard=(0, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert [int(np.load(tmp_path / n)["frame"][0]) for n in names] == [100_000, 200_000, 300_000]
    with pytest.raises(InputError, match="shard"):
        build_evidence(tmp_path, 0, 0, extra_frames=3, shard=(2, 2))


def test_the_recipe_cross_validates_and_writes_a_readout_that_loads(evidence_dir, tmp_path, capsys):
    from stream.cli import main as cli

    runs, out = tmp_path / "runs", tmp_path / "engines"
    argv = ["train", "size", "readout", f"evidence_dir={evidence_dir}", f"runs={runs}", f"out={out}",
            "readout_hidden=0", "folds=2"]  # fmt: skip
    assert cli(argv) == 0
    said = capsys.readouterr().out
    cv = json.loads((runs / "readout_cv.json").read_text())
    assert cv["posterior_mean"]["frames"] == cv["readout"]["frames"] >= 2 and cv["readout"]["sequences"] == 1
    r = load_readout(out / "size_readout.json", SizeFitConfig())
    assert "readout_hidden=0" in r.made and len(r.layers) == 1 and "size_readout.json" in said
    # no evidence yet: one line saying what to run, no traceback
    assert cli(["train", "size", "readout", f"evidence_dir={tmp_path}", f"runs={runs}", f"out={out}"]) != 0
    err = capsys.readouterr().err
    assert "holds no frames_*.npz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_runtime_reads_real_frames_as_the_training_code_s_examples(evidence_dir):
    """Three frames and one 30-frame sequence of training subjects measured by the training code's
    `build_evidence` (real preprocess and pose engine, every candidate fitted) and read by its examples,
    against the same frames through SizeFitter (the size_fit stage's measurement) with the shipped readout:
    per frame, and the track's size after 2, 5 and 30 frames."""
    from stream.fitting import observe
    from stream.synth import HandSynthesizer
    from train.size.data import STATIC_FPS, TRAIN_SUBJECT_OFFSET, CropMaker, independent_frames, size_scene
    from train.size.readout import _offset_sequence_subjects

    cfg = SizeFitConfig()
    ex = load_examples(evidence_dir, cfg, prefixes=(2, 5, 30))
    readout = load_readout(SHIPPED, cfg)
    want = readout_sizes(readout, ex)
    maker = CropMaker()
    fitter = SizeFitter(cfg)
    assert fitter.readout is not None
    got = []
    for s in independent_frames(3, 1, 600, TRAIN_SUBJECT_OFFSET):
        maker.reset()
        st = _state(maker, s.frame)
        obs = None if st is None else observe(st.crop, st.frame.depth_mm, cfg.fit.points)
        if obs is not None:
            got.append(fitter.fork().add(obs, st.joints_raw_mm))
    single = ex.n == 1
    assert len(got) == single.sum() >= 2
    np.testing.assert_allclose(np.array(got), want[single], atol=1e-6)
    synth = HandSynthesizer(size_scene(600), 5)
    track = fitter.fork()
    held = {}
    maker.reset()
    with _offset_sequence_subjects(TRAIN_SUBJECT_OFFSET):
        frames = list(synth.sequence(30, STATIC_FPS))
    for s in frames:
        st = _state(maker, s.frame)
        obs = None if st is None else observe(st.crop, st.frame.depth_mm, cfg.fit.points)
        if obs is not None:
            track.add(obs, st.joints_raw_mm)
        if track.frames:
            held[s.frame_index + 1] = track.estimate()[0]  # after the first n frames
    for n in (2, 5, 30):
        k = np.flatnonzero(ex.n == n)
        assert len(k) == 1 and n in held
        np.testing.assert_allclose(held[n], want[k[0]], atol=1e-3)  # the stage holds float32
