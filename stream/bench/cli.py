"""`handstream bench`: the pipeline stage by stage, backends and model variants side by side, and peers.

    handstream bench --frames 300 --json runs/bench.json --md runs/bench.md --plots runs/bench \
        --peers mediapipe

Everything runs through the runtime (stream.pipeline, its capture thread, overlay and mp4 sink) on a clip
written once as a RealSense recording and decoded by librealsense on every run (see runtime.py).
Sections, in this order so each one's memory and threads do not disturb the ones before it:
1. the default pose path (preprocess + pose engine + smoothing) on the fixed input: per-stage and
   end-to-end p50/p95/p99, capture/decode, sustained FPS, dropped frames, peak RSS, overhead;
2. with `--two-hands`, the same path on the generator's two-hand scene, alternately with the input above
   (`--rounds` each): two hands' cost against one hand's, end to end, each round's two runs minutes apart
   at most, so that the shared machine's drift falls on both;
3. a replay with overlay + mp4 encoding through run_stream (throughput target), and the same frames from
   memory with the encoder inline (the pipeline's own capacity and the encoder's per-frame cost);
4. backends: the default engine on ONNX Runtime at 1 and 2 threads, PyTorch eager, TensorRT where present;
5. model variants on the same crops, with accuracy where one exists; Net6 engine vs a bare ORT session;
6. peers: MediaPipe Hands in its own venv on the colour stream of the same frames.
The project's runtime targets (end-to-end p50 <= 3 ms, two hands <= 2x one hand, >= 2x faster than MediaPipe's
tracking mode, <= 10 % overhead, >= 60 FPS replay with overlay + mp4, Net6 through our engine within 1.10x of a
bare ORT session) are checked at the end and written with the figures (JSON, markdown, PNG plots).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import statistics
import sys
from pathlib import Path

from ..argtypes import int_type, seed_type
from ..errors import HandstreamError, InputError
from ..outputs import check_outputs, prepare_file, prepare_folder
from . import report as rep
from .machine import machine_info, peak_rss_mb
from .stats import speedup
from .variants import DEFAULT_VARIANTS

DEFAULT_BACKENDS = ("onnxruntime_t1", "onnxruntime_t2", "torch_t1", "torch_t2", "tensorrt")
PEERS = ("mediapipe",)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_SET = "data/synth_test_4242"  # the pose developer's held-out synthetic set (git-ignored)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handstream bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="synthetic", help="synthetic (default) or a recording/video/.npz path")
    p.add_argument("--frames", type=int, default=300, help="timed frames per measurement (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames first (default 30)")
    p.add_argument(
        "--clip", type=int, default=60, help="distinct frames of the synthetic clip, cycled (default 60)"
    )
    p.add_argument("--seed", type=seed_type(), default=0, help="synthetic clip seed")
    p.add_argument(
        "--engine",
        default="pose",
        help="the pose engine (shipped name, .onnx, or a training checkpoint .pt, exported once)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime threads of the default path (default 1)"
    )
    p.add_argument(
        "--max-hands",
        type=int_type("--max-hands", 1, 2),
        default=2,
        help="hands per frame of the default path and the replays, 1 or 2 (default 2, as `handstream run`)",
    )
    p.add_argument("--json", help="write every figure as JSON here")
    p.add_argument("--md", help="write the markdown tables here")
    p.add_argument("--plots", help="write PNG plots into this folder (needs matplotlib)")
    p.add_argument("--peers", default="", help="comma list of peers to run: mediapipe")
    p.add_argument("--mediapipe-venv", help="the peer's venv (default .cache/mediapipe-venv)")
    p.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        help="comma list (onnxruntime_tN, torch, tensorrt) or 'none'",
    )
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help="comma list of model names or NAME=PATH.onnx, or 'none' (a model the default engine "
        "already is, is left out)",
    )
    p.add_argument(
        "--engine-frames", type=int, default=200, help="timed calls per backend/variant (default 200)"
    )
    p.add_argument(
        "--slow-frames", type=int, default=30, help="timed calls for Net-sized variants (default 30)"
    )
    p.add_argument(
        "--accuracy-data",
        help=f"a `handstream synth` dataset for variant accuracy (default {DEFAULT_TEST_SET} if present; 'none')",
    )
    p.add_argument("--accuracy-limit", type=int, default=200, help="frames of it to evaluate (0 = all)")
    p.add_argument("--no-replay", action="store_true", help="skip the overlay + mp4 encoding replays")
    p.add_argument(
        "--fit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the pose path with the hand-model fit after the pose engine (on by default; --no-fit: without)",
    )
    p.add_argument(
        "--two-hands",
        action="store_true",
        help="also time the default path on the generator's two-hand scene, alternately with the input "
        "above, and check two hands' cost against one hand's (target: <= 2x end to end)",
    )
    p.add_argument(
        "--two-hand-clip",
        type=int_type("--two-hand-clip", 2),
        default=300,
        help="distinct frames of the two-hand clip, cycled (default 300: its tracks then live 10 s; a short "
        "clip, cycled, starts them over every cycle and times mostly their first second)",
    )
    p.add_argument(
        "--rounds",
        type=int_type("--rounds", 1, 20),
        default=3,
        help="--two-hands: one-hand and two-hand runs, alternately, this many times each (default 3)",
    )
    p.add_argument(
        "--no-recording",
        action="store_true",
        help="serve frames from memory instead of a RealSense recording (no capture/decode cost)",
    )
    p.add_argument(
        "--uncompressed-recording",
        action="store_true",
        help="write the bench recording raw (`handstream record --no-compress`) instead of lz4, librealsense's "
        "default: a third of the decoding CPU on the capture thread",
    )
    return p


def _csv(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip() and t.strip().lower() != "none"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or args.engine_frames < 1 or args.slow_frames < 1:
        raise InputError("--frames, --engine-frames and --slow-frames must be >= 1, --warmup >= 0")
    peers = _csv(args.peers)
    if set(peers) - set(PEERS):
        raise InputError(f"unknown peer(s) {sorted(set(peers) - set(PEERS))}; known: {', '.join(PEERS)}")
    if args.engine.endswith(".pt"):  # a trained model that is not shipped yet: time exactly that
        from .variants import export_checkpoint

        args.engine = str(export_checkpoint(Path(args.engine).stem, args.engine))
    if args.two_hands and args.max_hands < 2:
        raise InputError("--two-hands times two hands a frame: it needs --max-hands 2")
    _check_outputs(args)  # before the bench runs: a bad --json must not cost a whole bench
    result = run_bench(args, command="handstream bench " + shlex.join(argv), peers=peers)
    md = rep.render_markdown(result)
    if args.json:
        rep.write_json(result, args.json)
    if args.md:
        rep.write_text(args.md, md)
    print(md)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    inputs = [args.source, args.engine, args.accuracy_data, args.mediapipe_venv]
    check_outputs([("--json", args.json), ("--md", args.md), ("--plots", args.plots)], inputs)
    for what, path in (("--json", args.json), ("--md", args.md)):
        if path:
            prepare_file(path, what)
    if args.plots:
        prepare_folder(args.plots, "--plots folder")


def run_bench(args: argparse.Namespace, command: str, peers: list[str]) -> dict:
    """Every section of the benchmark; returns the JSON-ready report."""
    from .runtime import BenchInput, pose_path_run, replay_run
    from .sources import load_clip

    notes: list[str] = []
    clip = load_clip(args.source, args.clip, args.seed)
    need = max(args.frames + args.warmup, args.engine_frames + 10, args.slow_frames + 3)
    inp = BenchInput.prepare(
        clip, need, use_recording=not args.no_recording, compress=not args.uncompressed_recording
    )
    if inp.why_memory:
        notes.append(inp.why_memory)
    report: dict = {
        "schema": rep.SCHEMA,
        "command": command,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "input": clip.describe()
        | {
            "frames": args.frames,
            "warmup": args.warmup,
            "max_hands": args.max_hands,
            "timed_through": inp.describe(),
        },
    }
    samples: dict[str, dict[str, list[float]]] = {}
    accuracy_data = _accuracy_data(args.accuracy_data, notes)

    runs = [("pipeline", False)] + ([("pipeline_memory", True)] if inp.recording is not None else [])
    for key, memory in runs:
        run, info = pose_path_run(
            inp,
            args.engine,
            args.threads,
            args.frames,
            args.warmup,
            memory,
            max_hands=args.max_hands,
            fit=args.fit,
        )
        report[key] = run.to_dict() | info
        samples[key] = run.samples_ms | run.off_path_ms
    if args.two_hands:
        report["two_hands"] = _two_hands(args, inp)
    if not args.no_replay:
        runs = [("replay", False, True)]
        if inp.recording is not None:
            runs.append(("replay_memory", True, False))
        for key, memory, threaded in runs:
            run, info = replay_run(
                inp,
                args.engine,
                args.threads,
                args.frames,
                memory=memory,
                threaded=threaded,
                max_hands=args.max_hands,
                fit=args.fit,
            )
            report[key] = run.to_dict() | info
            samples[key] = run.samples_ms | run.off_path_ms

    from .pipeline_timing import crops_from_frames

    size, cube_mm = _engine_crop(args.engine)
    crops = crops_from_frames(clip.frames, size, cube_mm)
    report["input"]["engine_crops"] = int(len(crops))

    backends = _csv(args.backends)
    if backends:
        from .engine_timing import backend_entries

        report["backends"] = backend_entries(args.engine, crops, args.engine_frames, 10, backends)
        e2e = (report.get("pipeline") or {}).get("end_to_end_ms", {}).get("p50")
        default_t = f"onnxruntime_t{args.threads}"
        if e2e is not None and default_t in report["backends"]:
            report["backends"][default_t]["end_to_end_ms"] = {"p50": e2e}
            report["backends"][default_t]["note"] = "the default path's backend"
    variants = _csv(args.variants)
    if variants:
        report["variants"] = _variants(args, variants, crops, inp, accuracy_data, notes)
    if peers:
        report["peers"] = _peers(args, clip, notes)
    report["targets"] = check_targets(report)
    if args.plots:
        report["plots"] = _plots(args.plots, samples, report.get("variants") or {}, notes)
    report["notes"] = notes + [f"peak RSS of the whole bench process: {peak_rss_mb():.0f} MB"]
    for section in ("backends", "variants"):  # raw samples went into the plots; keep the JSON readable
        for entry in (report.get(section) or {}).values():
            entry.pop("samples_ms", None)
    return report


def _two_hands(args: argparse.Namespace, inp) -> dict:
    """Two hands against one: the default path on the input above (one hand) and on the generator's
    two-hand scene, alternately, `--rounds` times each, through the same kind of input (a recording, or
    frames from memory). Alternating puts the shared machine's drift on both; each round's ratio compares
    runs made minutes apart at most."""
    from .runtime import BenchInput, pose_path_run
    from .sources import synthetic_clip

    clip2 = synthetic_clip(args.two_hand_clip, args.seed, two_hands=True)
    memory = inp.recording is None
    inp2 = BenchInput.prepare(
        clip2,
        args.frames + args.warmup,
        use_recording=not memory,
        compress=not args.uncompressed_recording,
    )
    rounds = []
    for _ in range(args.rounds):
        row = {}
        for key, source in (("one_hand", inp), ("two_hands", inp2)):
            run, _ = pose_path_run(
                source, args.engine, args.threads, args.frames, args.warmup, memory, max_hands=2, fit=args.fit
            )
            d = run.to_dict()
            row[key] = {
                "end_to_end_ms": d["end_to_end_ms"],
                "stages_p50_ms": {k: v["p50"] for k, v in d["stages_ms"].items()},
                "hand_frames": d.get("hand_frames"),
            }
        one, two = row["one_hand"]["end_to_end_ms"], row["two_hands"]["end_to_end_ms"]
        row["ratio_p50"] = two["p50"] / one["p50"]
        row["ratio_mean"] = two["mean"] / one["mean"]
        rounds.append(row)
    ratios = [r["ratio_p50"] for r in rounds]
    return {
        "clip": clip2.describe(),
        "timed_through": inp2.describe(memory),
        "rounds": rounds,
        "ratio_p50_median": statistics.median(ratios),
        "ratio_p50_range": [min(ratios), max(ratios)],
    }


def _accuracy_data(given: str | None, notes: list[str]) -> str | None:
    """--accuracy-data, else the held-out synthetic test set when it is here; 'none' turns it off."""
    if given and given.lower() == "none":
        return None
    if given:
        if not (Path(given) / "meta.json").is_file():
            raise InputError(f"--accuracy-data {given}: not a `handstream synth` dataset (no meta.json)")
        return given
    default = REPO_ROOT / DEFAULT_TEST_SET
    if (default / "meta.json").is_file():
        return str(default)
    notes.append(f"no {DEFAULT_TEST_SET} here: variant accuracy is what each manifest records, if anything")
    return None


def _engine_crop(engine_ref: str) -> tuple[int, float]:
    """Crop size and cube of the default engine (what the preprocessing cuts for it)."""
    import engines

    m = engines.load_manifest(engines.resolve_engine_path(engine_ref))
    return int(m.crop_size or 96), float(m.preprocessing.get("cube_mm", 250.0))


def _variants(args, variants: list[str], crops, inp, accuracy_data, notes: list[str]) -> dict:
    from .engine_timing import engine_vs_bare
    from .runtime import pose_path_run
    from .variants import variant_entries

    out: dict = {}
    for spec in variants:
        slow = spec.split("=")[0].strip().lower().replace("-", "") in SLOW_MODELS
        n = args.slow_frames if slow else args.engine_frames
        out |= variant_entries(
            [spec],
            args.engine,
            crops,
            n,
            3 if slow else 10,
            args.threads,
            accuracy_data,
            args.accuracy_limit,
        )
        name = spec.split("=")[0].strip()
        entry = out.get(name) or {}
        if "engine" in entry:  # the variant in the default pose path, on the same frames
            try:
                run, _ = pose_path_run(inp, entry["engine"], args.threads, n, 3 if slow else 10, fit=args.fit)
                entry["end_to_end_ms"] = run.summary.end_to_end_ms.to_dict()
            except HandstreamError as exc:
                notes.append(f"variant {name}: pose path not timed ({str(exc).splitlines()[0]})")
        if name.lower() in ("net6", "depthnet") and "engine" in entry:
            cmp = engine_vs_bare(entry["engine"], crops, n, 3, args.threads)
            entry["engine_vs_bare_ort"] = cmp
            notes.append(
                f"{name} through our engine vs a bare ONNX Runtime session (interleaved, {args.threads} thread): "
                f"p50 {cmp['engine_ms']['p50']:.2f} vs {cmp['bare_session_ms']['p50']:.2f} ms "
                f"(x{cmp['ratio_p50']:.3f})"
            )
    return out


SLOW_MODELS = {"net1", "net2", "net3", "net4", "net5", "net6", "net7", "net8", "net9", "depthnet"}


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _peers(args, clip, notes: list[str]) -> dict:
    from .peers import CONFIGS, PeerUnavailable, run_mediapipe

    colour = [f.color_bgr for f in clip.frames if getattr(f, "color_bgr", None) is not None]
    try:
        if not colour:
            raise PeerUnavailable("the source has no colour stream")
        out = run_mediapipe(colour, args.frames, args.warmup, venv=args.mediapipe_venv)
    except (PeerUnavailable, HandstreamError) as exc:
        notes.append(f"MediaPipe not run: {exc}")
        return {c: {"skipped": str(exc)} for c in CONFIGS}
    peers = {}
    for name, p in out["peers"].items():
        p = dict(p)
        p.pop("ms", None)
        peers[name] = p
    notes.append(
        f"MediaPipe {out['versions']['mediapipe']} ({out['timing']}); input {out['input']}, "
        f"{out['input_frames']} distinct frames"
    )
    return peers


def check_targets(report: dict) -> list[dict]:
    """The runtime targets against this run's figures (a target whose figure is missing is left out)."""
    out = []
    e2e = _get(report, "pipeline", "end_to_end_ms", "p50")
    if e2e is not None:
        t = _target("default pose path end-to-end p50", "<= 3 ms", f"{e2e:.2f} ms", e2e <= 3.0)
        out.append(t | {"note": _largest_stage(report["pipeline"])})
    mem = _get(report, "pipeline_memory", "end_to_end_ms", "p50")
    if mem is not None:
        name = "the same, frames from memory (no decoding thread)"
        t = _target(name, "<= 3 ms", f"{mem:.2f} ms", mem <= 3.0)
        out.append(t | {"note": _largest_stage(report["pipeline_memory"])})
    two = report.get("two_hands")
    if two:
        lo, hi = two["ratio_p50_range"]
        med = two["ratio_p50_median"]
        t = _target("two hands vs one hand, end-to-end p50", "<= 2x", f"{med:.2f}x", med <= 2.0)
        out.append(t | {"note": f"median of {len(two['rounds'])} alternating rounds ({lo:.2f}-{hi:.2f}x)"})
    mp = _get(report, "peers", "mediapipe_tracking_c1", "p50")
    if e2e is not None and mp is not None:
        s = speedup(mp, e2e)
        out.append(_target("vs MediaPipe tracking, complexity 1", ">= 2x faster", f"{s:.1f}x", s >= 2.0))
    frac = _get(report, "pipeline", "overhead_fraction")
    if isinstance(frac, float) and math.isfinite(frac):
        out.append(
            _target("pipeline overhead (p50, of stage sum)", "<= 10 %", f"{100 * frac:.1f} %", frac <= 0.10)
        )
    fps = _get(report, "replay", "fps")
    if fps is not None:
        t = _target("replay with overlay + mp4 encoding", ">= 60 FPS", f"{fps:.0f} FPS", fps >= 60.0)
        t["note"] = _replay_bound(report)
        out.append(t)
    for name in ("net6", "depthnet"):
        r = _get(report, "variants", name, "engine_vs_bare_ort", "ratio_p50")
        if r is not None:
            out.append(
                _target(f"{name} via our engine vs bare ORT session", "<= 1.10x", f"{r:.3f}x", r <= 1.10)
            )
    return out


