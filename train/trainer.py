"""Training (seed 003 §4.4.3): loss eq. 4.14 on normalized joints, mini-batch SGD with momentum (Nesterov
optional), batch 128, dropout in the model, learning rate halved when the validation error plateaus, early
stopping, reshuffling every epoch, checkpoints (last + best) and resumable runs, TensorBoard logs, a tqdm
progress bar, and the run's config saved into its directory.

Data live in memory as crops (train/data.py), so batches are slices of one tensor (no DataLoader workers:
on a 2-core machine they only add copies). Augmentation (train/augment.py) runs per batch.

Several GPUs or machines: run the same command under `torchrun` (PyTorch DDP). `train` initialises the
process group from the environment torchrun sets (nccl on CUDA, gloo on CPU), gives each process its share
of every epoch through a DistributedSampler, wraps the model in DistributedDataParallel and lets only rank 0
write checkpoints, logs and the history. `batch_size` stays the GLOBAL batch (each of W processes takes
batch_size / W crops per step), so a config's learning rate means the same on one process or eight.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from stream.errors import InputError

from .augment import AugmentConfig, augment_batch
from .data import PoseArrays
from .models import canonical_name, create_model


@dataclass(frozen=True)
class TrainConfig:
    """One run. `data`/`val_data` describe where crops come from (see train/cli_train.py's build_arrays)."""

    name: str = "pose"
    model: str = "depthnet"
    model_kwargs: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    val_data: dict = field(default_factory=dict)
    val_fraction: float = 0.25  # used when val_data is empty: a uniform random 25 % (seed §4.4.3)
    optimizer: str = "sgd"  # "sgd" as the seed; "adamw" converges faster for small nets from scratch
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 100
    # "plateau": halve the LR when validation stalls (seed §4.4.3); "cosine": anneal from lr to min_lr over the
    # whole budget (epochs or max_minutes, whichever ends first) after a 3 % linear warm-up. Deviation from
    # the seed, offered because on short CPU budgets plateau halving never reaches a low-LR phase:
    # `handstream train diagnose` measured 37.1 vs 42.2 mm (mean of 2 seeds, equal steps) for cosine-like one-cycle.
    schedule: str = "plateau"
    # "eq4.14" or "smooth_l1" (see smooth_l1_pose_loss); validation always reports mm and eq. 4.14
    loss: str = "eq4.14"
    init_from: str = ""  # a local checkpoint (.pt from this trainer) to start from; "" = random init
    # a checkpoint of ANOTHER model sharing part of this one's layers (e.g. compact_l_canon's body for
    # compact_l_dense_canon): every tensor with the same name and shape is copied, the rest stay random
    init_body_from: str = ""
    lr_patience: int = 3  # epochs without improvement before the LR is halved
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    early_stop_patience: int = 10
    min_delta: float = 1e-5
    augment: dict | None = None  # AugmentConfig fields, or None for no augmentation
    max_minutes: float = 0.0  # wall-clock budget (0 = none); the run stops after the epoch that passes it
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0 = torch's default)
    # Keep weights and batches in NHWC ("channels_last") memory: oneDNN then runs the convolutions (and
    # their backward) without reordering; a compact_l_dense_canon step went 183 -> 112 ms on 2 CPU threads
    # (batch 128, p50 of 30). Same arithmetic, so the same model; False = PyTorch's default NCHW.
    channels_last: bool = True
    # "bf16": forward and loss under torch.autocast(bfloat16) (CPUs with AVX-512 BF16 / AMX, or a GPU);
    # weights, gradients and the optimizer stay fp32. "" = plain fp32. BENCHMARKS.md "Model fitting"
    # has what it bought on the shared 2-core VM.
    amp: str = ""
    out_dir: str = "runs"
    progress: bool = True
    tensorboard: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"no such config file: {p}")
        text = p.read_text()
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except Exception as exc:  # yaml and json raise different types; both are user errors here
            raise InputError(f"{p}: cannot parse config ({str(exc).splitlines()[0]})") from None
        if not isinstance(d, dict):
            raise InputError(f"{p}: a config must be a mapping of keys to values")
        return cls.from_dict(d)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_val_loss: float
    best_val_mm: float
    epochs_run: int
    stopped: str
    history: list = field(default_factory=list)
    # the trained network (unwrapped from DDP, weights of the last epoch): lets a caller compare or reuse
    # it without reading a checkpoint that only rank 0 writes
    model: torch.nn.Module | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a torchrun job; the default is one process on its own."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress; the others only compute."""
        return self.rank == 0


