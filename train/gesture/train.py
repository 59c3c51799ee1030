"""Training a gesture embedding on the synthetic vocabulary (stream.synth.gestures), evaluated on the fine
classes it never saw.

Each step embeds a pool (`pool_per_class` samples of every training class, drawn from a bank of clean
skeletons with fresh per-joint noise so the net learns to look through a pose engine's error), selects
quadruplets (or triplets / pairs for the baselines) in that pool by the configured rule, and takes one
optimizer step on the selected samples. The seed selects over its whole training set; a pool re-drawn every
step bounds the cost and still covers every class.

Deviation from the seed's recipe: it fine-tunes an ImageNet ResNet-101 with SGD (lr 3e-4, momentum 0.9);
these nets are small and start from scratch, for which Adam at 1e-3 converges in minutes on this CPU
(`optimizer="sgd"` restores the seed's choice).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from stream.gestures.canonical import canonical_joints
from stream.synth import gestures as vocab

from . import LOSSES
from .augment import HandModelAugment, augment_hand_model
from .losses import QuadrupletLossConfig, combined_loss, contrastive_loss, triplet_loss
from .metrics import embedding_report
from .models import create_gesture_model
from .selection import select_quadruplets, select_triplets


@dataclass
class GestureTrainConfig:
    model: str = "joint_mlp"
    dim: int = 64
    loss: str = "quadruplet"  # quadruplet (seed eq. 6) | triplet (eq. 2) | contrastive (eq. 1)
    selection: str = "method2"  # random | method1 | method2 (seed §3.3)
    steps: int = 1500
    pool_per_class: int = 12
    tuples: int = 96  # quadruplets (or triplets) per step
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    bank_per_class: int = 400
    noise_mm: float = 12.0  # each sample gets Gaussian noise of sd uniform in [0, noise_mm]
    # another capture system's hand model (train.gesture.augment; all off: our own hand model only)
    aug_bone_ratio: tuple[float, float] = (1.0, 1.0)
    aug_mcp_shift: tuple[float, float] = (0.0, 0.0)
    aug_tip_scale: tuple[float, float] = (1.0, 1.0)
    aug_angle_deg: float = 0.0
    # skeletons of the training classes from another capture system (an .npz of `joints_xyz_mm` (N, 21, 3),
    # any unit, and `label` (N,) training-class names; `other_skeletons`), drawn for `other_share` of each
    # class's pool, as they come (their own error is the noise): "" trains on our hand model alone
    other_skeletons: str = ""
    other_share: float = 0.5
    seed: int = 0
    threads: int = 1
    eval_per_class: int = 60
    eval_seed: int = 12345
    eval_noise_mm: tuple[float, ...] = (0.0, 10.0)
    crop_size: int = 64  # depth-crop models: the pose engine's crop size
    crop_cache: str = ""  # depth-crop models: a folder for the rendered crops (rendering is ~20 ms a crop)
    loss_cfg: QuadrupletLossConfig = field(default_factory=QuadrupletLossConfig)


def noisy_canonical(
    joints: np.ndarray, rng: np.random.Generator, noise_mm: float, aug: HandModelAugment | None = None
) -> np.ndarray:
    """Canonical joints of `joints` (N, 21, 3) after per-sample Gaussian noise of sd U(0, noise_mm), then
    placed as another hand model would place them (`aug`, train.gesture.augment)."""
    if noise_mm > 0:
        sd = rng.uniform(0.0, noise_mm, size=(len(joints), 1, 1))
        joints = joints + rng.normal(size=joints.shape) * sd
    c = canonical_joints(joints)
    return c if aug is None else augment_hand_model(c, rng, aug)


def other_skeletons(path: str) -> dict[str, np.ndarray]:
    """Another capture system's skeletons of the training classes (`GestureTrainConfig.other_skeletons`):
    `joints_xyz_mm` (N, 21, 3) in our joint order, any unit, and `label` (N,) training-class names."""
    from pathlib import Path

    from stream.errors import InputError

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file of other skeletons")
    with np.load(path) as z:
        if "joints_xyz_mm" not in z.files or "label" not in z.files:
            raise InputError(f"{path}: needs joints_xyz_mm (N, 21, 3) and label (N,)")
        j, lab = z["joints_xyz_mm"].astype(np.float64), z["label"].astype(str)
    if j.ndim != 3 or j.shape[1:] != (21, 3) or len(lab) != len(j):
        raise InputError(f"{path}: joints_xyz_mm must be (N, 21, 3) with one label each, got {j.shape}")
    unknown = sorted(set(lab) - set(vocab.TRAIN))
    if unknown:
        raise InputError(f"{path}: labels that are not training classes: {', '.join(unknown[:5])}")
    keep = np.isfinite(j).all(axis=(1, 2))
    missing = sorted(set(vocab.TRAIN) - set(lab[keep]))
    if missing:
        raise InputError(f"{path}: no skeletons of {', '.join(missing[:5])}")
    return {"joints_xyz_mm": j[keep], "label": lab[keep]}


@dataclass
class Pools:
    """What a step's pool is drawn from: the samples' inputs by index, their fine and coarse class ids, and
    each training class's indices among our own skeletons and among another system's (`with_other`)."""

    inputs: Callable[[np.ndarray], np.ndarray]
    fine: np.ndarray
    coarse: np.ndarray
    own_by_class: list[np.ndarray]
    other_by_class: list[np.ndarray] = field(default_factory=list)

    def with_other(self, other: dict[str, np.ndarray]) -> Pools:
        """These pools plus `other_skeletons`' samples, indexed after our own and fed canonicalised as they
        come."""
        n_own = len(self.fine)
        canon = canonical_joints(other["joints_xyz_mm"])
        fine = np.array([vocab.TRAIN.index(f) for f in other["label"]])
        coarse = vocab.FINE_TO_COARSE[[vocab.FINE.index(f) for f in other["label"]]]
        own_inputs = self.inputs

        def inputs(idx: np.ndarray) -> np.ndarray:
            out = np.empty((len(idx), *canon.shape[1:]), np.float32)
            mine = idx < n_own
            if mine.any():
                out[mine] = own_inputs(idx[mine])
            out[~mine] = canon[idx[~mine] - n_own]
            return out

        by_class = [np.flatnonzero(fine == k) + n_own for k in range(len(self.own_by_class))]
        return Pools(
            inputs,
            np.concatenate([self.fine, fine]),
            np.concatenate([self.coarse, coarse]),
            self.own_by_class,
            by_class,
        )

    def draw(self, rng: np.random.Generator, per_class: int, other_share: float) -> np.ndarray:
        """`per_class` samples of every class, `other_share` of them another system's (with replacement
        where it has fewer), the rest our own."""
        n_other = int(round(per_class * other_share)) if self.other_by_class else 0
        own = [rng.choice(ix, per_class - n_other, replace=False) for ix in self.own_by_class]
        other = (
            [rng.choice(ix, n_other, replace=len(ix) < n_other) for ix in self.other_by_class]
            if n_other
            else []
        )
        return np.concatenate(own + other)


def hand_model_augment(cfg: GestureTrainConfig) -> HandModelAugment:
    """The config's hand-model augmentation (train.gesture.augment)."""
    return HandModelAugment(
        tuple(cfg.aug_bone_ratio), tuple(cfg.aug_mcp_shift), tuple(cfg.aug_tip_scale), cfg.aug_angle_deg
    )


