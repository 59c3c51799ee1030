"""Training a dynamic gesture embedding on synthetic motion windows (stream.synth.motions), evaluated on the
motion classes it never saw, with the static embedding's loss family (seed 001: the combined quadruplet loss
by default; triplet and contrastive baselines) and selection rules.

Each step embeds a pool (`pool_per_class` windows of every training class, drawn from a bank of clean
windows with fresh track jitter, so the net learns to look through a pose engine's smoothed error), selects
tuples in that pool by the configured rule, and takes one optimizer step on the selected windows, as the
static trainer (train.gesture.train) does. A resting hand (motions.REST) trains as one more class, its own
coarse group, so "no gesture" lies apart from every motion; a third of its windows are a resting hand's,
two thirds end part of the way through a training motion (a motion not finished yet is not to be named).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stream.gestures.dynamic import FRAMES, WINDOW_MS, window_features
from stream.synth import motions

from .dynamic_models import create_dynamic_model
from .losses import QuadrupletLossConfig
from .metrics import embedding_report
from .train import begin_training, log_step, optimizer_step, pool_loss, training_metrics


@dataclass
class DynamicTrainConfig:
    model: str = "ddnet"
    dim: int = 64
    loss: str = "quadruplet"  # quadruplet (seed eq. 6) | triplet (eq. 2) | contrastive (eq. 1)
    selection: str = "method2"  # random | method1 | method2 (seed §3.3)
    steps: int = 800
    pool_per_class: int = 10
    tuples: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    bank_per_class: int = 300
    noise_mm: float = 8.0  # each window gets smoothed track jitter of sd uniform in [0, noise_mm]
    seed: int = 0
    threads: int = 1
    eval_per_class: int = 60
    eval_seed: int = 12345
    eval_noise_mm: tuple[float, ...] = (0.0, 5.0)
    window_ms: float = WINDOW_MS
    frames: int = FRAMES
    cache: str = ""  # a folder for the generated windows (generating is ~20 ms a window)
    loss_cfg: QuadrupletLossConfig = field(default_factory=QuadrupletLossConfig)


def windows(
    classes, per_class: int, seed: int, cfg: DynamicTrainConfig, noise_mm: float = 0.0, partial: bool = False
) -> dict:
    """stream.synth.motions.motion_windows with the config's window, cached in `cfg.cache` when set."""
    key = (
        f"motions{motions.VERSION}_{'-'.join(classes)}_{per_class}_seed{seed}_n{noise_mm:g}"
        f"_w{cfg.window_ms:g}x{cfg.frames}{'_partial' if partial else ''}"
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = Path(cfg.cache) / f"{digest}_{len(classes)}x{per_class}.npz" if cfg.cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    data = motions.motion_windows(
        classes,
        per_class,
        seed,
        window_s=cfg.window_ms / 1000.0,
        frames=cfg.frames,
        noise_mm=noise_mm,
        partial=partial,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, key=key, **data)
    return data


def training_classes() -> tuple[list[str], list[str]]:
    """(fine, coarse) class names the net trains on: the motions of motions.TRAIN and the resting hand."""
    return [*motions.TRAIN, motions.REST], [*motions.COARSE, motions.REST_COARSE]


def jittered_features(
    w: np.ndarray, rng: np.random.Generator, noise_mm: float, window_ms: float
) -> np.ndarray:
    """Features of windows (N, T, 21, 3) after per-window track jitter of sd U(0, noise_mm)."""
    if noise_mm > 0:
        times = np.linspace(0.0, window_ms / 1000.0, w.shape[1])
        sd = rng.uniform(0.0, noise_mm, size=len(w))
        w = w + np.stack([motions.track_noise(times, s, rng) for s in sd])
    return window_features(w)


def embed(model: torch.nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def evaluate(model: torch.nn.Module | None, cfg: DynamicTrainConfig, noise_mm: float) -> dict:
    """Recall@1/2/4/8, NMI and 5-shot accuracy on the unseen motion classes (`model=None`: the features
    themselves, flattened, as the embedding: the no-learning baseline)."""
    data = windows(motions.UNSEEN, cfg.eval_per_class, cfg.eval_seed, cfg, noise_mm)
    x = window_features(data["windows_xyz_mm"])
    emb = x.reshape(len(x), -1) if model is None else embed(model, x)
    return {"noise_mm": noise_mm} | embedding_report(emb, data["label"], shots=5)


def train_dynamic_embedding(cfg: DynamicTrainConfig, log=print) -> tuple[torch.nn.Module, dict]:
    rng, t0 = begin_training(cfg)
    fine_names, coarse_names = training_classes()
    model = create_dynamic_model(cfg.model, dim=cfg.dim, n_coarse=len(coarse_names), n_fine=len(fine_names))
    parts = [windows(motions.TRAIN, cfg.bank_per_class, cfg.seed, cfg)]
    parts.append(windows((motions.REST,), cfg.bank_per_class // 3, cfg.seed + 1, cfg))
    per = max(2 * cfg.bank_per_class // (3 * len(motions.TRAIN)), 1)  # unfinished training motions, as REST
    parts.append(windows(motions.TRAIN, per, cfg.seed + 2, cfg, partial=True))
    bank = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    fine = np.array([fine_names.index(f) for f in bank["label"]])
    coarse = np.array([coarse_names.index(c) for c in bank["coarse"]])
    by_class = [np.flatnonzero(fine == k) for k in range(len(fine_names))]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    history = []
    for step in range(cfg.steps):
        pool = np.concatenate([rng.choice(ix, cfg.pool_per_class, replace=False) for ix in by_class])
        x = torch.from_numpy(
            jittered_features(bank["windows_xyz_mm"][pool], rng, cfg.noise_mm, cfg.window_ms)
        )
        loss = pool_loss(model, x, coarse[pool], fine[pool], cfg, rng)
        optimizer_step(opt, sched, loss)
        if step % 100 == 0 or step == cfg.steps - 1:
            log_step(history, step, loss, t0, log)
    train_s = time.perf_counter() - t0
    unseen = [evaluate(model, cfg, n) for n in cfg.eval_noise_mm]
    return model, training_metrics(cfg, train_s, unseen, history)
