"""Training and evaluation of the hand-size regressors (seed 002's three kinds of model, adapted).

- multi-task: one SizeNet with two outputs (length, width), loss = MSE(length) + MSE(width) on normalized
  targets (the seed's sum of per-task MSEs);
- one-task: one SizeNet per quantity (the seed's "two one-task MobileNets");
- linear: least squares on geometric features (train.size.features), the seed's regression baseline moved
  from "weight from height" to "size from what the segmentation and the skeleton measure";
- skeleton: no learning for the length (the predicted skeleton's wrist -> middle fingertip chain); the width
  is the index-to-pinky MCP span times one ratio fitted on the training subjects.

Deviations from the seed, for this CPU: the crop is the pipeline's own 64x64 metric cube crop (the pose
engine's), fed at its native 64 px instead of letterboxed up to 224 (the crop is square, so letterboxing
is a plain resize that adds no information, and 224 costs 12x the compute: `input_size` does it when
wanted); width multiplier 0.5 by default; trained from scratch with AdamW at 1e-3 and a cosine decay
(no ImageNet weights on this machine, and a depth crop is not an ImageNet image); the seed fine-tunes at
1e-4 with weight decay 1e-3.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from stream.size.metrics import mae, mape

from .data import SizeArrays
from .features import FEATURE_NAMES

QUANTITIES = ("length", "width")


@dataclass
class SizeTrainConfig:
    quantities: tuple[str, ...] = QUANTITIES
    width_mult: float = 0.5
    input_size: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1
    shift_px: int = 2  # random translation of the crop (the centre of mass wanders with pose)
    pretrained: str | None = None
    init: str | None = None  # continue from this checkpoint (its weights and label normalisation)
    log_every: int = 100
    channels_last: bool = True  # NHWC: faster convolutions on this CPU
    max_minutes: float = 0.0  # stop after this long (0 = no limit); the cosine schedule assumes `steps`


def _usable(a: SizeArrays) -> np.ndarray:
    return np.flatnonzero(a.found)


def _batch(a: SizeArrays, idx: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    x = a.crop[idx]
    if shift:
        dx, dy = rng.integers(-shift, shift + 1, 2)
        x = np.roll(x, (int(dy), int(dx)), axis=(1, 2))
    flip = rng.random(len(idx)) < 0.5  # a mirrored hand (a left hand) has the same size
    x = np.where(flip[:, None, None], x[:, :, ::-1], x)
    return np.ascontiguousarray(x[:, None], dtype=np.float32)


def train_sizenet(cfg: SizeTrainConfig, train: SizeArrays, log=print):
    """A SizeNet trained on the found frames of `train`; returns (model in eval mode, info dict)."""
    import torch

    from .models import SizeNet

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(int(cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    q = [QUANTITIES.index(n) for n in cfg.quantities]
    idx = _usable(train)
    y = train.size_mm[idx][:, q].astype(np.float64)
    mean, sd = y.mean(0), y.std(0)
    init = None
    if cfg.init:
        init = torch.load(cfg.init, map_location="cpu", weights_only=False)
        if tuple(init["quantities"]) != tuple(cfg.quantities) or init["width_mult"] != cfg.width_mult:
            raise ValueError(f"{cfg.init} is a net for other quantities or another width")
        mean, sd = np.asarray(init["mean_mm"]), np.asarray(init["sd_mm"])
    model = SizeNet(
        tuple(cfg.quantities),
        tuple(mean),
        tuple(sd),
        cfg.width_mult,
        cfg.input_size,
        pretrained=cfg.pretrained,
    )
    if init is not None:
        model.load_state_dict(init["state_dict"])
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1.0 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps))
    )
    yn = torch.from_numpy(((y - mean) / sd).astype(np.float32))
    model.train()
    t0 = time.perf_counter()
    run_loss, done = 0.0, 0
    for step in range(cfg.steps):
        b = rng.choice(len(idx), size=min(cfg.batch_size, len(idx)), replace=False)
        x = torch.from_numpy(_batch(train, idx[b], rng, cfg.shift_px)).to(memory_format=mf)
        out = model.forward_normalized(x)
        loss = ((out - yn[b]) ** 2).mean(0).sum()  # sum of the per-task MSEs
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run_loss += float(loss.detach())
        done = step + 1
        if cfg.log_every and done % cfg.log_every == 0:
            el = time.perf_counter() - t0
            log(f"step {done}/{cfg.steps} loss {run_loss / cfg.log_every:.4f} {el / done:.3f} s/step")
            run_loss = 0.0
        if cfg.max_minutes and time.perf_counter() - t0 > 60.0 * cfg.max_minutes:
            log(f"stopped at step {done}: max_minutes {cfg.max_minutes}")
            break
    model = model.to(memory_format=torch.contiguous_format)
    model.eval()
    return model, {
        "steps": done,
        "train_s": time.perf_counter() - t0,
        "mean_mm": mean.tolist(),
        "sd_mm": sd.tolist(),
    }


def predict(model, a: SizeArrays, batch: int = 256) -> np.ndarray:
    """(N, K) mm predictions of a SizeNet for every frame (NaN where no hand was found)."""
    import torch

    out = np.full((len(a), len(model.quantities)), np.nan, np.float64)
    idx = _usable(a)
    with torch.inference_mode():
        for i in range(0, len(idx), batch):
            j = idx[i : i + batch]
            out[j] = model(torch.from_numpy(a.crop[j][:, None].astype(np.float32))).numpy()
    return out


# ----------------------------------------------------------------------------------- feature baselines
def _feat_ok(a: SizeArrays) -> np.ndarray:
    return a.found & np.isfinite(a.features).all(1)


@dataclass
class LinearSize:
    """Least squares of (length, width) on the geometric features, with an intercept."""

    coef: np.ndarray  # (F + 1, 2)
    fallback_mm: np.ndarray  # (2,) the training mean, for frames without features

    @classmethod
    def fit(cls, a: SizeArrays) -> LinearSize:
        ok = _feat_ok(a)
        x = np.c_[a.features[ok].astype(np.float64), np.ones(ok.sum())]
        coef, *_ = np.linalg.lstsq(x, a.size_mm[ok].astype(np.float64), rcond=None)
        return cls(coef, a.size_mm[a.found].mean(0).astype(np.float64))

    def predict(self, a: SizeArrays) -> np.ndarray:
        out = np.full((len(a), 2), np.nan)
        ok = _feat_ok(a)
        out[ok] = np.c_[a.features[ok].astype(np.float64), np.ones(ok.sum())] @ self.coef
        out[a.found & ~ok] = self.fallback_mm
        return out


@dataclass
class SkeletonSize:
    """Length = the skeleton's wrist -> middle fingertip chain; width = ratio x index-to-pinky MCP span."""

    width_ratio: float
    fallback_mm: np.ndarray

    @classmethod
    def fit(cls, a: SizeArrays) -> SkeletonSize:
        ok = _feat_ok(a)
        span = a.features[ok, FEATURE_NAMES.index("mcp_span_mm")].astype(np.float64)
        return cls(float(np.median(a.size_mm[ok, 1] / span)), a.size_mm[a.found].mean(0).astype(np.float64))

    def predict(self, a: SizeArrays) -> np.ndarray:
        out = np.full((len(a), 2), np.nan)
        ok = _feat_ok(a)
        f = a.features[ok].astype(np.float64)
        out[ok, 0] = f[:, FEATURE_NAMES.index("chain_middle_mm")]
        out[ok, 1] = self.width_ratio * f[:, FEATURE_NAMES.index("mcp_span_mm")]
        out[a.found & ~ok] = self.fallback_mm
        return out


# ----------------------------------------------------------------------------------------- the report
def frame_metrics(pred: np.ndarray, a: SizeArrays) -> dict:
    """MAE / MAPE per quantity over the frames where a hand was found (and the share of those frames)."""
    ok = a.found & np.isfinite(pred).all(1)
    m, p = mae(pred[ok], a.size_mm[ok]), mape(pred[ok], a.size_mm[ok])
    return {
        "length_mae_mm": float(m[0]),
        "width_mae_mm": float(m[1]),
        "length_mape": float(p[0]),
        "width_mape": float(p[1]),
        "frames": int(ok.sum()),
        "found": float(a.found.mean()),
    }


def config_dict(cfg: SizeTrainConfig) -> dict:
    d = asdict(cfg)
    d["quantities"] = list(cfg.quantities)
    return d
