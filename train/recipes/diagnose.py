"""`handstream train diagnose`: a controlled diagnosis of what limits the pose model's accuracy (which of
the segmenter's centre, its mask, occluders and the LR schedule costs how many mm). Ships nothing; writes
runs/diag/. Defaults in configs/diagnose.yaml (one mapping per stage; `key=value` or `--flag` overrides).

    handstream train diagnose gen --frames 3000 --val-frames 600   # render once, cut every crop variant
    handstream train diagnose train COND --steps 1200              # one condition, fixed optimizer steps
    handstream train diagnose table                                # results -> markdown table

Conditions differ in ONE thing each against the baseline `seg_segmask` (the shipped recipe: segmenter centre,
segmenter mask, occluders on, ReduceLROnPlateau patience 2). Every condition trains compact_s@64 (300 mm cube)
for the same number of optimizer steps (not minutes: six developers share 2 cores, so wall time is noisy).
The same rendered frames feed every crop variant, so mask/centre conditions see identical hands.
Seeds 5000.. (train), 5900 (val), 5950 (common val) never overlap `train pose gen` (1000..) or the test (4242).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from . import register, single_process
from .options import REPO, parse_recipe_args

OUT = REPO / "runs" / "diag"
SIZE, CUBE_MM, SUBJECT_OFFSET = 64, 300.0, 1000
TRAIN_SEED, VAL_SEED, COMMON_SEED = 5000, 5900, 5950
FILTERS = {"min_visible_px": 150, "max_abs_norm": 1.0}

# condition -> (crop variant, common-val variant, schedule)
CONDITIONS = {
    "seg_segmask": ("seg_segmask", "gtc_segmask", "plateau"),
    "seg_nomask": ("seg_nomask", "gtc_nomask", "plateau"),
    "gt_gtmask": ("gt_gtmask", "gtc_gtmask", "plateau"),
    "gt_nomask": ("gt_nomask", "gtc_nomask", "plateau"),
    "seg_segmask_noocc": ("noocc_seg_segmask", "gtc_segmask", "plateau"),
    "seg_segmask_onecycle": ("seg_segmask", "gtc_segmask", "onecycle"),
    # the clean upper bound: GT centre + GT mask, no occluders (what the data allows without segmenter/occluder)
    "gt_gtmask_noocc": ("noocc_gt_gtmask", "gtc_gtmask", "plateau"),
    "gt_gtmask_noocc_onecycle": ("noocc_gt_gtmask", "gtc_gtmask", "onecycle"),
    # plateau runs end at a constant LR and are seed-noisy (+-3 mm): the factors again, each under one-cycle
    "seg_nomask_onecycle": ("seg_nomask", "gtc_nomask", "onecycle"),
    "gt_gtmask_onecycle": ("gt_gtmask", "gtc_gtmask", "onecycle"),
    "seg_segmask_noocc_onecycle": ("noocc_seg_segmask", "gtc_segmask", "onecycle"),
}
# crop variant -> make_crops keyword arguments
VARIANTS = {
    "seg_segmask": {"centre": "segment", "use_mask": True},
    "seg_nomask": {"centre": "segment", "use_mask": False},
    "gt_gtmask": {"centre": "mask", "use_mask": True},
    "gt_nomask": {"centre": "mask", "use_mask": False},
}


def usable(a, min_fg_px: int = 40):
    """Same filter as `handstream train pose` (train/recipes/pose.py): joints inside the cube, some hand in the crop."""
    keep = (np.abs(a.joints).max(axis=(1, 2)) <= 1.0) & ((a.depth < 1).sum(axis=(1, 2)) >= min_fg_px)
    return a.subset(np.nonzero(keep)[0])


def gtc_segmask_crops(frames):
    """Ground-truth (mask) centre but the SEGMENTER's mask: make_crops has no such mix, so it is cut here."""
    from stream.preprocess import HandSegmenter, crop_cube, normalize_joints
    from train.data import PoseArrays, mask_centre

    seg = HandSegmenter()
    depth, joints, coms, jmm = [], [], [], []
    for fr in frames:
        if fr.mask is None or int((fr.mask & (fr.depth_mm > 0)).sum()) < FILTERS["min_visible_px"]:
            continue
        com = mask_centre(fr)
        s = seg.segment(fr.depth_mm, fr.intrinsics)
        mask = s.best.mask if s.found else fr.mask
        crop = crop_cube(fr.depth_mm, fr.intrinsics, com, CUBE_MM, SIZE, mask)
        jn = normalize_joints(fr.joints_xyz_mm, crop)
        if float(np.abs(jn).max()) > 1.0:
            continue
        depth.append(crop.depth)
        joints.append(jn)
        coms.append(crop.com_xyz_mm)
        jmm.append(np.asarray(fr.joints_xyz_mm, dtype=np.float64))
    return PoseArrays(
        np.stack(depth).astype(np.float32),
        np.stack(joints).astype(np.float32),
        np.stack(coms),
        np.stack(jmm),
        CUBE_MM,
        {"centre": "mask", "mask": "segmenter"},
    )


