"""`handstream train pose`: a pose network from a run config, or the shipped default pose model in stages.

    handstream train pose --config configs/compact_synth.yaml [--resume] [lr=1e-3 data.frames=500 ...]

trains from a run config (fields of train.trainer.TrainConfig; `key=value` / `a.b=value` words override
them). The default pose model is trained on synthetic data in stages that can run separately, with their
defaults in configs/pose.yaml (one mapping per stage; `key=value` or `--flag` overrides):

    handstream train pose gen   --frames 16000      # training crops -> data/default_train/*.npz
    handstream train pose train --minutes 35        # compact net -> checkpoints/pose.pt (+ metrics)
    handstream train pose test  --frames 2000       # held-out test set + eval with OUR segmentation
    handstream train pose nyu                       # the model on the real NYU test frame 1
    handstream train pose latency                   # export to ONNX, ORT 1-thread batch-1 latency
    handstream train pose pair --a M.pt --b L.pt    # average two trained nets into one model
    handstream train pose gap                       # error on training chunks vs validation
    handstream train pose views --shifts "1,1 -1,-1" --out C.pt  # shifted views at test time

Training hands are disjoint from test hands: training subjects are offset by 1000 (stream.synth test sets
draw 0..n_subjects-1) and training seeds (1000 + chunk) never equal the test seed (4242).

Several GPUs: the config run and the `train` stage run unchanged under
`torchrun --nproc_per_node=N -m stream.cli train pose ...` (train.trainer: DDP, batch size global).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stream.errors import InputError

from . import register, single_process
from .options import REPO, config_with_overrides, parse_recipe_args, split_overrides

TRAIN_DIR = REPO / "data" / "default_train"
TEST_DIR = REPO / "data" / "synth_test_4242"
TEST_SEED = 4242
SUBJECT_OFFSET = 1000
CROP_SIZE = 64
CUBE_MM = 300.0
CHUNK = 500


def gen(args) -> int:
    from dataclasses import replace

    from train.data import PoseArrays, default_scene, make_crops, synthetic_frames

    train_dir = Path(args.data_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    cfg = replace(default_scene(), color=False)  # depth only: a third faster, same depth frames
    n_chunks = (args.frames + CHUNK - 1) // CHUNK
    for c in range(args.first_chunk, args.first_chunk + n_chunks):
        out = train_dir / f"chunk_{c:03d}.npz"
        if out.exists():
            continue
        t0 = time.time()
        frames = list(synthetic_frames(CHUNK, seed=1000 + c, config=cfg, subject_offset=SUBJECT_OFFSET))
        kw = {"centre": "segment", "min_visible_px": 150, "max_abs_norm": 1.0}
        exact = make_crops(frames, CROP_SIZE, CUBE_MM, seed=c, **kw)
        jit = make_crops(frames, CROP_SIZE, CUBE_MM, jitter_mm=args.jitter_mm, seed=10_000 + c, **kw)
        both = PoseArrays.concat([exact, jit])
        both.meta.update(
            {"seed": 1000 + c, "subject_offset": SUBJECT_OFFSET, "jitter_mm": [0.0, args.jitter_mm]}
        )
        tmp = out.with_suffix(".tmp.npz")
        both.save(tmp)
        tmp.rename(out)
        print(
            f"{out.name}: {len(both)} crops, segmenter found {exact.meta['segmenter_found']}/{CHUNK}, {time.time() - t0:.0f} s",
            flush=True,
        )
    return 0


def chunk_files(train_dir: Path = TRAIN_DIR, limit: int = 0, val_chunk: str = "") -> list[Path]:
    """The chunk files of `train_dir` (the first `limit` by name when > 0), validation chunk LAST:
    `val_chunk` (a file name) when given, else the last one by name. Naming the validation chunk lets a
    data directory grow (`gen --first-chunk`) without the validation set changing under a comparison."""
    every = sorted(f for f in Path(train_dir).glob("chunk_*.npz") if not f.name.endswith(".tmp.npz"))
    files = every[:limit] if limit else every
    if val_chunk:
        val = [f for f in every if f.name == val_chunk]
        if not val:
            raise InputError(f"validation chunk {val_chunk} not in {train_dir}")
        files = [f for f in files if f.name != val_chunk] + val
    if len(files) < 2:
        raise InputError(f"need at least 2 chunks in {train_dir}, found {len(files)}: run `gen` first")
    return files


def load_chunks(limit: int = 0, train_dir: Path = TRAIN_DIR, val_chunk: str = ""):
    files = chunk_files(Path(train_dir), limit, val_chunk)
    return files, [load_usable(f) for f in files]


def load_usable(chunk: Path):
    """A chunk's usable crops (see `usable`)."""
    from train.data import PoseArrays

    return usable(PoseArrays.load(chunk))