def embed(model: torch.nn.Module, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def rendered_crops(classes, per_class: int, seed: int, cfg: GestureTrainConfig) -> dict[str, np.ndarray]:
    """Depth crops of rendered gestures (stream.synth.gestures.gesture_crops), cached in `cfg.crop_cache`."""
    from pathlib import Path

    key = f"crops_{len(classes)}x{per_class}_seed{seed}_s{cfg.crop_size}.npz"
    path = Path(cfg.crop_cache) / key if cfg.crop_cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = vocab.gesture_crops(classes, per_class, seed, size=cfg.crop_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **data)
    return data


def evaluate(model: torch.nn.Module | None, cfg: GestureTrainConfig, noise_mm: float | None) -> dict:
    """Recall@1/2/4/8, NMI and 5-shot accuracy on the unseen classes (`model=None`: the canonical joints
    themselves as the embedding, the no-learning baseline). A depth-crop model is evaluated on rendered
    crops (the renderer's sensor noise; `noise_mm` is None)."""
    if model is not None and getattr(model, "input_kind", "joints") == "depth":
        data = rendered_crops(vocab.UNSEEN, max(cfg.eval_per_class // 2, 6), cfg.eval_seed, cfg)
        x, noise_mm = data["crops"], None
    else:
        data = vocab.gesture_dataset(vocab.UNSEEN, cfg.eval_per_class, cfg.eval_seed, noise_mm=noise_mm)
        x = canonical_joints(data["joints_xyz_mm"])
    emb = x.reshape(len(x), -1) if model is None else embed(model, x)
    return {"noise_mm": noise_mm} | embedding_report(emb, data["label"], shots=5)


def begin_training(cfg) -> tuple[np.random.Generator, float]:
    """(the run's generator, its start time) once the loss is known and torch's threads and seed are set:
    how both gesture embeddings start a run, so one seed gives one run."""
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    return rng, time.perf_counter()


def train_gesture_embedding(cfg: GestureTrainConfig, log=print) -> tuple[torch.nn.Module, dict]:
    rng, t0 = begin_training(cfg)
    model = create_gesture_model(cfg.model, dim=cfg.dim, n_coarse=len(vocab.COARSE), n_fine=len(vocab.TRAIN))
    other = other_skeletons(cfg.other_skeletons) if cfg.other_skeletons else None
    if other is not None and model.input_kind != "joints":
        from stream.errors import InputError

        raise InputError(f"--other-skeletons needs a joints model, not {cfg.model}")
    if model.input_kind == "depth":
        bank = rendered_crops(vocab.TRAIN, cfg.bank_per_class, cfg.seed, cfg)
        inputs = lambda idx: bank["crops"][idx]  # noqa: E731 - the renderer's sensor noise is the noise
    else:
        bank = vocab.gesture_dataset(vocab.TRAIN, cfg.bank_per_class, cfg.seed, noise_mm=0.0)
        aug = hand_model_augment(cfg)
        inputs = lambda idx: noisy_canonical(bank["joints_xyz_mm"][idx], rng, cfg.noise_mm, aug)  # noqa: E731
    fine_names = list(vocab.TRAIN)
    coarse_names = list(vocab.COARSE)
    fine = np.array([fine_names.index(f) for f in bank["label"]])
    coarse = np.array([coarse_names.index(c) for c in bank["coarse"]])
    pools = Pools(inputs, fine, coarse, [np.flatnonzero(fine == k) for k in range(len(fine_names))])
    if other is not None:
        pools = pools.with_other(other)
    params = model.parameters()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    history = []
    for step in range(cfg.steps):
        pool = pools.draw(rng, cfg.pool_per_class, cfg.other_share)
        x = torch.from_numpy(pools.inputs(pool))
        loss = pool_loss(model, x, pools.coarse[pool], pools.fine[pool], cfg, rng)
        optimizer_step(opt, sched, loss)
        if step % 250 == 0 or step == cfg.steps - 1:
            log_step(history, step, loss, t0, log)
    train_s = time.perf_counter() - t0
    unseen = (
        [evaluate(model, cfg, n) for n in cfg.eval_noise_mm]
        if model.input_kind == "joints"
        else [evaluate(model, cfg, None)]
    )
    return model, training_metrics(cfg, train_s, unseen, history)


def pool_loss(model, x: torch.Tensor, coarse: np.ndarray, fine: np.ndarray, cfg, rng) -> torch.Tensor:
    """One training step's loss on a pool: select the tuples by `cfg.selection` (the hard rules look at the
    pool's embedding distances, computed once without gradients) and score them with `cfg.loss`."""
    dist = None
    if cfg.selection != "random":
        model.eval()
        with torch.no_grad():
            e = model(x)
            dist = torch.cdist(e, e).numpy()
    model.train()
    if cfg.loss == "quadruplet":
        q = select_quadruplets(None, coarse, fine, cfg.tuples, cfg.selection, rng, dist)
    else:
        q = select_triplets(None, fine, cfg.tuples, cfg.selection, rng, dist)
    return tuple_loss(model, x, q, coarse, fine, cfg)


def tuple_loss(
    model, x: torch.Tensor, q: np.ndarray, coarse: np.ndarray, fine: np.ndarray, cfg
) -> torch.Tensor:
    """The configured loss on the pool's tuples `q` (rows of pool indices: R, P+, P-, N or R, P, N); the
    static and the dynamic embeddings train with it alike (`coarse`, `fine`: the pool's class indices)."""
    emb, coarse_logits, fine_logits = model.embed_and_logits(x[torch.from_numpy(q.reshape(-1))])
    e = emb.reshape(len(q), q.shape[1], -1)
    if cfg.loss == "quadruplet":
        k = q.shape[1]
        return combined_loss(
            e[:, 0],
            e[:, 1],
            e[:, 2],
            e[:, 3],
            coarse_y=torch.from_numpy(coarse[q[:, 0]]),
            fine_y=torch.from_numpy(fine[q[:, 0]]),
            coarse_logits=coarse_logits[::k],
            fine_logits=fine_logits[::k],
            cfg=cfg.loss_cfg,
            reduction="mean",
        )
    if cfg.loss == "triplet":
        return triplet_loss(e[:, 0], e[:, 1], e[:, 2])
    a = torch.cat([e[:, 0], e[:, 0]])
    b = torch.cat([e[:, 1], e[:, 2]])
    return contrastive_loss(a, b, torch.cat([torch.ones(len(q)), torch.zeros(len(q))]))


def optimizer_step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor) -> None:
    """One optimiser and one schedule step on `loss`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def log_step(history: list, step: int, loss: torch.Tensor, t0: float, log) -> None:
    """Keep (step, loss) in the history and log it with the seconds since `t0`."""
    history.append((step, loss.item()))
    log(f"step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - t0:.0f} s")


def training_metrics(cfg, train_s: float, unseen: list[dict], history: list) -> dict:
    """The metrics a training run returns (and its checkpoint keeps): its config with the loss's own
    settings, its time, the unseen-class evaluations and the loss history."""
    return {
        "config": {k: v for k, v in asdict(cfg).items() if k != "loss_cfg"}
        | {"loss_cfg": asdict(cfg.loss_cfg)},
        "train_s": round(train_s, 1),
        "unseen": unseen,
        "history": history,
    }