def render(n: int, seed: int, occluders: bool) -> list:
    from train.data import default_scene, synthetic_frames

    cfg = replace(default_scene(), color=False)
    if not occluders:
        cfg = replace(cfg, occluder_prob=0.0)
    return list(synthetic_frames(n, seed=seed, config=cfg, subject_offset=SUBJECT_OFFSET))


def save(a, name: str) -> None:
    a = usable(a)
    (OUT / "crops").mkdir(parents=True, exist_ok=True)
    a.save(OUT / "crops" / f"{name}.npz")
    print(f"{name}: {len(a)} crops", flush=True)


def gen(args) -> int:
    from train.data import PoseArrays, make_crops

    t0 = time.time()
    part = args.part
    if part in ("train", "all"):
        fr = render(args.frames, TRAIN_SEED, True)
        print(f"rendered {len(fr)} train frames, {time.time() - t0:.0f} s", flush=True)
        for v, kw in VARIANTS.items():
            a = make_crops(fr, SIZE, CUBE_MM, seed=1, **kw, **FILTERS)
            b = make_crops(fr, SIZE, CUBE_MM, jitter_mm=15.0, seed=2, **kw, **FILTERS)
            save(PoseArrays.concat([a, b]), f"train_{v}")
    for noocc_part, variant in (("noocc", "seg_segmask"), ("noocc_gt", "gt_gtmask")):
        if part in (noocc_part, "all"):
            fr = render(args.frames, TRAIN_SEED, False)
            kw = VARIANTS[variant]
            a = make_crops(fr, SIZE, CUBE_MM, seed=1, **kw, **FILTERS)
            b = make_crops(fr, SIZE, CUBE_MM, jitter_mm=15.0, seed=2, **kw, **FILTERS)
            save(PoseArrays.concat([a, b]), f"train_noocc_{variant}")
            vf = render(args.val_frames, VAL_SEED, False)
            save(make_crops(vf, SIZE, CUBE_MM, seed=3, **kw, **FILTERS), f"val_noocc_{variant}")
    if part in ("val", "all"):
        vf = render(args.val_frames, VAL_SEED, True)
        for v, kw in VARIANTS.items():
            save(make_crops(vf, SIZE, CUBE_MM, seed=3, **kw, **FILTERS), f"val_{v}")
        cf = render(args.val_frames, COMMON_SEED, False)
        save(make_crops(cf, SIZE, CUBE_MM, centre="mask", use_mask=True, **FILTERS), "common_gtc_gtmask")
        save(make_crops(cf, SIZE, CUBE_MM, centre="mask", use_mask=False, **FILTERS), "common_gtc_nomask")
        save(gtc_segmask_crops(cf), "common_gtc_segmask")
    print(f"gen {part} done in {time.time() - t0:.0f} s", flush=True)
    return 0


def evaluate(model, a) -> float:
    """Mean joint error (mm) over all joints and crops."""
    import torch

    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(a.depth[:, None].copy())
        pred = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()
    model.train()
    err = np.linalg.norm(pred.reshape(len(a), -1, 3) - a.joints, axis=-1) * a.cube_mm / 2.0
    return float(err.mean())


