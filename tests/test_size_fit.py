"""Hand size measured by fitting hand models of several sizes to the depth (stream/size/measure.py, the
size_fit stage): the grid search and its refinement, the per-track sums, the stage through the real runtime
(pose engine in ONNX Runtime, generator frames), `handstream eval size fit` and `handstream calibrate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.cli import main as cli
from stream.fitting import fit_hand, observe
from stream.pipeline import build_pipeline
from stream.size.measure import (
    SizeFitConfig,
    SizeFitter,
    compile_kernels,
    evidence,
    frame_terms,
    pick_size,
    population_width,
    read_size,
    score_terms,
    weights,
)
from stream.sources.synthetic import SyntheticSource
from stream.stage_registry import registered_stages

SMALL = SizeFitConfig(
    lengths_mm=(160.0, 180.0, 200.0, 220.0), width_offsets_mm=(-6.0, 0.0, 6.0), readout=None
)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pick_size_is_the_minimum_of_a_sharp_energy_and_the_population_of_a_flat_one():
    cfg = SizeFitConfig(temperature_length=1e-3, temperature_width=1e-3, length_scale=1.0)
    cand = cfg.candidates()
    length, offset = 183.7, 2.1
    bowl = (cand[..., 0] - length) ** 2 + 4.0 * (cand[..., 1] - population_width(cand[..., 0]) - offset) ** 2
    got = pick_size(bowl, cfg)
    assert got[0] == pytest.approx(length, abs=0.5)
    assert got[1] - population_width(got[0]) == pytest.approx(offset, abs=0.5)
    # the best model of 183.7 mm stands for a hand 2 % longer; its palm width is the model's
    scaled = pick_size(
        bowl, SizeFitConfig(temperature_length=1e-3, temperature_width=1e-3, length_scale=1.02)
    )
    assert scaled[0] == pytest.approx(1.02 * length, abs=0.5)
    assert scaled[1] == pytest.approx(got[1], abs=0.5)
    # no evidence: the population's mean hand, on the regression line (the width within the 0.4 mm the
    # candidates' width grid, centred on the models' lengths, cuts off the hand's prior)
    flat = pick_size(np.zeros(cand.shape[:2]), SizeFitConfig())
    assert flat[0] == pytest.approx(SizeFitConfig().prior_length_mm, abs=0.1)
    assert flat[1] == pytest.approx(population_width(flat[0]), abs=0.4)
    flat = pick_size(np.zeros(cand.shape[:2]), SizeFitConfig(length_scale=1.0))
    assert flat[1] == pytest.approx(population_width(flat[0]), abs=0.1)
    # weak evidence for a long hand moves the estimate part of the way; ten times sharper evidence moves it
    # further
    lean = (cand[..., 0] - 215.0) ** 2 / 40.0
    one, ten = pick_size(lean, SizeFitConfig())[0], pick_size(10 * lean, SizeFitConfig())[0]
    assert flat[0] < one < ten < 215.0


def test_a_frame_no_candidate_explains_well_counts_less_in_a_track():
    """Two frames whose energies bend alike in length, one explained well (best energy 300 mm^2) with its
    minimum at 170 mm, one badly (residual variance ten times larger) at 210 mm: as evidence, divided by
    their best energies, the second counts a tenth as much, so the track's bowl has its minimum at
    (10 x 170 + 210) / 11 = 173.6 mm; averaged raw, the two count alike (190 mm). Sharp temperatures and a
    flat prior make the posterior mean the minimum."""
    base = dict(temperature_length=1e-3, temperature_width=1e-3, length_scale=1.0)
    base.update(prior_length_sd_mm=1e6, prior_width_sd_mm=1e6)
    cand = SizeFitConfig().candidates()
    length, offset = cand[..., 0], cand[..., 1] - population_width(cand[..., 0])
    frames = [300.0 + (length - 170.0) ** 2 + offset**2, 3000.0 + (length - 210.0) ** 2 + offset**2]
    for ref, want in ((373.0, (10 * 170.0 + 210.0) / 11), (0.0, 190.0)):
        cfg = SizeFitConfig(**base, energy_ref_mm2=ref)
        track = np.mean([evidence(e, cfg) for e in frames], axis=0)
        assert pick_size(track, cfg)[0] == pytest.approx(want, abs=0.5), ref


def test_the_confidence_is_the_share_of_the_population_s_spread_the_evidence_removed():
    cfg = SizeFitConfig()
    cand = cfg.candidates()
    flat = read_size(np.zeros(cand.shape[:2]), cfg)
    assert flat[1] == pytest.approx(0.0, abs=1e-9)
    confs = [read_size(k * (cand[..., 0] - 190.0) ** 2, cfg)[1] for k in (1.0, 10.0, 100.0)]
    assert 0.0 < confs[0] < confs[1] < confs[2] < 1.0
    # a bowl whose posterior sd is a tenth of the prior's removes 99 % of the variance: with T = 100 and
    # a prior sd of 11.3 mm, k (L - 190)^2 / T has sd 1.13 mm when k = T / (2 x 1.13^2), give or take the
    # prior's pull
    k = cfg.temperature_length / (2 * 1.13**2)
    assert read_size(k * (cand[..., 0] - 190.0) ** 2, cfg)[1] == pytest.approx(0.99, abs=0.003)


def _hand_states(n: int, seed: int):
    """(crop, engine joints, frame depth) of generator frames with a hand, through the real preprocess and
    pose stages."""
    from stream.stages import FrameState

    out = []
    with build_pipeline(backend="onnxruntime", models="pose", overlay=False, smoothing=False) as p:
        pre, pose = p.stages[0], p.stages[1]
        for f in SyntheticSource(n_frames=n, seed=seed):
            st = FrameState(f)
            pre.run(st)
            if st.crop is not None:
                pose.run(st)
                out.append(st)
    return out


def test_a_track_averages_the_candidates_energies_and_forks_share_only_the_models():
    states = _hand_states(4, seed=3)
    assert len(states) >= 3
    fitter = SizeFitter(SMALL)
    per_frame = []
    for st in states[:3]:
        obs = observe(st.crop, st.frame.depth_mm, SMALL.fit.points)
        terms = frame_terms(fitter.models, obs, st.joints_raw_mm, SMALL, compiled=True)
        per_frame.append(evidence(terms @ weights(SMALL), SMALL))
        fitter.add(obs, st.joints_raw_mm)
    assert fitter.frames == 3
    np.testing.assert_allclose(fitter.energy, np.sum(per_frame, axis=0), rtol=1e-9)
    size, conf = fitter.estimate()
    np.testing.assert_allclose(size, pick_size(np.mean(per_frame, axis=0), SMALL), atol=1e-3)
    assert 0.0 < conf <= 1.0
    fork = fitter.fork()
    assert fork.models is fitter.models and fork.frames == 0 and fork.estimate() == (None, 0.0)
    assert not np.shares_memory(fork.energy, fitter.energy) and fitter.frames == 3


def test_the_compiled_scoring_gives_the_numpy_reference_s_terms_on_real_frames():
    """The kernel (stream/size/kernels.py) and score_terms' numpy code score the same fits of generator
    frames through the real pose engine alike, right hands and hands measured mirrored as left ones; every
    term is non-zero somewhere, so each is compared, not just the sum."""
    assert compile_kernels()
    states = _hand_states(6, seed=8)
    assert len(states) >= 4
    cfg = SizeFitConfig(w_silhouette=1.0, w_free_space=1.0, readout=None)
    fitter = SizeFitter(cfg)
    seen = np.zeros(4, bool)
    for k, st in enumerate(states):
        obs = observe(st.crop, st.frame.depth_mm, cfg.fit.points, mirror=k % 2 == 1)
        for model in fitter.models.ravel()[::6]:
            res = fit_hand(model, obs, st.joints_raw_mm, cfg.fit)
            ref = score_terms(model, obs, res, st.joints_raw_mm, cfg)
            got = score_terms(model, obs, res, st.joints_raw_mm, cfg, compiled=True)
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
            seen |= ref > 0
    assert seen.all(), seen
    obs = observe(states[0].crop, states[0].frame.depth_mm, cfg.fit.points)
    np.testing.assert_allclose(
        frame_terms(fitter.models, obs, states[0].joints_raw_mm, cfg, compiled=True),
        frame_terms(fitter.models, obs, states[0].joints_raw_mm, cfg),
        rtol=1e-6,
        atol=1e-6,
    )


def test_the_energy_prefers_the_true_size_to_sizes_far_from_it():
    """On generator frames the size from a track's averaged energies lies within 20 mm of the subject's hand
    (the grid spans 100 mm: a broken term would pick an end or the prior)."""
    from stream.stages import FrameState
    from stream.synth import HandSynthesizer, SceneConfig

    cfg = SizeFitConfig(
        lengths_mm=(140.0, 160.0, 180.0, 200.0, 220.0, 240.0), width_offsets_mm=(0.0,), readout=None
    )
    synth = HandSynthesizer(SceneConfig(anthropometry="ansur", color=False), 5)
    with build_pipeline(backend="onnxruntime", models="pose", overlay=False, smoothing=False) as p:
        pre, pose = p.stages[0], p.stages[1]
        fitter = SizeFitter(cfg)
        truth = None
        for s in synth.sequence(12, 30.0):
            st = FrameState(s.frame)
            pre.run(st)
            if st.crop is None:
                continue
            pose.run(st)
            obs = observe(st.crop, st.frame.depth_mm, cfg.fit.points)
            if obs is not None:
                fitter.add(obs, st.joints_raw_mm)
                truth = np.asarray(s.hand_size_mm, np.float64)
    assert fitter.frames >= 8 and truth is not None
    size, _ = fitter.estimate()
    assert abs(size[0] - truth[0]) < 20.0, (size, truth)
    assert 140.0 < size[0] < 240.0


def test_size_fit_stage_is_registered_records_and_holds_the_size(tmp_path):
    assert "size_fit" in registered_stages()
    frames = list(SyntheticSource(n_frames=6, seed=2))
    opts = {"size_fit": {"frames": 2, "config": SMALL}}
    with build_pipeline(backend="onnxruntime", models="pose,size_fit", overlay=True, stage_options=opts) as p:
        assert [s.name for s in p.stages][:3] == ["preprocess", "pose", "size_fit"]
        res = [p.process(f) for f in frames]
    hands = [r for r in res if "hand_size_mm" in r.fields]
    assert len(hands) >= 4
    measured = [r for r in hands if "hand_size_frame_mm" in r.fields]
    assert len(measured) == 2  # two frames measured, then held
    for r in hands:
        length, width = r.fields["hand_size_mm"]
        assert 160.0 <= length <= 220.0 and 40.0 <= width <= 140.0
    np.testing.assert_array_equal(hands[-1].fields["hand_size_mm"], measured[-1].fields["hand_size_mm"])
    with build_pipeline(backend="onnxruntime", models="pose", overlay=True) as p:
        plain = [p.process(f) for f in frames]
    assert not np.array_equal(hands[-1].image, plain[hands[-1].index].image)  # the label is drawn
    out = tmp_path / "r.jsonl"
    assert cli(["run", "--source", "synthetic:4", "--frames", "3", "--models", "pose,size_fit", "--jsonl",
                str(out), "--quiet"]) == 0  # fmt: skip
    recs = [r for r in _records(out) if "hand_size_mm" in r]
    assert recs and all("size_fit" in r["stage_ms"] and len(r["hand_size_mm"]) == 2 for r in recs)


def test_eval_size_fit_prints_the_same_json_keys(tmp_path, capsys):
    data = tmp_path / "d"
    assert cli(["synth", "--out", str(data), "--frames", "6", "--sequences", "--anthropometry", "ansur",
                "--no-color", "--seed", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    assert cli(["eval", "size", "fit", "--data", str(data), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert cli(["eval", "size", "default", "--data", str(data), "--json"]) == 0
    net = json.loads(capsys.readouterr().out)
    assert set(fit) == set(net) and fit["engine"] == "fit" and fit["frames"] == 6
    for k in ("length_mae_mm", "width_mae_mm", "length_mape", "calibrated_length_mae_mm"):
        assert np.isfinite(fit[k]) and 0 <= fit[k] < 60, k


def test_calibrate_measures_with_size_fit_by_default_and_the_net_on_request(tmp_path, capsys):
    user = tmp_path / "user.json"
    assert (
        cli(["calibrate", "--source", "synthetic:5", "--frames", "4", "--seconds", "1", "--out", str(user)])
        == 0
    )
    doc = json.loads(user.read_text())
    assert doc["frames"] >= 1 and 90 <= doc["hand_size_mm"][0] <= 280
    net = tmp_path / "net.json"
    assert cli(["calibrate", "--source", "synthetic:5", "--frames", "4", "--seconds", "1", "--models", "size",
                "--out", str(net)]) == 0  # fmt: skip
    assert json.loads(net.read_text())["hand_size_mm"] != doc["hand_size_mm"]


def test_size_fit_with_a_user_file_fixes_the_size_and_fits_nothing(tmp_path):
    from stream.size import save_user
    from stream.size.fit_stage import SizeFitStage

    user = save_user(tmp_path / "u.json", [201.5, 90.25], 0.9, 30, "test")
    stage = SizeFitStage(user=user)
    assert stage.fitter is None
    frames = list(SyntheticSource(n_frames=3, seed=2))
    with build_pipeline(backend="onnxruntime", models="pose,size_fit", overlay=False,
                        stage_options={"size_fit": {"user": user}}) as p:  # fmt: skip
        res = [p.process(f) for f in frames]
    hands = [r for r in res if "hand_size_mm" in r.fields]
    assert hands and all(r.fields["hand_size_confidence"] == 1.0 for r in hands)
    assert all(np.allclose(r.fields["hand_size_mm"], [201.5, 90.25]) for r in hands)
    assert not any("hand_size_frame_mm" in r.fields for r in res)
