"""The dynamic gesture recipe (`handstream train dynamic_gesture ...`): train a window embedding on synthetic
motion gestures, export it as an engine with its rejection distance and a default gallery of the built-in
motions beside it, and compare losses, selection rules and models. Defaults are
train.gesture.dynamic.DynamicTrainConfig's; flags override them.

    handstream train dynamic_gesture train --out runs/dyn [--loss quadruplet --selection method2]
    handstream train dynamic_gesture ship --checkpoint runs/dyn/dynamic_gesture.pt --out engines/default
    handstream train dynamic_gesture sweep --out runs/dyn/sweep.jsonl [--models ddnet,window_mlp]
    handstream train dynamic_gesture table runs/dyn/sweep.jsonl       # the BENCHMARKS.md table
    handstream train dynamic_gesture stream [--tracks 20 --noise-mm 2]  # the stage on continuous tracks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stream.errors import InputError

from ..recipes import register
from . import LOSSES
from .recipe import (
    add_training_options,
    best_threshold,
    config_from_args,
    load_checkpoint,
    save_checkpoint,
    train_to,
    training_manifest,
)
from .selection import METHODS


def _config(args):
    from .dynamic import DynamicTrainConfig

    return config_from_args(DynamicTrainConfig(), args)


def pick_reject_distance(
    emb: np.ndarray, labels: np.ndarray, still: np.ndarray, shots: int = 5, seed: int = 0
) -> dict:
    """A rejection distance from classes the embedding never saw, as the stage will use it: half of them
    enrolled (`shots` each) beside a third of the REST windows (`still`: a resting hand, unfinished
    motions); queries are the other windows of the enrolled classes (to be named) and the windows of the
    other half and the other REST ones (to be rejected, or matched to REST, which the stage never reports).
    The distance that maximises the mean of the two rates."""
    from stream.gestures import UNKNOWN, nearest_class
    from stream.gestures.dynamic import REST

    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    enrolled = rng.choice(classes, size=max(len(classes) // 2, 1), replace=False)
    gallery = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in enrolled]
    )
    query = np.setdiff1d(np.arange(len(labels)), gallery)
    rest = np.arange(len(still)) < len(still) // 3
    g_emb = np.concatenate([emb[gallery], still[rest]])
    g_lab = np.concatenate([labels[gallery], np.full(int(rest.sum()), REST)])
    q_emb = np.concatenate([emb[query], still[~rest]])
    q_lab = np.concatenate([labels[query], np.full(int((~rest).sum()), UNKNOWN)])
    pred, dist = nearest_class(g_emb, g_lab, q_emb)
    pred = np.where(pred == REST, UNKNOWN, pred)
    known = np.isin(q_lab, enrolled)
    best = best_threshold(dist, pred, q_lab, known, np.linspace(0.02, 1.0, 99))
    return {
        "reject_distance": best[1],
        "open_set_balanced_accuracy": best[0],
        "enrolled_accuracy": best[2],
        "unenrolled_and_still_rejected": best[3],
    }


def train_main(args) -> int:
    from .dynamic import train_dynamic_embedding

    return train_to(args.out, _config(args), train_dynamic_embedding, "dynamic_gesture.pt")


def ship_main(args) -> int:
    from engines.export import export_onnx
    from stream.gestures.dynamic import FEATURES, DynamicGallery, window_features
    from stream.synth import motions

    from .dynamic import DynamicTrainConfig, embed, training_classes, windows
    from .dynamic_models import create_dynamic_model

    fine, coarse = training_classes()
    ck, model = load_checkpoint(args.checkpoint, create_dynamic_model, n_coarse=len(coarse), n_fine=len(fine))
    cfg = DynamicTrainConfig(**{k: v for k, v in ck["metrics"]["config"].items() if k != "loss_cfg"})
    cfg.cache = args.cache or ""
    # the default gallery: every built-in motion (trained and unseen alike), both hands, a little jitter,
    # 10 examples each, so `--models pose,dynamic_gesture` names them out of the box; and 30 windows of a
    # resting hand and 32 of unfinished built-in motions (REST), which the stage never reports (and adds to
    # a user's gallery that has none)
    gallery = DynamicGallery()
    kw = {"window_s": cfg.window_ms / 1000.0, "frames": cfg.frames, "noise_mm": 2.0}
    data = motions.motion_windows((*motions.FINE, *[motions.REST] * 3), 10, 2024, **kw)
    part = motions.motion_windows(motions.FINE, 2, 2025, partial=True, **kw)["windows_xyz_mm"]
    for name in motions.FINE:
        gallery.add(name, data["windows_xyz_mm"][data["label"] == name])
    gallery.add(motions.REST, np.concatenate([data["windows_xyz_mm"][data["label"] == motions.REST], part]))
    # two rejection distances: the open-set one of the static engine (unseen classes, half enrolled) for
    # the record, and the one the stage uses, tuned on continuous tracks through the stage itself
    held = windows(motions.UNSEEN, 60, cfg.eval_seed + 1, cfg, noise_mm=5.0)
    still = windows((motions.REST,), 150, cfg.eval_seed + 2, cfg, noise_mm=5.0)
    unfinished = windows(motions.UNSEEN, 30, cfg.eval_seed + 3, cfg, noise_mm=5.0, partial=True)
    rest = np.concatenate([still["windows_xyz_mm"], unfinished["windows_xyz_mm"]])
    open_set = pick_reject_distance(
        embed(model, window_features(held["windows_xyz_mm"])),
        held["label"],
        embed(model, window_features(rest[np.random.default_rng(0).permutation(len(rest))])),
    )
    stage = pick_stage_reject_distance(model, gallery, cfg)
    reject = (
        {"reject_distance": stage["stage_reject_distance"]}
        | stage
        | {k if k.startswith("open_set") else f"open_set_{k}": v for k, v in open_set.items()}
    )
    parity = window_features(windows(motions.FINE[:8], 1, 7, cfg, noise_mm=3.0)["windows_xyz_mm"])
    out = Path(args.out)
    export_onnx(
        model,
        out,
        args.name,
        (1, cfg.frames, FEATURES),
        {
            "version": "0.1.0",
            "task": "dynamic_gesture_embedding",
            "preprocessing": {
                "input": "joints",
                "joints_frame": "window features (stream.gestures.dynamic.window_features)",
                "window_ms": cfg.window_ms,
                "frames": cfg.frames,
                "num_features": FEATURES,
                "joint_layout": "mediapipe21",
                "num_joints": 21,
            },
            "training": training_manifest(ck),
            "metrics": {"unseen": ck["metrics"]["unseen"], **reject},
        },
        parity_inputs=parity,
        input_names=("window",),
        output_names=("embedding",),
    )
    gallery.save(out / f"{args.name}_gallery.npz")
    print(json.dumps(reject))
    print(f"engine: {out / args.name}.onnx, gallery: {out / args.name}_gallery.npz")
    return 0


def sweep_main(args) -> int:
    from .dynamic import evaluate, train_dynamic_embedding

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            d = json.loads(line)
            if "config" in d:
                done.add((d["config"]["model"], d["config"]["loss"], d["config"]["selection"]))
    if not out.is_file() or out.stat().st_size == 0:  # a resumed sweep keeps its one baseline row
        base = _config(args)  # the trained rows' evaluation set
        row = {
            "baseline": "features, no learning",
            "unseen": [evaluate(None, base, n) for n in base.eval_noise_mm],
        }
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    for model in args.models.split(","):
        for loss in args.losses.split(","):
            for sel in args.selections.split(","):
                if (model, loss, sel) in done:
                    continue
                cfg = _config(args)
                cfg.model, cfg.loss, cfg.selection = model, loss, sel
                m, metrics = train_dynamic_embedding(cfg, log=lambda *a: None)
                save_checkpoint(m, cfg, metrics, out.parent / f"{model}_{loss}_{sel}.pt")
                metrics.pop("history")
                with out.open("a") as f:
                    f.write(json.dumps(metrics) + "\n")
                print(
                    model,
                    loss,
                    sel,
                    metrics["train_s"],
                    [u["recall_at"]["1"] for u in metrics["unseen"]],
                    flush=True,
                )
    return 0


def synthetic_tracks(count: int, per_track: int, seed: int, noise_mm: float) -> list:
    """`count` continuous tracks (stream.synth.motions.performance), each one hand performing `per_track`
    random built-in motions with rests between: [(times_ms, joints, [(name, start_s, end_s)])]."""
    from stream.synth import motions

    rng = np.random.default_rng(seed)
    return [
        motions.performance(
            [str(n) for n in rng.choice(motions.FINE, size=per_track)], rng, noise_mm=noise_mm
        )
        for _ in range(int(count))
    ]


def still_tracks(count: int, seed: int, noise_mm: float, seconds: float = 10.0) -> list:
    """`count` tracks of a resting hand (stream.synth.motions REST: a held shape, a slow drift of up to
    20 mm), `seconds` long at 30 fps, in the form of `synthetic_tracks` with no performance in them."""
    from stream.synth import motions

    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, 1.0 / motions.FPS)
    return [
        (t * 1000.0, motions.motion_track(motions.motion_sample(motions.REST, rng), t, rng, noise_mm), [])
        for _ in range(int(count))
    ]


def stream_counts(stage, tracks: list, late_s: float = 0.6) -> tuple[dict, dict]:
    """The stage on continuous tracks: a performance counts as named right when the stage's first report
    between its start and `late_s` after its end is its name; wrong and missed otherwise; any further
    report (a second one for a performance, or one while the hand rests or changes shape between gestures)
    is an extra. Returns (counts, confusion: true name -> {reported name or "-": count})."""
    from stream.frames import RGBDFrame, camera
    from stream.stages import FrameState

    cam = camera("d435_320x240")
    counts = {"performances": 0, "right": 0, "wrong": 0, "missed": 0, "extra": 0}
    confusion: dict[str, dict[str, int]] = {}
    for times, joints, segs in tracks:
        stage.reset()
        reports = []
        for i, (t, j) in enumerate(zip(times, joints)):
            st = FrameState(RGBDFrame(i, float(t), np.zeros(cam.shape, np.uint16), cam))
            st.joints_mm = j.astype(np.float64)
            stage.run(st)
            if st.fields["dynamic_gesture"]:
                reports.append((float(t) / 1000.0, st.fields["dynamic_gesture"]))
        matched = 0
        for name, start, end in segs:
            got = [n for t, n in reports if start <= t < end + late_s]
            matched += len(got)
            counts["performances"] += 1
            counts["extra"] += max(len(got) - 1, 0)
            first = got[0] if got else None
            counts["right" if first == name else "missed" if first is None else "wrong"] += 1
            row = confusion.setdefault(name, {})
            row[first or "-"] = row.get(first or "-", 0) + 1
        counts["extra"] += len(reports) - matched  # while the hand rested or changed shape
    return counts, confusion


def stream_main(args) -> int:
    """The stage on continuous synthetic tracks (`stream_counts`) through the shipped engine and default
    gallery (or --engine/--gallery), at 30 fps with `--noise-mm` of track jitter."""
    import engines
    from stream.gestures.dynamic_stage import DynamicGestureStage

    tracks = synthetic_tracks(args.tracks, args.per_track, args.seed, args.noise_mm)
    rest = still_tracks(args.still_tracks, args.seed + 1, args.noise_mm)
    with engines.load_engine(args.engine, backend="onnxruntime", threads=1) as eng:
        stage = DynamicGestureStage(
            eng,
            gallery=args.gallery,
            reject_distance=args.reject_distance,
            stride=args.stride,
            confirm=args.confirm,
            settle_ms=args.settle_ms,
        )
        counts, confusion = stream_counts(stage, tracks, args.late_s)
        false_alarms = stream_counts(stage, rest)[0]["extra"]
    out = counts | {
        "right_rate": counts["right"] / counts["performances"],
        "extra_per_performance": counts["extra"] / counts["performances"],
        "still_minutes": len(rest) * 10.0 / 60.0,
        "still_false_alarms": false_alarms,
        "noise_mm": args.noise_mm,
        "reject_distance": stage.reject_distance,
        "per_class": {k: round(v.get(k, 0) / sum(v.values()), 3) for k, v in sorted(confusion.items())},
    }
    if args.confusion:
        out["confusion"] = confusion
    print(json.dumps(out))
    return 0


class _TorchEngine:
    """A trained net behind the engine interface the stage uses (`infer`, `output_names`, `manifest`), so
    the recipe can run the stage before the net is exported."""

    output_names = ("embedding",)

    def __init__(self, model, frames: int, window_ms: float) -> None:
        from types import SimpleNamespace

        self.model = model.eval()
        self.manifest = SimpleNamespace(metrics={}, preprocessing={"frames": frames, "window_ms": window_ms})

    def infer(self, x: np.ndarray) -> dict:
        import torch

        with torch.no_grad():
            return {"embedding": self.model(torch.from_numpy(np.ascontiguousarray(x))).numpy()}


def pick_stage_reject_distance(model, gallery, cfg, seed: int = 1000) -> dict:
    """The rejection distance the stage ships with: the one that maximises (right - extra - false alarms) /
    performances on 15 continuous synthetic tracks of 4 motions each and 6 tracks of a resting hand, 10 s
    each (2 mm of jitter; seed 1000, so the `stream` measure's default seed 0 is not what it was tuned on)."""
    from stream.gestures.dynamic_stage import DynamicGestureStage

    tracks = synthetic_tracks(15, 4, seed, 2.0)
    rest = still_tracks(6, seed + 1, 2.0)
    engine = _TorchEngine(model, cfg.frames, cfg.window_ms)
    best: dict = {}
    for r in np.arange(0.2, 0.91, 0.05):
        stage = DynamicGestureStage(engine, gallery=gallery, reject_distance=float(r))
        counts, _ = stream_counts(stage, tracks)
        counts["still_false_alarms"] = stream_counts(stage, rest)[0]["extra"]
        score = (counts["right"] - counts["extra"] - counts["still_false_alarms"]) / counts["performances"]
        if not best or score > best["stage_score"]:
            best = {"stage_reject_distance": round(float(r), 3), "stage_score": score, "stage_tuning": counts}
    return best


def sweep_table(path: str | Path) -> str:
    """The BENCHMARKS.md table from a sweep's JSON lines: one row per run, clean and jittered columns."""
    rows = [
        "| embedding | loss | selection | R@1 | R@2 | R@4 | R@8 | NMI | 5-shot | R@1 / NMI / 5-shot with jitter | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    order = {(loss, sel): i for i, (loss, sel) in enumerate((a, b) for a in LOSSES for b in METHODS)}
    runs.sort(
        key=lambda d: (
            ("",) if "baseline" in d else (d["config"]["model"],),
            -1 if "baseline" in d else order.get((d["config"]["loss"], d["config"]["selection"]), 99),
        )
    )
    for d in runs:
        clean, noisy = d["unseen"][0], d["unseen"][-1]
        r = clean["recall_at"]
        if "baseline" in d:
            name, loss, sel, secs = "features, flattened (no learning)", "-", "-", "-"
        else:
            c = d["config"]
            name, loss, sel, secs = c["model"], c["loss"], c["selection"], f"{d['train_s']:.0f}"
        rows.append(
            f"| {name} | {loss} | {sel} | {r['1']:.3f} | {r['2']:.3f} | {r['4']:.3f} | {r['8']:.3f} | "
            f"{clean['nmi']:.3f} | {clean['shot_accuracy']:.3f} | {noisy['recall_at']['1']:.3f} / "
            f"{noisy['nmi']:.3f} / {noisy['shot_accuracy']:.3f} ({noisy['noise_mm']:g} mm) | {secs} |"
        )
    return "\n".join(rows)


@register(
    "dynamic_gesture", help="dynamic gesture embeddings on joint windows: train, ship engine + gallery, sweep"
)
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="handstream train dynamic_gesture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "sweep"):
        p = sub.add_parser(name)
        add_training_options(p)
        p.add_argument("--eval-per-class", dest="eval_per_class", type=int, default=None)
        p.add_argument("--tuples", type=int, default=None, help="quadruplets (or triplets) per step")
        p.add_argument("--cache", default=None, help="folder for the generated windows")
        if name == "train":
            p.add_argument("--model", default=None, choices=("ddnet", "window_mlp"))
            p.add_argument("--loss", default=None, choices=LOSSES)
            p.add_argument("--selection", default=None, choices=METHODS)
        else:
            p.add_argument("--models", default="ddnet,window_mlp")
            p.add_argument("--losses", default=",".join(LOSSES))
            p.add_argument("--selections", default=",".join(METHODS))
    sp = sub.add_parser("ship")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--out", default="engines/default")
    sp.add_argument("--name", default="dynamic_gesture")
    sp.add_argument("--cache", default=None)
    st = sub.add_parser(
        "stream", help="the stage on continuous synthetic tracks: right / wrong / missed / extra"
    )
    st.add_argument("--engine", default="dynamic_gesture")
    st.add_argument("--gallery", default=None, help="default: the one shipped beside the engine")
    st.add_argument("--tracks", type=int, default=20)
    st.add_argument("--per-track", dest="per_track", type=int, default=4)
    st.add_argument("--noise-mm", dest="noise_mm", type=float, default=2.0)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--confusion", action="store_true")
    st.add_argument(
        "--still-tracks", dest="still_tracks", type=int, default=12, help="10 s of a resting hand each"
    )
    st.add_argument("--late-s", dest="late_s", type=float, default=0.6, help="how late a report may come")
    st.add_argument("--reject-distance", dest="reject_distance", type=float, default=None)
    st.add_argument("--stride", type=int, default=3, help="evaluate every N frames")
    st.add_argument("--confirm", type=int, default=2, help="evaluations in a row before a report")
    st.add_argument(
        "--settle-ms", dest="settle_ms", type=float, default=150.0, help="judge only a hand at rest"
    )
    tb = sub.add_parser("table")
    tb.add_argument("sweep")
    args = ap.parse_args(argv)
    if args.cmd == "table":
        print(sweep_table(args.sweep))
        return 0
    if getattr(args, "steps", None) is not None and args.steps < 1:
        raise InputError("--steps must be >= 1")
    return {"train": train_main, "ship": ship_main, "sweep": sweep_main, "stream": stream_main}[args.cmd](
        args
    )