def train_cond(args) -> int:
    """compact_s, AdamW 2e-3, wd 1e-4, batch 128, the pose recipe's augmentation; `plateau` halves the LR after
    2 evaluations without improvement (the shipped recipe, evaluated every `eval_every` steps as an 'epoch'),
    `onecycle` is torch's OneCycleLR over exactly `steps` steps."""
    import torch

    from train.augment import AugmentConfig, augment_batch
    from train.data import PoseArrays
    from train.models import create_model
    from train.trainer import pose_loss

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    tag = args.cond if args.seed == 0 else f"{args.cond}.seed{args.seed}"
    tag += "" if args.steps == 1200 else f".steps{args.steps}"
    variant, common, schedule = CONDITIONS[args.cond]
    tr = PoseArrays.load(OUT / "crops" / f"train_{variant}.npz")
    val = PoseArrays.load(OUT / "crops" / f"val_{variant}.npz")
    cval = PoseArrays.load(OUT / "crops" / f"common_{common}.npz")
    model = create_model("compact_s", num_joints=21, input_size=SIZE, fc_width=512, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, min_lr=1e-6)
    aug = AugmentConfig(
        rotation_deg=10.0, scale_range=(0.95, 1.05), translate_xy=0.03, translate_z=0.03, noise_std=0.01
    )
    xt = torch.from_numpy(tr.depth[:, None].copy())
    yt = torch.from_numpy(tr.joints.reshape(len(tr), -1).copy())
    history, step, t0, loss_sum, n = [], 0, time.time(), 0.0, 0
    while step < args.steps:
        perm = torch.randperm(len(xt))
        for i in range(0, len(perm) - 127, 128):
            idx = perm[i : i + 128]
            xb, yb = augment_batch(xt[idx], yt[idx], aug)
            loss = pose_loss(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum, n, step = loss_sum + float(loss), n + 1, step + 1
            if schedule == "onecycle":
                sched.step()
            if step % args.eval_every == 0 or step == args.steps:
                v = evaluate(model, val)
                if schedule == "plateau":
                    sched.step(v)
                history.append(
                    {
                        "step": step,
                        "train_loss": loss_sum / n,
                        "val_mm": v,
                        "lr": opt.param_groups[0]["lr"],
                        "min": (time.time() - t0) / 60,
                    }
                )
                print(json.dumps(history[-1]), flush=True)
                (OUT / "results").mkdir(parents=True, exist_ok=True)
                (OUT / "results" / f"{tag}.partial.json").write_text(json.dumps(history) + "\n")
                loss_sum, n = 0.0, 0
            if step >= args.steps:
                break
    res = {
        "cond": args.cond,
        "seed": args.seed,
        "variant": variant,
        "schedule": schedule,
        "steps": step,
        "train_crops": len(tr),
        "val_crops": len(val),
        "common": common,
        "common_crops": len(cval),
        "val_mm": evaluate(model, val),
        "best_val_mm": min(h["val_mm"] for h in history),
        "common_val_mm": evaluate(model, cval),
        "minutes": (time.time() - t0) / 60,
        "history": history,
    }
    (OUT / "results").mkdir(parents=True, exist_ok=True)
    (OUT / "results" / f"{tag}.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "history"}), flush=True)
    return 0


def baseline(a) -> float:
    """Mean-pose baseline on `a` (normalized mean of the same crops: an optimistic floor for 'learned nothing')."""
    err = np.linalg.norm(a.joints - a.joints.mean(axis=0), axis=-1) * a.cube_mm / 2.0
    return float(err.mean())


def table(args) -> int:
    from train.data import PoseArrays

    rows = [
        "| condition | seed | train crops | steps | val crops | val mm (final / best) | mean-pose val mm "
        "| common val | common val mm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, (variant, common, _) in CONDITIONS.items():
        paths = sorted((OUT / "results").glob(f"{cond}.json")) + sorted(
            (OUT / "results").glob(f"{cond}.s*.json")
        )
        paths = [q for q in paths if not q.name.endswith(".partial.json")]
        if not paths:
            rows.append(f"| {cond} | (not run) ||||||||")
        mp = baseline(PoseArrays.load(OUT / "crops" / f"val_{variant}.npz"))
        for q in paths:
            r = json.loads(q.read_text())
            rows.append(
                f"| {cond} | {r.get('seed', 0)} | {r['train_crops']} | {r['steps']} | {r['val_crops']} | "
                f"{r['val_mm']:.1f} / {r['best_val_mm']:.1f} | {mp:.1f} | {common} ({r['common_crops']}) | "
                f"{r['common_val_mm']:.1f} |"
            )
    print("\n".join(rows))
    (OUT / "table.md").write_text("\n".join(rows) + "\n")
    return 0


@register("diagnose", "what limits the pose model's accuracy: one factor per condition, equal steps")
def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    stages = {"gen": gen, "train": train_cond, "table": table}
    if not argv or argv[0] not in stages:
        print(
            "usage: handstream train diagnose {gen,train,table} ...   (handstream train diagnose STAGE --help)"
        )
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    stage = argv[0]
    p = argparse.ArgumentParser(
        prog=f"handstream train diagnose {stage}", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    if stage == "gen":
        p.add_argument("--frames", type=int)
        p.add_argument("--val-frames", type=int)
        p.add_argument("--part", choices=["train", "noocc", "noocc_gt", "val", "all"])
    elif stage == "train":
        p.add_argument("cond", choices=sorted(CONDITIONS))
        p.add_argument("--steps", type=int)
        p.add_argument("--eval-every", type=int)
        p.add_argument("--lr", type=float)
        p.add_argument("--seed", type=int, help="torch seed (init, shuffling, augmentation)")
    a = parse_recipe_args(p, argv[1:], "diagnose", stage)
    single_process("diagnose", "equal-step conditions, compared on one process")
    return stages[stage](a)