def distributed_from_env(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
    or the one a caller already initialised; one process without them. nccl for CUDA, gloo on CPU."""
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = "nccl" if pick_device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local)


def finish_distributed() -> None:
    """Leave the process group (if any) before the process exits, as PyTorch asks: every rank first waits
    for the others at a barrier, so that none tears gloo down while another still talks to it (a rank that
    left early sometimes aborted with "terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_batch_size(batch_size: int, ctx: DistContext) -> int:
    """Crops per process and step for a GLOBAL `batch_size` (one InputError if it does not divide)."""
    if batch_size % ctx.world_size:
        raise InputError(
            f"batch_size {batch_size} is global: it must divide by the {ctx.world_size} processes"
        )
    return batch_size // ctx.world_size


def epoch_order(n: int, epoch: int, seed: int, ctx: DistContext) -> torch.Tensor:
    """This process's crop indices for one epoch, reshuffled every epoch (seed §4.4.3). One process draws
    from torch's global generator as it always has (runs reproduce); under DDP a DistributedSampler gives
    every rank a disjoint share of the same seeded permutation, padded to equal lengths so that every rank
    takes the same number of steps."""
    if not ctx.active:
        return torch.randperm(n)
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` under DDP (it broadcasts rank 0's weights, then averages
    gradients every step), the model itself otherwise. BatchNorm normalises each process's batch with its
    own statistics (torch's SyncBatchNorm has no CPU path); rank 0's running averages are the ones
    broadcast each step and saved."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


AMP_DTYPES = {"": None, "bf16": torch.bfloat16}


def train_step(
    model: torch.nn.Module, opt, loss_fn, xb: torch.Tensor, yb: torch.Tensor, amp: str = ""
) -> float:
    """One optimizer step on one (local) batch; returns its loss. Under DDP backward() averages the
    gradients over every process, so all ranks apply the same update. `amp`: see TrainConfig.amp (the
    loss is taken in fp32 on the autocast output)."""
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        loss = loss_fn(model(xb), yb)
    else:
        with torch.autocast(xb.device.type, dtype=dtype):
            out = model(xb)
        loss = loss_fn(out.float(), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def agreed(values: list[float], ctx: DistContext) -> list[float]:
    """Rank 0's `values` on every rank: decisions that depend on a clock or on a validation pass (LR
    schedule, early stop, time budget) must be the same everywhere or the ranks step out of line."""
    if not ctx.active:
        return values
    import torch.distributed as dist

    t = _collective_tensor(values)
    dist.broadcast(t, src=0)
    return [float(v) for v in t.cpu()]


def summed(values: list[float], ctx: DistContext) -> list[float]:
    """`values` summed over every rank (the epoch's training loss over all processes' crops)."""
    if not ctx.active:
        return values
    import torch.distributed as dist

    t = _collective_tensor(values)
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def _collective_tensor(values: list[float]) -> torch.Tensor:
    """`values` as a tensor the process group can send: nccl moves CUDA tensors only, gloo CPU ones."""
    import torch.distributed as dist

    on_gpu = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    return torch.tensor(values, dtype=torch.float64, device=device)


def pose_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 4.14: per image (1 / 2J) ||f - y||^2 with 3J outputs, averaged over the batch."""
    j = pred.shape[1] / 3.0
    return ((pred - target) ** 2).sum(dim=1).mean() / (2.0 * j)


def smooth_l1_pose_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.02) -> torch.Tensor:
    """Huber loss per coordinate (quadratic below `beta` normalized units = 3 mm in a 300 mm cube, linear
    above). Deviation from eq. 4.14, offered as TrainConfig.loss="smooth_l1": a squared loss lets the few crops
    with a badly placed centre or a hidden hand dominate the gradient; the mean error we report is linear."""
    return torch.nn.functional.smooth_l1_loss(pred, target, beta=beta)


LOSSES = {"eq4.14": pose_loss, "smooth_l1": smooth_l1_pose_loss}


def _read_init_checkpoint(path: str | Path, option: str) -> tuple[Path, dict]:
    """(path, checkpoint dict) for the `init_from` / `init_body_from` options, or a one-line InputError
    naming the option: a missing file, or a file that is not one of this trainer's checkpoints."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{option}: no checkpoint at {p}")
    ck = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or not isinstance(ck.get("model_state"), dict):
        raise InputError(f"{option}: {p} is not a handstream training checkpoint (no model_state)")
    return p, ck


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> tuple[int, int]:
    """Copy every tensor of a local checkpoint whose name and shape match one of `model`'s (a shared body
    under a new head); returns (tensors copied, tensors the model has). None matching is a one-line
    InputError: a body init that silently loads nothing would look like a warm start and not be one."""
    p, ck = _read_init_checkpoint(path, "init_body_from")
    own = model.state_dict()
    hit = {k: v for k, v in ck["model_state"].items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not hit:
        raise InputError(f"init_body_from: no tensor of {p} matches this model by name and shape")
    model.load_state_dict(hit, strict=False)
    return len(hit), len(own)


def load_weights(model: torch.nn.Module, path: str | Path, model_name: str) -> None:
    """Start a run from a local checkpoint's weights (fine-tuning / a warm restart); nothing is downloaded.
    The checkpoint must hold the same model, else a one-line InputError."""
    p, ck = _read_init_checkpoint(path, "init_from")
    try:
        same = canonical_name(str(ck.get("model_name"))) == canonical_name(model_name)
    except KeyError:
        same = False
    if not same:
        raise InputError(f"init_from: {p} holds {ck.get('model_name')!r}, this run trains {model_name!r}")
    try:
        model.load_state_dict(ck["model_state"])
    except RuntimeError as e:
        raise InputError(f"init_from: {p} does not fit this model ({str(e).splitlines()[0]})") from None


def pick_device(name: str, ctx: DistContext | None = None) -> torch.device:
    """`name` ("auto", "cpu", "cuda", ...); under DDP on CUDA, this process's GPU (LOCAL_RANK)."""
    dev = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)
    )
    if ctx is not None and ctx.active and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev


def split_train_val(arrays: PoseArrays, fraction: float, seed: int) -> tuple[PoseArrays, PoseArrays]:
    if not 0 < fraction < 1:
        raise InputError(f"val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(arrays))
    n_val = max(1, int(round(fraction * len(arrays))))
    return arrays.subset(np.sort(idx[n_val:])), arrays.subset(np.sort(idx[:n_val]))


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 512, device=None) -> torch.Tensor:
    device = device or next(model.parameters()).device
    model.eval()
    out = [model(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0)


def _val_metrics(model, x, y, half_mm: float, device) -> tuple[float, float]:
    pred = predict(model, x, device=device)
    loss = float(pose_loss(pred, y))
    err = (pred - y).view(len(y), -1, 3).norm(dim=-1) * half_mm
    return loss, float(err.mean())


def as_tensors(a: PoseArrays) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (N, 1, S, S), y (N, 3J)) float32 tensors sharing the arrays' memory where they can."""
    x = torch.from_numpy(np.ascontiguousarray(a.depth[:, None], dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(a.joints.reshape(len(a), -1), dtype=np.float32))
    return x, y


def checkpoint_meta(cfg: TrainConfig, train: PoseArrays, model_kwargs: dict) -> dict:
    """What an exporter needs to rebuild the model and feed it (engines/export_model.py reads these keys)."""
    j = train.joints.shape[1]
    return {
        "model_name": cfg.model,
        "model_kwargs": model_kwargs,
        "crop_size": int(train.depth.shape[-1]),
        "cube_mm": float(train.cube_mm),
        "num_joints": int(j),
        "joint_layout": {21: "mediapipe21", 14: "nyu14"}.get(j, f"{j}"),
        "input": "depth",
        "data": train.meta,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
    }


def train(
    cfg: TrainConfig, train_arrays: PoseArrays, val_arrays: PoseArrays | None = None, resume: bool = False
) -> TrainResult:
    """Train `cfg.model` on crops; returns where the best checkpoint is. `resume` continues run_dir/last.pt.
    Under torchrun every process calls this with the same arguments (see the module docstring)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if val_arrays is None:
        train_arrays, val_arrays = split_train_val(train_arrays, cfg.val_fraction, cfg.seed)
    ctx = distributed_from_env(cfg.device)
    local_bs = local_batch_size(cfg.batch_size, ctx)
    device = pick_device(cfg.device, ctx)
    size = int(train_arrays.depth.shape[-1])
    j = int(train_arrays.joints.shape[1])
    kwargs = {**cfg.model_kwargs, "num_joints": j, "input_size": size}
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    # the strides survive load_state_dict (it copies into the existing tensors), so convert once, here
    model = create_model(cfg.model, **kwargs).to(device, memory_format=memory_format)
    if cfg.init_from and cfg.init_body_from:
        raise InputError("init_from and init_body_from both given: start from one checkpoint, not two")
    if cfg.init_from:
        load_weights(model, cfg.init_from, cfg.model)
    elif cfg.init_body_from:
        n, total = load_matching_weights(model, cfg.init_body_from)
        print(f"init_body_from {cfg.init_body_from}: {n}/{total} tensors copied", flush=True)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise InputError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
    if cfg.schedule not in ("plateau", "cosine"):
        raise InputError(f"schedule must be 'plateau' or 'cosine', got {cfg.schedule!r}")
    if cfg.amp not in AMP_DTYPES:
        raise InputError(f"amp must be '' (fp32) or 'bf16', got {cfg.amp!r}")
    if cfg.loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    loss_fn = LOSSES[cfg.loss]
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="min",
        factor=cfg.lr_factor,
        patience=cfg.lr_patience,
        min_lr=cfg.min_lr,
        threshold=cfg.min_delta,
        threshold_mode="abs",
    )
    run_dir = Path(cfg.out_dir) / cfg.name
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    meta = checkpoint_meta(cfg, train_arrays, kwargs)
    start_epoch, best, best_mm, bad_epochs, history = 0, math.inf, math.inf, 0, []
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume:
        if not last_path.is_file():
            raise InputError(f"cannot resume: {last_path} does not exist")
        ck = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model_state"])
        opt.load_state_dict(ck["optimizer_state"])
        sched.load_state_dict(ck["scheduler_state"])
        start_epoch, best, best_mm = ck["epoch"], ck["best_val_loss"], ck["best_val_mm"]
        bad_epochs, history = ck.get("bad_epochs", 0), ck.get("history", [])
        torch.set_rng_state(ck["rng_state"])
    net = wrap_model(model, ctx, device)  # `model` stays the plain network: it is what checkpoints hold
    if ctx.active:
        torch.manual_seed(cfg.seed + 1 + ctx.rank)  # augmentation: different draws on every rank
    writer = None
    if cfg.tensorboard and ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    xt, yt = as_tensors(train_arrays)
    xv, yv = as_tensors(val_arrays)
    half = train_arrays.cube_mm / 2.0
    aug = (
        AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})
        if cfg.augment
        else None
    )
    t0 = time.monotonic()
    stopped = "epochs"
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        net.train()
        perm = epoch_order(len(xt), epoch, cfg.seed, ctx)  # reshuffle every epoch (seed §4.4.3)
        batches = range(0, len(perm), local_bs)
        bar = None
        if cfg.progress and ctx.is_main:
            from tqdm import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False)
        total, seen = 0.0, 0
        for i in bar if bar is not None else batches:
            idx = perm[i : i + local_bs]
            xb, yb = xt[idx], yt[idx]
            if aug is not None:
                xb, yb = augment_batch(xb, yb, aug)
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            yb = yb.to(device, non_blocking=True)
            if cfg.schedule == "cosine":
                frac = (epoch - 1 + i / max(len(perm), 1)) / cfg.epochs
                if cfg.max_minutes > 0:
                    clock = agreed([(time.monotonic() - t0) / 60.0], ctx)[0]
                    frac = max(frac, clock / cfg.max_minutes)
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(cfg.lr, cfg.min_lr, frac)
            total += train_step(net, opt, loss_fn, xb, yb, cfg.amp) * len(idx)
            seen += len(idx)
            if bar is not None:
                bar.set_postfix(loss=f"{total / seen:.5f}")
        if bar is not None:
            bar.close()
        total, seen = summed([total, float(seen)], ctx)
        train_loss = total / max(seen, 1)
        # rank 0's figures for everyone: the other ranks' BatchNorm statistics are their own
        val_loss, val_mm = agreed(list(_val_metrics(model, xv, yv, half, device)), ctx)
        if cfg.schedule == "plateau":
            sched.step(val_loss)
        lr = opt.param_groups[0]["lr"]
        improved = val_loss < best - cfg.min_delta
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_mm": val_mm,
            "lr": lr,
            "minutes": (time.monotonic() - t0) / 60,
        }
        history.append(row)
        if writer is not None:
            for k in ("train_loss", "val_loss", "val_mm", "lr"):
                writer.add_scalar(k, row[k], epoch)
        if improved:
            best, best_mm, bad_epochs = val_loss, val_mm, 0
        else:
            bad_epochs += 1
        if improved and ctx.is_main:
            torch.save(
                {
                    "model_state": model.state_dict(),
                    **meta,
                    "epoch": epoch,
                    "metrics": {"val_loss": val_loss, "val_mean_mm": val_mm},
                },
                best_path,
            )
        if ctx.is_main:
            torch.save(
                {
                    "model_state": model.state_dict(),
                    "optimizer_state": opt.state_dict(),
                    "scheduler_state": sched.state_dict(),
                    "rng_state": torch.get_rng_state(),
                    "epoch": epoch,
                    "best_val_loss": best,
                    "best_val_mm": best_mm,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    **meta,
                },
                last_path,
            )
        if cfg.progress and ctx.is_main:
            print(
                f"epoch {epoch}: train {train_loss:.5f} val {val_loss:.5f} ({val_mm:.2f} mm) lr {lr:.2g}"
                + (" *" if improved else ""),
                flush=True,
            )
        if bad_epochs >= cfg.early_stop_patience:
            stopped = "early_stop"
            break
        if cfg.max_minutes and agreed([(time.monotonic() - t0) / 60], ctx)[0] >= cfg.max_minutes:
            stopped = "time_budget"
            break
    if writer is not None:
        writer.close()
    if ctx.is_main:
        (run_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return TrainResult(run_dir, best_path, best, best_mm, epoch, stopped, history, model)


def load_trained(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, meta) from a checkpoint written by `train`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p} not found")
    ck = torch.load(p, map_location=device, weights_only=False)
    if not isinstance(ck, dict) or "model_state" not in ck or "model_name" not in ck:
        raise InputError(f"{p} is not a handstream training checkpoint (no model_state / model_name)")
    model = create_model(ck["model_name"], **ck.get("model_kwargs", {}))
    model.load_state_dict(ck["model_state"])
    return model.eval().to(device), {k: v for k, v in ck.items() if not k.endswith("_state")}


def cosine_lr(lr: float, min_lr: float, frac: float, warmup: float = 0.03) -> float:
    """LR at budget fraction `frac` in [0, 1]: linear warm-up over the first `warmup`, then cosine to min_lr."""
    frac = min(max(frac, 0.0), 1.0)
    if frac < warmup:
        return lr * (0.1 + 0.9 * frac / warmup)
    t = (frac - warmup) / (1.0 - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


def recompute_bn_stats(model: torch.nn.Module, batches) -> int:
    """Replace every BatchNorm's running mean/variance by their plain average over `batches` (inputs the
    model is called on in train mode, no gradients; "precise BN"). Returns the number of batches seen.

    Why: the running statistics a model trains with are an exponential average (momentum 0.1) of the last
    ~10 batches, so a small-batch model's eval output jitters from one step to the next even when its
    weights barely move. The detector (batch 32) found 56-69 % of the validation hands epoch to epoch at
    the end of a cosine schedule; with one pass of recomputed statistics the two checkpoints measured
    found 66 and 69 % (BENCHMARKS.md, Preprocessing: precise BN). The weights are untouched; the model is left
    in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
    model.train()
    n = 0
    with torch.no_grad():
        for x in batches:
            model(x)
            n += 1
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    if bns and n == 0:
        raise ValueError("recompute_bn_stats needs at least one batch (the statistics were reset)")
    return n