def usable(a, min_fg_px: int = 40):
    """Drop crops a tanh net cannot fit (a joint outside the cube) or with almost no hand in them (the
    hand hidden or out of view); `gen` filters the same way, older chunks are filtered here."""
    import numpy as np

    keep = (np.abs(a.joints).max(axis=(1, 2)) <= 1.0) & ((a.depth < 1).sum(axis=(1, 2)) >= min_fg_px)
    return a.subset(np.nonzero(keep)[0])


def train_stage(args) -> int:
    import torch

    from train.data import PoseArrays
    from train.trainer import TrainConfig, finish_distributed, train

    files, parts = load_chunks(args.chunks, Path(args.data_dir), args.val_chunk)
    val = parts[-1]  # the validation chunk (its own seed): --val-chunk, else the last by name
    tr = PoseArrays.concat(parts[:-1])
    if is_main_process():
        print(
            f"train {len(tr)} crops from {len(files) - 1} chunks, val {len(val)} crops ({files[-1].name})",
            flush=True,
        )
    cfg = TrainConfig(
        name=args.name,
        model=args.model,
        model_kwargs={"fc_width": args.fc_width, "dropout": 0.0},
        optimizer="adamw",
        lr=args.lr,
        weight_decay=1e-4,
        batch_size=128,
        epochs=200,
        schedule=args.schedule,
        loss=args.loss,
        init_from=args.init,
        init_body_from=args.init_body,
        lr_patience=2,
        early_stop_patience=args.patience,
        augment={
            "rotation_deg": 10.0,
            "scale_range": [0.95, 1.05],
            "translate_xy": 0.03,
            "translate_z": 0.03,
            "noise_std": 0.01,
        },
        max_minutes=args.minutes,
        seed=0,
        threads=args.threads,
        amp=args.amp,
        out_dir=str(REPO / "runs"),
        progress=False,
        data={
            "kind": "synthetic-generated",
            "chunks": [f.name for f in files[:-1]],
            "dir": str(Path(args.data_dir).relative_to(REPO))
            if Path(args.data_dir).is_relative_to(REPO)
            else args.data_dir,
            "crop_size": CROP_SIZE,
            "cube_mm": CUBE_MM,
        },
        val_data={"chunk": files[-1].name},
    )
    res = train(cfg, tr, val, resume=args.resume)
    finish_distributed()
    if not is_main_process():
        return 0  # rank 0 reports and writes the shipped checkpoint
    print(
        f"best val {res.best_val_loss:.5f} ({res.best_val_mm:.2f} mm) after {res.epochs_run} epochs, stopped: {res.stopped}"
    )
    ck = torch.load(res.best_checkpoint, map_location="cpu", weights_only=False)
    ck["training_summary"] = {
        "epochs_run": res.epochs_run,
        "stopped": res.stopped,
        "train_crops": len(tr),
        "val_crops": len(val),
    }
    out = Path(args.checkpoints) / f"{args.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, out)
    print(f"wrote {out}")
    return 0


