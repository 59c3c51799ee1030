"""The hand-size recipe (`handstream train size ...`, seed 002): data, the three kinds of model, the
subject-grouped cross-validation, the shipped engine and the BENCHMARKS.md table. Defaults: configs/size.yaml.

    handstream train size data                       # generate the study's frames (resumable, cached)
    handstream train size train model=multi          # train on all training subjects, test on held-out ones
    handstream train size train model=one            # one-task baselines (a net per quantity)
    handstream train size train model=linear         # and model=skeleton: the feature baselines
    handstream train size cv model=multi             # subject-grouped 5-fold CV on the training subjects
    handstream train size ship --checkpoint runs/size/multi/size.pt
    handstream train size table                      # the table from runs/size/*.json
    handstream train size evidence                   # size_fit's evidence on training subjects (resumable)
    handstream train size readout                    # CV of the learned reading of it, then the shipped file
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stream.errors import InputError

from ..recipes import register, single_process
from ..recipes.options import parse_recipe_args

MODELS = ("multi", "one", "linear", "skeleton", "mean")
CALIBRATION_FRAMES = 30  # 1 s at 30 fps


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handstream train size",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("cmd", choices=("data", "train", "cv", "ship", "table", "evidence", "readout"))
    p.add_argument("--data-dir", type=Path, help="the study's cached frames")
    p.add_argument("--runs", type=Path, help="checkpoints and result JSON files")
    p.add_argument("--out", type=Path, help="where `ship` exports the engine")
    p.add_argument("--checkpoint", type=Path, help="`ship`: the multi-task checkpoint to export")
    for name in ("train_frames", "test_frames", "test_sequences", "static_sequences", "steps", "batch_size"):
        p.add_argument("--" + name.replace("_", "-"), type=int)
    p.add_argument("--model", choices=MODELS)
    p.add_argument("--width-mult", type=float)
    p.add_argument("--input-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--minutes", type=float)
    p.add_argument("--folds", type=int)
    p.add_argument("--cv-steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--pretrained", help="a local torchvision MobileNetV2 state dict (ImageNet weights)")
    p.add_argument("--init", help="`train`: continue from this checkpoint (a second cosine cycle)")
    p.add_argument("--evidence-dir", type=Path, help="`evidence` / `readout`: the measured training subjects")
    p.add_argument(
        "--evidence-shard", help="`evidence`: i/n, measure every n-th chunk from the i-th (n processes)"
    )
    for name in (
        "evidence_frames",
        "evidence_sequences",
        "evidence_extra_frames",
        "readout_hidden",
        "readout_epochs",
        "readout_members",
    ):
        p.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("readout_ridge", "readout_weight_decay", "readout_track_weight"):
        p.add_argument("--" + name.replace("_", "-"), type=float)
    return p


def _shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n): this process measures every n-th evidence chunk from the i-th."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise InputError(f"evidence_shard must read i/n (this process's share of n), got {text!r}") from None
    return i, n


def _load_parts(a, names=("train", "test", "seq", "static")) -> dict:
    from .data import SizeArrays

    parts = {}
    for name in names:
        p = a.data_dir / f"{name}.npz"
        if not p.is_file():
            raise InputError(f"{p} is missing: run `handstream train size data` first")
        parts[name] = SizeArrays.load(p)
    return parts


def _cfg(a, quantities, steps):
    from .train import SizeTrainConfig

    return SizeTrainConfig(
        quantities=tuple(quantities),
        width_mult=a.width_mult,
        input_size=a.input_size,
        steps=int(steps),
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        seed=a.seed,
        threads=a.threads,
        pretrained=a.pretrained,
        init=getattr(a, "init", None),
        max_minutes=a.minutes,
    )


def fit_predictor(a, model: str, train, steps: int, log=print):
    """(predict(arrays) -> (N, 2) mm, info, saved-model objects) of one kind of model fitted on `train`."""
    from .train import LinearSize, SkeletonSize, config_dict, predict, train_sizenet

    if model == "mean":  # the reference: every frame gets the training subjects' mean size
        mean = train.size_mm[train.found].mean(0).astype(np.float64)
        return (lambda arrays: np.where(arrays.found[:, None], mean, np.nan)), {"mean_mm": mean.tolist()}, {}
    if model == "linear":
        m = LinearSize.fit(train)
        return m.predict, {"coef": m.coef.tolist()}, {}
    if model == "skeleton":
        m = SkeletonSize.fit(train)
        return m.predict, {"width_ratio": m.width_ratio}, {}
    groups = [("length", "width")] if model == "multi" else [("length",), ("width",)]
    nets, infos = {}, []
    for q in groups:
        cfg = _cfg(a, q, steps)
        net, info = train_sizenet(cfg, train, log=log)
        info["config"] = config_dict(cfg)
        nets["+".join(q)] = net
        infos.append(info)

    def pred(arrays):
        return np.concatenate([predict(n, arrays) for n in nets.values()], axis=1)

    return pred, {"nets": infos, "train_s": sum(i["train_s"] for i in infos)}, nets


def study_metrics(pred_fn, parts: dict) -> dict:
    """Held-out subjects: per-frame MAE / MAPE, calibrated MAE after 1 s of each moving sequence, and the
    spread of the predictions within static sequences (the seed's temporal stability)."""
    from stream.size.metrics import calibrated_errors, sequence_spread

    from .train import frame_metrics

    out = {"test": frame_metrics(pred_fn(parts["test"]), parts["test"])}
    seq = parts["seq"]
    ps = pred_fn(seq)
    out["seq"] = frame_metrics(ps, seq)
    cal = calibrated_errors(ps, seq.size_mm, seq.sequence, CALIBRATION_FRAMES)
    out["calibrated_length_mae_mm"] = float(cal[:, 0].mean())
    out["calibrated_width_mae_mm"] = float(cal[:, 1].mean())
    st = parts["static"]
    pst = pred_fn(st)
    ok = st.found & np.isfinite(pst).all(1)
    out["static"] = sequence_spread(pst[ok], st.sequence[ok])
    out["static"]["frames"] = int(ok.sum())
    return out


def train_main(a) -> int:
    import torch

    train = _load_parts(a, ("train",))["train"]  # the held-out parts are read after training
    out = a.runs / a.model
    out.mkdir(parents=True, exist_ok=True)
    pred, info, nets = fit_predictor(a, a.model, train, a.steps)
    parts = _load_parts(a, ("test", "seq", "static"))
    res = {"model": a.model, "fit": info, **study_metrics(pred, parts)}
    for name, net in nets.items():
        torch.save(
            {
                "state_dict": net.state_dict(),
                "quantities": list(net.quantities),
                "width_mult": a.width_mult,
                "input_size": a.input_size,
                "mean_mm": net.mean_mm.tolist(),
                "sd_mm": net.sd_mm.tolist(),
                "results": res,
            },
            out / f"size_{name.replace('+', '_')}.pt",
        )
    (a.runs / f"{a.model}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("test", "calibrated_length_mae_mm", "static")}))
    return 0


def cv_main(a) -> int:
    from stream.size.metrics import grouped_folds

    from .train import frame_metrics

    train = _load_parts(a, ("train",))["train"]
    folds = grouped_folds(train.subject, a.folds, a.seed)
    rows = []
    t0 = time.perf_counter()
    for k, (tr, te) in enumerate(folds):
        if set(train.subject[tr]) & set(train.subject[te]):
            raise AssertionError("a subject on both sides of a fold")
        pred, info, _ = fit_predictor(a, a.model, train.take(tr), a.cv_steps, log=lambda *_: None)
        m = frame_metrics(pred(train.take(te)), train.take(te))
        m["steps"] = [n["steps"] for n in info.get("nets", [])]  # fewer than cv_steps when `minutes` ran out
        rows.append(m)
        print(
            f"fold {k}: length MAE {m['length_mae_mm']:.2f} mm, width MAE {m['width_mae_mm']:.2f} mm",
            flush=True,
        )
    keys = ("length_mae_mm", "width_mae_mm", "length_mape", "width_mape")
    res = {
        "model": a.model,
        "folds": rows,
        "steps_per_fold": a.cv_steps if a.model in ("multi", "one") else 0,
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
        "sd": {k: float(np.std([r[k] for r in rows], ddof=1)) for k in keys},
        "seconds": time.perf_counter() - t0,
    }
    a.runs.mkdir(parents=True, exist_ok=True)
    (a.runs / f"cv_{a.model}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({"mean": res["mean"], "sd": res["sd"]}))
    return 0


def ship_main(a) -> int:
    import torch

    from engines.export import export_onnx

    from .models import SizeNet

    if a.checkpoint is None:
        raise InputError("ship needs --checkpoint runs/size/multi/size_length_width.pt")
    try:
        ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot read checkpoint {a.checkpoint}: {exc}") from None
    net = SizeNet(
        tuple(ck["quantities"]), tuple(ck["mean_mm"]), tuple(ck["sd_mm"]), ck["width_mult"], ck["input_size"]
    )
    net.load_state_dict(ck["state_dict"])
    net.eval()
    if tuple(ck["quantities"]) != ("length", "width"):
        raise InputError("the size engine is the multi-task net (length, width)")
    test = _load_parts(a, ("test",))["test"]
    idx = np.flatnonzero(test.found)[:16]
    parity = test.crop[idx][:, None].astype(np.float32)
    r = ck["results"]
    size = int(test.crop.shape[-1])
    export_onnx(
        net,
        a.out,
        "size",
        (1, 1, size, size),
        {
            "version": "0.1.0",
            "task": "hand_size",
            "preprocessing": {
                "input": "depth",
                "crop_size": size,
                "cube_mm": 300.0,
                "depth_normalization": "com_cube_clip_-1_1",
                "outputs": "hand length (wrist crease to middle fingertip), palm width across the MCPs; mm",
            },
            "training": {
                "model": "mobilenet_v2_size",
                "model_kwargs": {"width_mult": ck["width_mult"], "input_size": ck["input_size"]},
                "config": r["fit"]["nets"][0]["config"],
                "steps": r["fit"]["nets"][0]["steps"],
                "train_s": r["fit"]["train_s"],
                "data": "ANSUR II subjects of the generator, 600 training / 100 held-out (train/size/data.py)",
            },
            "metrics": {
                "held_out": r["test"],
                "calibrated_length_mae_mm": r["calibrated_length_mae_mm"],
                "calibrated_width_mae_mm": r["calibrated_width_mae_mm"],
                "static": r["static"],
            },
        },
        parity_inputs=parity,
        input_names=("crop",),
        output_names=("size_mm",),
    )
    print(f"engine: {a.out / 'size.onnx'}")
    return 0


def readout_main(a) -> int:
    """Subject-grouped CV of the learned reading against the posterior mean on the training subjects'
    evidence, then the reading fitted on all of it, written beside the engines with how it was made."""
    from stream.size.measure import SizeFitConfig

    from .readout import cross_validate, fit_readout, load_examples

    cfg = SizeFitConfig()
    ex = load_examples(a.evidence_dir, cfg)
    kw = dict(hidden=a.readout_hidden, ridge=a.readout_ridge, weight_decay=a.readout_weight_decay,
              epochs=a.readout_epochs, seed=a.seed, members=a.readout_members,
              track_weight=a.readout_track_weight)  # fmt: skip
    cv = cross_validate(ex, cfg, folds=a.folds, **kw)
    a.runs.mkdir(parents=True, exist_ok=True)
    (a.runs / "readout_cv.json").write_text(json.dumps({"fit": kw, **cv}, indent=1))
    pm, ro = cv["posterior_mean"], cv["readout"]
    opts = " ".join(f"readout_{k}={v}" for k, v in kw.items() if k != "seed")
    made = (
        f"handstream train size readout {opts} seed={a.seed} (train/size/readout.py), on the evidence of "
        f"{pm['frames']} frames and {pm['sequences']} 30-frame sequences of {len(np.unique(ex.subject))} "
        f"training subjects "
        f"(`handstream train size evidence`); {a.folds}-fold subject-grouped CV "
        f"length / width MAE per frame {ro['frame_mae_mm'][0]:.2f} / {ro['frame_mae_mm'][1]:.2f} mm "
        f"(posterior mean {pm['frame_mae_mm'][0]:.2f} / {pm['frame_mae_mm'][1]:.2f}), after 1 s "
        f"{ro['after_1s_mae_mm'][0]:.2f} / {ro['after_1s_mae_mm'][1]:.2f} mm (posterior mean "
        f"{pm['after_1s_mae_mm'][0]:.2f} / {pm['after_1s_mae_mm'][1]:.2f})"
    )
    readout = fit_readout(ex, cfg, made=made, **kw)
    a.out.mkdir(parents=True, exist_ok=True)
    path = readout.save(a.out / "size_readout.json")
    print(json.dumps({"posterior_mean": pm, "readout": ro}))
    print(f"readout: {path}")
    return 0


def _fmt(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"


def size_table(runs: Path) -> str:
    """The BENCHMARKS.md table from runs/size/{MODEL}.json and cv_{MODEL}.json."""
    names = {"multi": "multi-task MobileNetV2", "one": "one-task MobileNetV2 (x2)", "linear": "linear (features)",
             "skeleton": "skeleton-derived", "mean": "training mean (no image; reference)"}  # fmt: skip
    lines = [
        "| model | length MAE mm | width MAE mm | length MAPE % | width MAPE % | length MAE after 1 s mm "
        "| static sd length / width mm | 5-fold CV length MAE mm | 5-fold CV width MAE mm | training |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, label in names.items():
        p = runs / f"{m}.json"
        if not p.is_file():
            continue
        r = json.loads(p.read_text())
        t = r["test"]
        cvp = runs / f"cv_{m}.json"
        cv = json.loads(cvp.read_text()) if cvp.is_file() else None
        cvl = f"{cv['mean']['length_mae_mm']:.2f} ± {cv['sd']['length_mae_mm']:.2f}" if cv else "-"
        cvw = f"{cv['mean']['width_mae_mm']:.2f} ± {cv['sd']['width_mae_mm']:.2f}" if cv else "-"
        sd = r["static"]["sd_mm"]
        ts = r["fit"].get("train_s")
        lines.append(
            f"| {label} | {_fmt(t['length_mae_mm'])} | {_fmt(t['width_mae_mm'])} | {_fmt(t['length_mape'])} | "
            f"{_fmt(t['width_mape'])} | {_fmt(r['calibrated_length_mae_mm'])} | {_fmt(sd[0])} / {_fmt(sd[1])} | "
            f"{cvl} | {cvw} | {'-' if ts is None else f'{ts / 60:.1f} min'} |"
        )
    return "\n".join(lines)


@register("size", "hand size (seed 002): data, multi-task / one-task / linear / skeleton models, CV, engine")
def main(argv: list[str] | None = None) -> int:
    a = parse_recipe_args(
        _parser(), list(argv or []), "size", repo_paths=("data_dir", "runs", "out", "evidence_dir")
    )
    single_process("size", "CPU-sized study: one process")
    if a.cmd == "data":
        from .data import build_study

        paths = build_study(a.data_dir, a.train_frames, a.test_frames, a.test_sequences, a.static_sequences,
                            seed=a.seed)  # fmt: skip
        print(" ".join(str(p) for p in paths.values()))
        return 0
    if a.cmd == "table":
        print(size_table(a.runs))
        return 0
    if a.cmd == "evidence":
        from .readout import build_evidence

        build_evidence(
            a.evidence_dir,
            a.evidence_frames,
            a.evidence_sequences,
            seed=a.seed,
            extra_frames=a.evidence_extra_frames,
            shard=_shard(a.evidence_shard),
        )
        return 0
    if a.cmd == "readout":
        return readout_main(a)
    if a.steps < 1 or a.cv_steps < 1 or a.folds < 2:
        raise InputError("steps and cv_steps must be >= 1, folds >= 2")
    return {"train": train_main, "cv": cv_main, "ship": ship_main}[a.cmd](a)
