"""The learned reading of the size_fit evidence (stream/size/readout.py): its data, cross-validation and fit.

Data: frames and moving sequences of training subjects only (the study's generator, ids offset by
TRAIN_SUBJECT_OFFSET), through the runtime's preprocess and pose stages as `handstream run` sees them; every
candidate of the shipped SizeFitConfig fitted and scored (`frame_fits`), the best fit's pose kept. Written in
chunks (resumable): `frames_NNN.npz` (independent frames of the study's training stream, seed + 1, from its
first frame) and `sequences_NNN.npz` (30-frame moving sequences, seed + 5).

Examples: every independent frame (its own evidence) and prefixes of every sequence (the mean of the inputs of
its first n frames that show a hand, n = 2..30: what the stage reads after n frames). The map is fitted on the residual of the
posterior mean (truth - read_size), by ridge regression (no hidden layer) or a small tanh network (torch,
Huber loss, AdamW), inputs and outputs standardised. Cross-validation folds are subject-grouped over frames
and sequences together.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import InputError
from stream.size.measure import SizeFitConfig, evidence, weights
from stream.size.readout import N_POSE, SizeReadout, config_dict, readout_inputs
from train.arrays import ArraySet

# the extra frames' second stream: more subjects than the study's 600, in blocks of EXTRA_BLOCK frames that
# start EXTRA_BLOCK_STRIDE samples apart (so that blocks measured side by side never overlap)
EXTRA_SUBJECTS = 1800
EXTRA_CHUNK = 500
EXTRA_BLOCK = 10_000
EXTRA_BLOCK_STRIDE = 100_000
PREFIXES = (2, 3, 5, 8, 12, 18, 24, 30)  # frames of a sequence averaged: the stage's reading after n frames
CALIBRATION_FRAMES = 30


@contextmanager
def _offset_sequence_subjects(offset: int):
    """The generator's moving sequences draw their subject inside `sequence()`; training sequences need
    training subjects (ids offset as the study's training frames), so the subject's hand is looked up
    offset while this is open."""
    import stream.synth.scene as scene

    draw = scene.hand_shape
    scene.hand_shape = lambda subject, *a, **k: draw(subject + offset, *a, **k)
    try:
        yield
    finally:
        scene.hand_shape = draw


def _measure(samples, maker, fitter_models, cfg: SizeFitConfig) -> dict[str, np.ndarray]:
    """Terms of every candidate and the best fit's pose features for each sample (NaN without a hand)."""
    from stream.fitting import observe
    from stream.size.measure import frame_fits
    from stream.size.readout import pose_features
    from stream.stages import FrameState

    rows: dict[str, list] = {k: [] for k in ("terms", "pose", "size_mm", "subject", "sequence", "frame")}
    last = None
    for s in samples:
        if s.sequence < 0 or s.sequence != last:
            maker.reset()
        last = s.sequence
        st = FrameState(s.frame)
        maker.pre.run(st)
        terms = np.full((*fitter_models.shape, 4), np.nan)
        pose = np.full(N_POSE, np.nan)
        if st.crop is not None:
            maker.pose.run(st)
            obs = observe(st.crop, st.frame.depth_mm, cfg.fit.points)
            if obs is not None:
                terms, best = frame_fits(fitter_models, obs, st.joints_raw_mm, cfg, compiled=True)
                if best is not None:
                    pose = pose_features(best.pose, best.data_rms_mm)
        rows["terms"].append(terms)
        rows["pose"].append(pose)
        rows["size_mm"].append(s.hand_size_mm)
        rows["subject"].append(s.subject)
        rows["sequence"].append(s.sequence)
        rows["frame"].append(s.frame_index)
    return {k: np.asarray(v) for k, v in rows.items()}


def build_evidence(
    out: str | Path,
    frames: int,
    sequences: int,
    seed: int = 0,
    chunk_frames: int = 250,
    chunk_sequences: int = 10,
    log=print,
    extra_frames: int = 0,
    extra_subjects: int = EXTRA_SUBJECTS,
    shard: tuple[int, int] = (0, 1),
) -> list[Path]:
    """Chunks of measured training-subject frames and sequences under `out` (kept: a rerun resumes).
    `extra_frames`: more independent frames from a second stream (seed + 21) of `extra_subjects` training
    subjects (ids from the same offset, so the first 600 are the study's), `frames_xNNN.npz` in chunks of
    EXTRA_CHUNK; frame i is the stream's sample 100 000 x (i // 10 000 + 1) + i % 10 000, the layout the
    shipped readout's extra frames were measured in (four blocks written side by side). `shard` (i, n): only
    every n-th chunk from the i-th is measured, so that n processes (one a core) share the work; each
    returns every chunk's path."""
    from stream.size.measure import build_models, compile_kernels
    from stream.synth import HandSynthesizer

    from .data import STATIC_FPS, TRAIN_SUBJECT_OFFSET, CropMaker, independent_frames, size_scene

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SizeFitConfig()
    compile_kernels()
    models = build_models(cfg)
    maker = CropMaker()
    paths = []

    index, count = shard
    if not 0 <= index < count:
        raise InputError(f"shard must be (i, n) with 0 <= i < n, got {shard}")

    def chunk(p: Path, n: int, what: str, samples) -> None:
        """Measure one chunk (`samples()` gives its generator) unless a previous run left it or it is
        another shard's."""
        paths.append(p)
        if p.is_file() or (len(paths) - 1) % count != index:
            return
        t0 = time.thread_time()
        np.savez_compressed(p, **_measure(samples(), maker, models, cfg))
        log(f"{p.name}: {n} {what}, {time.thread_time() - t0:.0f} s of CPU")

    for k in range(-(-frames // chunk_frames)):
        n = min(chunk_frames, frames - k * chunk_frames)
        start = k * chunk_frames
        chunk(
            out / f"frames_{k:03d}.npz",
            n,
            "frames",
            lambda n=n, start=start: independent_frames(n, seed + 1, 600, TRAIN_SUBJECT_OFFSET, start=start),
        )
    for k in range(-(-sequences // chunk_sequences)):
        n = min(chunk_sequences, sequences - k * chunk_sequences)

        def moving(k=k, n=n):
            synth = HandSynthesizer(size_scene(600), seed + 5)
            synth._n_sequences = k * chunk_sequences  # sequence s draws from its own seed: this chunk's first
            with _offset_sequence_subjects(TRAIN_SUBJECT_OFFSET):  # while the chunk is measured
                for _ in range(n):
                    yield from synth.sequence(CALIBRATION_FRAMES, STATIC_FPS)

        chunk(out / f"sequences_{k:03d}.npz", n, "sequences", moving)
    for k in range(-(-extra_frames // EXTRA_CHUNK)):
        n = min(EXTRA_CHUNK, extra_frames - k * EXTRA_CHUNK)
        i = k * EXTRA_CHUNK
        start = EXTRA_BLOCK_STRIDE * (i // EXTRA_BLOCK + 1) + i % EXTRA_BLOCK
        chunk(
            out / f"frames_x{k:03d}.npz",
            n,
            "extra frames",
            lambda n=n, start=start: independent_frames(
                n, seed + 21, extra_subjects, TRAIN_SUBJECT_OFFSET, start=start
            ),
        )
    return paths


@dataclass
class Examples(ArraySet):
    """Readout examples: inputs X (N, F), the posterior's (length, width) `base` (N, 2), the truth `size`
    (N, 2), the subject (grouping), the frames averaged `n` (1: a frame alone) and the track `track` (-1
    for an independent frame)."""

    x: np.ndarray
    base: np.ndarray
    size: np.ndarray
    subject: np.ndarray
    n: np.ndarray
    track: np.ndarray


def _frame_inputs(terms: np.ndarray, pose: np.ndarray, cfg: SizeFitConfig):
    """(evidence (N, nL, nW), log best energy (N,)) of frames' terms."""
    raw = terms @ weights(cfg)
    best = raw.reshape(len(raw), -1).min(1)
    return np.array([evidence(e, cfg) for e in raw]), np.log(np.maximum(best, 1e-6))


def _ok(z) -> np.ndarray:
    return np.isfinite(z["terms"]).all((1, 2, 3)) & np.isfinite(z["pose"]).all(1)


def load_examples(data_dir: str | Path, cfg: SizeFitConfig | None = None, prefixes=PREFIXES) -> Examples:
    """Every measured independent frame of `data_dir` and the prefixes of every sequence."""
    cfg = cfg or SizeFitConfig()
    d = Path(data_dir)
    fr, sq = sorted(d.glob("frames_*.npz")), sorted(d.glob("sequences_*.npz"))
    if not fr:
        raise InputError(f"{d} holds no frames_*.npz: run `handstream train size evidence` first")
    rows: list[tuple] = []
    for p in fr:
        z = np.load(p)
        ok = _ok(z)
        ev, lb = _frame_inputs(z["terms"][ok], z["pose"][ok], cfg)
        for e, b, q, t, s in zip(ev, lb, z["pose"][ok], z["size_mm"][ok], z["subject"][ok]):
            x, base, _ = readout_inputs(e, b, q, cfg)
            rows.append((x, base, t, s, 1, -1))
    for p in sq:
        z = np.load(p)
        ok = _ok(z) & (z["frame"] < max(prefixes))
        ev, lb = _frame_inputs(z["terms"][ok], z["pose"][ok], cfg)
        seq, pose, size, subj = z["sequence"][ok], z["pose"][ok], z["size_mm"][ok], z["subject"][ok]
        frame = z["frame"][ok]
        for s in np.unique(seq):
            k = np.flatnonzero(seq == s)
            for n in prefixes:
                m = k[frame[k] < n]  # the frames of the first n with a hand, as the stage holds them
                if len(m):
                    x, base, _ = readout_inputs(ev[m].mean(0), lb[m].mean(), pose[m].mean(0), cfg)
                    rows.append((x, base, size[k[0]], subj[k[0]], n, int(s)))
    x, base, size, subj, n, track = zip(*rows)
    return Examples(
        np.array(x), np.array(base), np.array(size, np.float64), np.array(subj), np.array(n), np.array(track)
    )


def fit_readout(
    ex: Examples,
    cfg: SizeFitConfig,
    hidden: int = 0,
    ridge: float = 0.1,
    weight_decay: float = 0.1,
    epochs: int = 30,
    seed: int = 0,
    members: int = 1,
    track_weight: float = 1.0,
    made: str = "",
) -> SizeReadout:
    """The readout fitted on `ex`: the truth's residual from the posterior mean, from standardised inputs.
    hidden = 0: ridge regression (penalty `ridge` x N on the standardised weights, intercept free); else a
    tanh layer of `hidden` units trained with the Huber loss, AdamW (`weight_decay`), batches of 128;
    `members` such networks from seeds seed, seed + 1, ... are averaged (one layer of members x hidden
    units whose output weights are divided by `members`: one network again, for the runtime).
    `track_weight`: the weight of a sequence's prefix (n > 1) in the loss against a frame's 1."""
    mu, sd = ex.x.mean(0), ex.x.std(0) + 1e-9
    z = (ex.x - mu) / sd
    r = ex.size - ex.base
    wt = np.where(ex.n > 1, float(track_weight), 1.0)
    wt = wt / wt.mean()
    if hidden <= 0:
        rm = (wt[:, None] * r).mean(0)
        a = (z * wt[:, None]).T @ z + ridge * len(z) * np.eye(z.shape[1])
        w = np.linalg.solve(a, (z * wt[:, None]).T @ (r - rm))
        layers = ((w, np.zeros(2)),)
        return SizeReadout(config_dict(cfg), mu, sd, layers, rm, np.ones(2), made)
    rm, rs = r.mean(0), r.std(0) + 1e-9
    nets = [
        _train_net(z, (r - rm) / rs, wt, hidden, weight_decay, epochs, seed + m)
        for m in range(max(1, members))
    ]
    w1 = np.concatenate([n[0][0] for n in nets], 1)
    b1 = np.concatenate([n[0][1] for n in nets])
    w2 = np.concatenate([n[1][0] for n in nets], 0) / len(nets)
    b2 = np.mean([n[1][1] for n in nets], 0)
    return SizeReadout(config_dict(cfg), mu, sd, ((w1, b1), (w2, b2)), rm, rs, made)


def _train_net(
    z: np.ndarray, y: np.ndarray, wt: np.ndarray, hidden: int, weight_decay: float, epochs: int, seed: int
):
    """((W1, b1), (W2, b2)) of a tanh network fitted to standardised inputs and targets (float64 arrays),
    each example's Huber loss weighted by `wt`."""
    import torch

    torch.manual_seed(seed)
    xt = torch.tensor(z, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    wt_t = torch.tensor(wt, dtype=torch.float32)
    net = torch.nn.Sequential(
        torch.nn.Linear(z.shape[1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)
    )
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for k in range(0, len(xt), 128):
            b = perm[k : k + 128]
            loss = (
                torch.nn.functional.smooth_l1_loss(net(xt[b]), yt[b], reduction="none").mean(1) * wt_t[b]
            ).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    return tuple((m.weight.detach().double().numpy().T.copy(), m.bias.detach().double().numpy()) for m in lin)


def readout_sizes(readout: SizeReadout | None, ex: Examples) -> np.ndarray:
    """(N, 2) sizes of the examples: the readout's, or the posterior mean's (None)."""
    return ex.base if readout is None else ex.base + readout.correction(ex.x)


def example_metrics(pred: np.ndarray, ex: Examples) -> dict:
    """Per-frame MAE (independent frames) and after 1 s (each sequence's 30-frame prefix), mm."""
    f = ex.n == 1
    t = ex.n == CALIBRATION_FRAMES
    out = {"frames": int(f.sum()), "sequences": int(t.sum())}
    if f.any():
        out["frame_mae_mm"] = np.abs(pred[f] - ex.size[f]).mean(0).tolist()
        out["frame_mape"] = (100 * np.abs(pred[f] - ex.size[f]) / ex.size[f]).mean(0).tolist()
    if t.any():
        out["after_1s_mae_mm"] = np.abs(pred[t] - ex.size[t]).mean(0).tolist()
    return out


def cross_validate(ex: Examples, cfg: SizeFitConfig, folds: int = 5, seed: int = 0, **fit_kw) -> dict:
    """Subject-grouped folds: the posterior mean's and the readout's metrics on each held fold, pooled."""
    from stream.size.metrics import grouped_folds

    subjects = np.unique(ex.subject)
    fold_of = np.empty(len(ex.subject), int)
    for i, (_, te) in enumerate(grouped_folds(subjects, folds, seed)):
        fold_of[np.isin(ex.subject, subjects[te])] = i
    pred = np.empty_like(ex.size)
    for i in range(folds):
        tr, te = fold_of != i, fold_of == i
        pred[te] = readout_sizes(fit_readout(ex.take(tr), cfg, **fit_kw), ex.take(te))
    per_fold = [example_metrics(pred[fold_of == i], ex.take(fold_of == i)) for i in range(folds)]
    return {
        "posterior_mean": example_metrics(ex.base, ex),
        "readout": example_metrics(pred, ex),
        "readout_folds": per_fold,
        "posterior_folds": [
            example_metrics(ex.base[fold_of == i], ex.take(fold_of == i)) for i in range(folds)
        ],
    }