def test_stage(args) -> int:
    from stream.synth import write_dataset
    from train.data import default_scene
    from train.evaluate import evaluate_synthetic

    if not (TEST_DIR / "meta.json").is_file():
        write_dataset(TEST_DIR, args.frames, TEST_SEED, default_scene(), progress=False)
    res = {}
    for centre in ("segment", "gt"):
        r = evaluate_synthetic(args.checkpoint, TEST_DIR, gt_centre=centre == "gt")
        r.pop("success_curve")
        res[centre] = r
        print(json.dumps({k: v for k, v in r.items() if k != "per_joint_mm"}), flush=True)
    out = Path(args.checkpoint).with_suffix(".metrics.json")
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    # the checkpoint carries its test metrics, so the exported engine's manifest shows them
    import torch

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    seg = res["segment"]
    ck["metrics"] = {
        **ck.get("metrics", {}),
        "synthetic_test": f"{TEST_DIR.name}: {seg['frames_total']} frames, seed {TEST_SEED}, our segmentation",
        "test_mean_mm": seg["mean_mm"],
        "test_success_20mm": seg["success_rate"]["20"],
        "test_found": seg["found"],
        "test_mean_mm_gt_centre": res["gt"]["mean_mm"],
    }
    torch.save(ck, args.checkpoint)
    return 0


def crops_error_mm(model, a, half_mm: float) -> float:
    """Mean joint error (mm) of `model` on usable crops `a` (load_usable), plain (no augmentation)."""
    import torch

    from train.metrics import mean_error_mm
    from train.trainer import as_tensors, predict

    with torch.no_grad():
        pred = predict(model, as_tensors(a)[0]).numpy().reshape(a.joints.shape)
    return mean_error_mm(pred * half_mm, a.joints * half_mm)


def gap_stage(args) -> int:
    """Mean joint error of a checkpoint on some of its TRAINING chunks (no augmentation) next to its
    validation chunk: a gap says the net memorizes its crops and more data helps; no gap says it needs
    capacity or steps. (The training loss cannot answer this: it is smooth L1 on augmented crops, validation
    is eq. 4.14 on plain ones.)"""
    import numpy as np

    from train.trainer import load_trained

    model, meta = load_trained(args.checkpoint)
    files = chunk_files(Path(args.data_dir), 0, args.val_chunk)
    train, val = files[:-1], files[-1]
    picks = [train[int(i)] for i in np.linspace(0, len(train) - 1, min(args.train_chunks, len(train)))]
    half_mm = float(meta["cube_mm"]) / 2.0

    tr = {f.name: crops_error_mm(model, load_usable(f), half_mm) for f in picks}
    res = {
        "checkpoint": str(args.checkpoint),
        "train_mm": tr,
        "train_mean_mm": float(np.mean(list(tr.values()))),
        "val_chunk": val.name,
        "val_mm": crops_error_mm(model, load_usable(val), half_mm),
    }
    res["gap_mm"] = res["val_mm"] - res["train_mean_mm"]
    print(json.dumps(res))
    return 0


def parse_shifts(text: str) -> list[tuple[int, int]]:
    """Parse "1,1 -1,-1" into [(1, 1), (-1, -1)]: one argument, as argparse reads "-1,-1" as an option."""
    try:
        shifts = [tuple(int(v) for v in s.split(",")) for s in text.replace(";", " ").split()]
    except ValueError:
        shifts = []
    if not shifts or any(len(s) != 2 for s in shifts):
        raise argparse.ArgumentTypeError(f'shifts are "DX,DY DX,DY ..." in whole pixels, got {text!r}')
    return shifts


def views_stage(args) -> int:
    """A canonical checkpoint -> a copy whose model averages shifted views of each crop in eval mode
    (train.canonical.InPlaneCanonical's `test_shifts_px`; the weights are copied, nothing is trained).
    Prints the validation chunk's error without and with the views: choose them there, never on the test
    set. The engine built from the copy runs the views as one batch."""
    import torch

    from train.models import create_model

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    if not str(ck.get("model_name", "")).endswith("_canon"):
        raise InputError(f"views need an in-plane canonical model (*_canon), got {ck.get('model_name')!r}")
    if not args.shifts or not args.out:
        raise InputError("views needs --shifts and --out")
    shifts = parse_shifts(args.shifts) if isinstance(args.shifts, str) else args.shifts
    kw = {**ck.get("model_kwargs", {}), "test_shifts_px": [list(s) for s in shifts]}
    val = load_usable(chunk_files(Path(args.data_dir), 0, args.val_chunk)[-1])  # once, for both models
    half_mm = float(ck["cube_mm"]) / 2.0
    res = {}
    for key, kwargs in (("val_mm_single", {**kw, "test_shifts_px": []}), ("val_mm_views", kw)):
        model = create_model(ck["model_name"], **kwargs)
        model.load_state_dict(ck["model_state"])
        res[key] = crops_error_mm(model, val, half_mm)
    out = Path(args.out)
    meta = {k: v for k, v in ck.items() if k != "metrics"}  # test metrics belong to the old model
    meta["model_kwargs"] = kw
    meta["metrics"] = {"val_mean_mm": res["val_mm_views"], "val_mean_mm_single_view": res["val_mm_single"]}
    meta["views_from"] = str(args.checkpoint)
    torch.save(meta, out)
    print(json.dumps({"out": str(out), "shifts": kw["test_shifts_px"], **res}))
    return 0