def _largest_stage(run: dict) -> str:
    """Where a path's median time goes: its largest stage, and its own CPU time beside the wall time."""
    stages = {k: v.get("p50", 0.0) for k, v in (run.get("stages_ms") or {}).items()}
    if not stages:
        return ""
    name = max(stages, key=stages.get)
    total = sum(stages.values()) or 1.0
    txt = f"largest stage {name} p50 {stages[name]:.2f} ms ({100 * stages[name] / total:.0f} %)"
    cpu = _get(run, "end_to_end_cpu_ms", "p50")
    return txt + (f"; CPU time of the pipeline thread p50 {cpu:.2f} ms" if cpu is not None else "")


def _replay_bound(report: dict) -> str:
    """What bounds the replay rate: the source's decode rate alone vs the pipeline + sink's alone."""
    decode = _get(report, "replay", "off_path_ms", "capture/decode (capture thread)", "mean")
    capacity = _get(report, "replay_memory", "fps")
    parts = []
    if decode:
        parts.append(f"decode alone {1000.0 / decode:.0f} FPS (mean {decode:.1f} ms/frame)")
    if capacity:
        parts.append(f"pipeline + inline encoding from memory {capacity:.0f} FPS")
    return "; ".join(parts)


def _target(name: str, target: str, measured: str, met: bool) -> dict:
    return {"name": name, "target": target, "measured": measured, "met": bool(met)}


def _plots(folder: str, samples: dict, variants: dict, notes: list[str]) -> list[str]:
    from .plots import PlotSkipped, latency_vs_accuracy, stage_histograms

    made = []
    for name, s in samples.items():
        try:
            made.append(str(stage_histograms(s, Path(folder) / f"{name}_stages.png", title=name)))
        except PlotSkipped as exc:
            notes.append(f"plot {name} skipped: {exc}")
    pts = {
        k: (v["infer_ms"]["p50"], v["accuracy"]["mean_error_mm"])
        for k, v in variants.items()
        if "infer_ms" in v and "mean_error_mm" in (v.get("accuracy") or {})
    }
    try:
        made.append(str(latency_vs_accuracy(pts, Path(folder) / "variants_latency_accuracy.png")))
    except PlotSkipped as exc:
        notes.append(f"latency-vs-accuracy plot skipped: {exc}")
    return made