def pair_stage(args) -> int:
    """Two trained checkpoints (compact_m_canon, compact_l_canon) -> one compact_ml_canon_pair checkpoint
    whose prediction is their mean (train.models.MeanPair): nothing is trained, the weights are copied."""
    import torch

    from train.models import create_model

    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in (args.a, args.b)]
    names = [ck.get("model_name") for ck in cks]
    if names != ["compact_m_canon", "compact_l_canon"]:
        raise InputError(f"pair needs a compact_m_canon and a compact_l_canon checkpoint, got {names}")
    kw = cks[0]["model_kwargs"]
    if any(ck["model_kwargs"] != kw or ck["cube_mm"] != cks[0]["cube_mm"] for ck in cks):
        raise InputError("the two checkpoints differ in input size, fc width, joints or cube")
    state = {f"a.{k}": v for k, v in cks[0]["model_state"].items()}
    state.update({f"b.{k}": v for k, v in cks[1]["model_state"].items()})
    model = create_model("compact_ml_canon_pair", **kw)
    model.load_state_dict(state)  # strict: every weight of both nets, nothing else
    meta = {k: v for k, v in cks[0].items() if not k.endswith("_state") and k not in ("metrics", "config")}
    meta.update(
        {
            "model_name": "compact_ml_canon_pair",
            "members": [
                {"checkpoint": str(p), "metrics": ck.get("metrics", {})}
                for p, ck in zip((args.a, args.b), cks)
            ],
            "metrics": {},
        }
    )
    out = Path(args.checkpoints) / f"{args.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": model.state_dict(), **meta}, out)
    print(f"wrote {out}")
    return 0


def nyu_stage(args) -> int:
    """The model on the real NYU test frame 1: our segmentation + crop, 21 -> 14 joints (stream.synth's map),
    against GT line 1 in our camera frame. A different sensor, a different person and joint layout: a sanity
    check of domain transfer, not a benchmark."""
    import numpy as np

    from stream.preprocess import HandSegmenter, crop_cube, denormalize_joints
    from stream.synth import nyu_from_21
    from train.evaluate import load_predictor
    from train.nyu import NYU_CAMERA, load_uvd_file, nyu_uvd_to_camera, read_nyu_depth_png

    nyu = REPO.parent / "shared" / "data" / "nyu"
    depth = read_nyu_depth_png(nyu / "depth_1_0000001.png")
    gt = nyu_uvd_to_camera(load_uvd_file(nyu / "nyu_test_groundtruth_label.txt")[0])
    predict, info = load_predictor(args.checkpoint)
    seg = HandSegmenter().segment(depth, NYU_CAMERA)
    out = {"segmenter_found": seg.found}
    centres = {"gt_palm_mean": gt.mean(axis=0)}
    if seg.found:
        centres = {"our_segmentation": seg.best.com_xyz_mm, **centres}
        out["segmenter_com_error_mm"] = float(np.linalg.norm(seg.best.com_xyz_mm - gt.mean(axis=0)))
    for name, com in centres.items():
        mask = seg.best.mask if (seg.found and name == "our_segmentation") else None
        crop = crop_cube(depth, NYU_CAMERA, com, float(info["cube_mm"]), int(info["crop_size"]), mask)
        j14 = nyu_from_21(denormalize_joints(predict(crop.depth).reshape(-1, 3), crop))
        err = np.linalg.norm(j14 - gt, axis=1)
        out[name] = {
            "mean_mm": float(err.mean()),
            "max_mm": float(err.max()),
            "per_joint_mm": [round(float(e), 1) for e in err],
        }
    print(json.dumps(out, indent=1))
    return 0


def latency_stage(args) -> int:
    """Export the checkpoint as the engines developer does (engines.export_model) to runs/pose_engine and time
    ONNX Runtime on it: batch 1, one thread, p50/p95/p99 over --runs runs."""
    import numpy as np
    import onnxruntime as ort

    from engines.export_model import export_model

    out_dir = REPO / "runs" / "pose_engine"
    onnx = export_model(None, out_dir, name="pose", checkpoint=args.checkpoint)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = (
        np.random.default_rng(0)
        .uniform(-1, 1, [d if isinstance(d, int) else 1 for d in inp.shape])
        .astype(np.float32)
    )
    for _ in range(50):
        sess.run(None, {inp.name: x})
    ms = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        ms.append((time.perf_counter() - t) * 1e3)
    r = {
        "onnx": str(onnx),
        "onnx_mb": round(onnx.stat().st_size / 1e6, 3),
        "input": list(inp.shape),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "runs": args.runs,
    }
    print(json.dumps(r))
    return 0


def is_main_process() -> bool:
    """False on the ranks > 0 of a torchrun job (they train, rank 0 reports)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def run_config(argv: list[str]) -> int:
    """`handstream train pose --config FILE [key=value ...]`: one run of train.trainer from a config."""
    p = argparse.ArgumentParser(
        prog="handstream train pose",
        description="train a pose network from a config; `key=value` words override its fields",
        epilog=f"stages of the default pose model: {', '.join(STAGES)} (handstream train pose STAGE --help)",
    )
    p.add_argument("--config", required=True, help="YAML or JSON run config (fields of TrainConfig)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt of this config's run")
    p.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    p.add_argument("--max-minutes", type=float, help="override the config's wall-clock budget")
    rest, overrides = split_overrides(argv, p)
    a = p.parse_args(rest)
    from dataclasses import replace

    from train.cli_train import build_arrays
    from train.trainer import TrainConfig, finish_distributed, train

    cfg = TrainConfig.from_dict(config_with_overrides(a.config, overrides))
    if a.device:
        cfg = replace(cfg, device=a.device)
    if a.max_minutes is not None:
        cfg = replace(cfg, max_minutes=a.max_minutes)
    tr = build_arrays(cfg.data)
    val = build_arrays(cfg.val_data) if cfg.val_data else None
    res = train(cfg, tr, val, resume=a.resume)
    finish_distributed()
    if is_main_process():
        print(
            json.dumps(
                {
                    "run_dir": str(res.run_dir),
                    "best_checkpoint": str(res.best_checkpoint),
                    "best_val_loss": res.best_val_loss,
                    "best_val_mm": res.best_val_mm,
                    "epochs": res.epochs_run,
                    "stopped": res.stopped,
                }
            )
        )
    return 0


def _stage_parser(stage: str) -> argparse.ArgumentParser:
    """The options of one stage; their defaults come from configs/pose.yaml's `stage` mapping."""
    p = argparse.ArgumentParser(
        prog=f"handstream train pose {stage}",
        description=STAGE_HELP[stage],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ck = {"help": "a pose checkpoint (.pt)"}
    if stage == "gen":
        p.add_argument("--frames", type=int)
        p.add_argument("--first-chunk", type=int)
        p.add_argument("--jitter-mm", type=float)
        p.add_argument("--data-dir", help="where the training chunks go")
    elif stage == "train":
        p.add_argument("--minutes", type=float)
        p.add_argument("--model")
        p.add_argument("--fc-width", type=int)
        p.add_argument("--lr", type=float)
        p.add_argument(
            "--schedule",
            choices=("plateau", "cosine"),
            help="plateau made the shipped model; cosine was ~5 mm better at equal steps (train diagnose)",
        )
        p.add_argument("--threads", type=int)
        p.add_argument(
            "--amp",
            choices=["", "bf16"],
            help="bf16: forward and loss under torch.autocast(bfloat16), fp32 weights ('' = fp32)",
        )
        p.add_argument("--loss", choices=["eq4.14", "smooth_l1"])
        p.add_argument(
            "--patience",
            type=int,
            help="early stop after this many epochs without a better validation loss (a long cosine run's "
            "noisy high-LR phase can trip 8; give it the epoch count to switch early stopping off)",
        )
        p.add_argument("--init", help="start from this local checkpoint's weights (warm restart)")
        p.add_argument("--init-body", help="copy the matching layers of another model's checkpoint")
        p.add_argument("--chunks", type=int, help="use only the first N chunks by name (0 = all)")
        p.add_argument("--val-chunk", help="the validation chunk's file name ('' = the last chunk by name)")
        p.add_argument("--data-dir", help="the training chunks (`gen --data-dir`)")
        p.add_argument("--name")
        p.add_argument("--checkpoints", help="where the best checkpoint is copied as NAME.pt")
        p.add_argument("--resume", action="store_true", help="continue runs/NAME/last.pt for --minutes more")
    elif stage == "test":
        p.add_argument("--frames", type=int)
        p.add_argument("--checkpoint", **ck)
    elif stage == "pair":
        p.add_argument("--a", required=True, help="a compact_m_canon checkpoint")
        p.add_argument("--b", required=True, help="a compact_l_canon checkpoint")
        p.add_argument("--name")
        p.add_argument("--checkpoints", help="where the pair is written as NAME.pt")
    elif stage == "gap":
        p.add_argument("--checkpoint", **ck)
        p.add_argument("--data-dir")
        p.add_argument("--val-chunk")
        p.add_argument("--train-chunks", type=int, help="how many training chunks, evenly spread")
    elif stage == "views":
        p.add_argument("--checkpoint", **ck)
        p.add_argument("--shifts", type=parse_shifts, help='pixels, e.g. "1,1 -1,-1"')
        p.add_argument("--out", help="the new checkpoint (.pt)")
        p.add_argument("--data-dir", help="the chunks holding the validation chunk")
        p.add_argument("--val-chunk")
    elif stage == "nyu":
        p.add_argument("--checkpoint", **ck)
    elif stage == "latency":
        p.add_argument("--checkpoint", **ck)
        p.add_argument("--runs", type=int)
    return p


STAGES = {
    "gen": gen,
    "train": train_stage,
    "test": test_stage,
    "nyu": nyu_stage,
    "latency": latency_stage,
    "pair": pair_stage,
    "gap": gap_stage,
    "views": views_stage,
}
STAGE_HELP = {
    "gen": "generate training crops in chunks (synthetic frames, our segmenter's centre)",
    "train": "train the compact net on the chunks; best checkpoint -> CHECKPOINTS/NAME.pt",
    "test": "held-out synthetic test set, evaluated with our segmentation; metrics into the checkpoint",
    "nyu": "the model on the real NYU test frame 1 (a domain-transfer sanity check)",
    "latency": "export to ONNX and time ONNX Runtime, batch 1, one thread",
    "pair": "average two trained checkpoints into one model (no training)",
    "gap": "error on training chunks vs the validation chunk (memorizing?)",
    "views": "a copy of a checkpoint that averages shifted views (eval only)",
}
# options that name files or folders: relative values in configs/pose.yaml mean the repository's folders
REPO_PATHS = ("data_dir", "checkpoint", "checkpoints")


@register(
    "pose", "a pose network from a run config, or the default pose model's stages (gen, train, test, ...)"
)
def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    if argv and argv[0] == "run":
        return run_config(argv[1:])
    if not argv or argv[0] not in STAGES:
        return run_config(argv)
    stage = argv[0]
    a = parse_recipe_args(_stage_parser(stage), argv[1:], "pose", stage, REPO_PATHS)
    if stage != "train":
        single_process(f"pose {stage}", "only training splits its work between processes")
    return STAGES[stage](a)
