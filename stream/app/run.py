"""`handstream run`: a source through the pipeline into a window, an mp4 and/or a JSON-lines file."""

from __future__ import annotations

import argparse
import logging
import sys

from ..argtypes import FPS_RANGE, fps_type, frames_type, int_type
from ..errors import InputError, interrupt_status, interrupted_how

MAX_SIDE_PX = 4096  # no RealSense streams wider or taller


def add_source_args(ap: argparse.ArgumentParser) -> None:
    """Options that choose and configure a source (shared with `handstream record`). Every option a source
    may not use defaults to None, so open_source can refuse one that was given to a source that ignores it."""
    ap.add_argument(
        "--source",
        required=True,
        help="realsense[:SERIAL] | synthetic[:SEED] | PATH (.bag/.db3, video, folder)",
    )
    ap.add_argument(
        "--width",
        type=int_type("--width", 1, MAX_SIDE_PX),
        default=None,
        help="camera width (realsense, 640)",
    )
    ap.add_argument(
        "--height",
        type=int_type("--height", 1, MAX_SIDE_PX),
        default=None,
        help="camera height (realsense, 480)",
    )
    ap.add_argument(
        "--fps",
        type=fps_type("--fps"),
        default=None,
        help=f"camera / generator / folder frame rate, {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g} (default 30)",
    )
    ap.add_argument(
        "--realtime",
        action="store_true",
        default=None,
        help="play a recording paced by its timestamps (may drop frames) instead of lossless",
    )
    ap.add_argument(
        "--live", action="store_true", default=None, help="pace the synthetic generator like a camera"
    )
    ap.add_argument(
        "--frames",
        type=frames_type("--frames"),
        default=None,
        help="length of a synthetic sequence (default 300)",
    )
    ap.add_argument(
        "--depth", default=None, help="depth paired with a video: a folder of 16-bit PNGs or a depth video"
    )
    ap.add_argument(
        "--intrinsics",
        default=None,
        help="intrinsics JSON/YAML for a video or folder (fx, fy, cx, cy, width, height)",
    )
    ap.add_argument(
        "--camera",
        default=None,
        help="a known camera name for the generator, a folder or a video (e.g. nyu, d435_640x480)",
    )


def source_from_args(args):
    """The source the parsed options describe (open_source refuses options the source does not use)."""
    from ..sources import open_source

    return open_source(
        args.source,
        width=args.width,
        height=args.height,
        fps=args.fps,
        realtime=bool(args.realtime),
        live=args.live,
        frames=args.frames,
        depth=args.depth,
        intrinsics=args.intrinsics,
        camera=args.camera,
    )


class ListStages(argparse.Action):
    """`--list-stages`: print the registered stages and shipped engines and exit, like --help (no --source)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from engines.registry import shipped_engines

        from ..stage_registry import describe_stages

        print("stages (--models NAME, NAME=ENGINE):")
        for line in describe_stages():
            print(f"  {line}")
        print(
            f"shipped engines (--models NAME, or an engine's path): {', '.join(shipped_engines()) or 'none'}"
        )
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="handstream run", description=__doc__)
    add_source_args(ap)
    ap.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    ap.add_argument(
        "--models",
        default="pose",
        help="stages and engines to run, comma-separated: stage names (--list-stages), STAGE=ENGINE, "
        "shipped engine names or engine paths (default: pose)",
    )
    ap.add_argument("--list-stages", action=ListStages, help="list the stages --models can name, and exit")
    ap.add_argument(
        "--gestures",
        default=None,
        help="a gesture gallery (.npz from `handstream gesture enroll`): adds the gesture stage, and every "
        "record gets `gesture` and `gesture_distance` (--models gesture alone uses the built-in gallery)",
    )
    add_max_hands_arg(ap)
    ap.add_argument(
        "--dynamic-gestures",
        default=None,
        help="a gallery of motions (.npz from `handstream gesture enroll --dynamic`): adds the dynamic_gesture "
        "stage; a record gets `dynamic_gesture` on the frame a motion is recognised and "
        "`dynamic_gesture_distance` (--models dynamic_gesture alone uses the built-in motions)",
    )
    ap.add_argument(
        "--user",
        default=None,
        help="a user file from `handstream calibrate`: adds the size stage with the hand size fixed from it "
        "(records get `hand_size_mm` and `hand_size_confidence` 1)",
    )
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    ap.add_argument("--show", action="store_true", help="show a window (q/Esc quits, space pauses)")
    ap.add_argument("--out", default=None, help="write the annotated video here (.mp4)")
    ap.add_argument("--jsonl", default=None, help="write one JSON record per frame here")
    ap.add_argument(
        "--max-frames", type=frames_type("--max-frames"), default=None, help="stop after this many frames"
    )
    ap.add_argument("--no-smoothing", action="store_true", help="report raw engine joints")
    ap.add_argument(
        "--fit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the articulated hand model to the depth after the pose engine (stream/fitting): valid "
        "joints, constant bone lengths, under 1 ms CPU a hand on the 2-core VM; on by default whenever a "
        "pose engine drives the skeleton, --no-fit leaves it out (BENCHMARKS.md, Model fitting)",
    )
    ap.add_argument(
        "--presence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="choose a new track's first hand among the detector's candidates by the presence engine's "
        "P(hand) on their crops (stream/hands/presence.py); on by default with a pose engine, --no-presence "
        "keeps the detector's order",
    )
    ap.add_argument(
        "--centre",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="move the first hand's centre to where the centre engine, reading its crop, puts the hand "
        "(stream/hands/centre.py: a mask running onto the forearm pulls the segmenter's centre off the "
        "hand); on by default with a pose engine, --no-centre keeps the segmenter's centre",
    )
    ap.add_argument("--min-cutoff", type=float, default=None, help="One Euro min cutoff (Hz)")
    ap.add_argument("--beta", type=float, default=None, help="One Euro speed coefficient (1/mm)")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    ap.add_argument("--stats", action="store_true", help="print per-stage p50/p95/p99 ms and latency")
    return ap


def add_max_hands_arg(ap: argparse.ArgumentParser) -> None:
    """`--max-hands 1|2` (shared with `handstream demo`)."""
    ap.add_argument(
        "--max-hands",
        type=int_type("--max-hands", 1, 2),
        default=2,
        help="hands per frame, 1 or 2 (default 2): with 2 each hand is tracked with an id and a left/right "
        "label, and each record lists them in `hands` (the single-hand fields describe the first hand); "
        "1 gives one hand and no `hands` list",
    )


def smoothing_from_args(args):
    if args.no_smoothing:
        return False
    if args.min_cutoff is None and args.beta is None:
        return True
    from ..smoothing import OneEuroConfig

    d = OneEuroConfig()
    return OneEuroConfig(
        min_cutoff_hz=d.min_cutoff_hz if args.min_cutoff is None else args.min_cutoff,
        beta=d.beta if args.beta is None else args.beta,
    )


def source_inputs(args) -> list:
    """Every file or folder a source reads (recording, video, frame folder, paired depth, intrinsics):
    the paths no output may overwrite."""
    return [args.source, args.depth, args.intrinsics]


def make_sinks(args, fps: float | None):
    from ..sinks import JsonlSink, VideoSink, WindowSink

    sinks = []
    try:
        if args.jsonl:
            sinks.append(JsonlSink(args.jsonl))
        if args.out:
            sinks.append(VideoSink(args.out, fps or 30.0))
        if args.show:
            sinks.append(WindowSink())
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="handstream: %(message)s")
    from ..outputs import check_outputs
    from ..pipeline import build_pipeline, run_stream
    from ..sinks import SinkGroup, WindowSink

    check_outputs([("--jsonl", args.jsonl), ("--out", args.out)], source_inputs(args))
    source = source_from_args(args)
    need_overlay = bool(args.out or args.show)
    models, stage_options = args.models, {}
    if args.gestures:
        from pathlib import Path

        from ..pipeline import parse_models

        if not Path(args.gestures).is_file():
            raise InputError(
                f"--gestures {args.gestures}: no such gallery (make one with `handstream gesture enroll`)"
            )
        names = parse_models(models)
        models = names if any(n.split("=")[0] == "gesture" for n in names) else [*names, "gesture"]
        stage_options = {"gesture": {"gallery": args.gestures}}
    if args.dynamic_gestures:
        from pathlib import Path

        from ..pipeline import parse_models

        if not Path(args.dynamic_gestures).is_file():
            raise InputError(
                f"--dynamic-gestures {args.dynamic_gestures}: no such gallery "
                "(make one with `handstream gesture enroll --dynamic`)"
            )
        names = parse_models(models)
        if not any(n.split("=")[0] == "dynamic_gesture" for n in names):
            models = [*names, "dynamic_gesture"]
        stage_options["dynamic_gesture"] = {"gallery": args.dynamic_gestures}
    if args.user:
        from ..pipeline import parse_models
        from ..size import load_user

        user_size = load_user(args.user)  # a bad file is one line before anything starts
        names = parse_models(models)
        models = names if any(n.split("=")[0] == "size" for n in names) else [*names, "size"]
        stage_options = {**stage_options, "size": {"user": user_size}}
    pipeline = build_pipeline(
        backend=args.backend,
        models=models,
        overlay=need_overlay,
        smoothing=smoothing_from_args(args),
        threads=args.threads,
        stage_options=stage_options,
        max_hands=args.max_hands,
        fit=args.fit,
        presence=args.presence,
        centre=args.centre,
    )
    source.want_color = pipeline.uses_color  # no overlay, no RGB engine: a recording decodes depth only
    with pipeline:
        source.open()  # a missing or corrupt input fails here, before any output file is touched
        try:
            sinks = make_sinks(args, source.fps)  # and a recording's own frame rate is known by now
        except BaseException:
            source.close()
            raise
        if not args.quiet:
            be = ", ".join(f"{getattr(e.manifest, 'name', '?')} on {e.backend}" for e in pipeline.engines)
            print(f"handstream run: {source.name} -> {be}", file=sys.stderr)
        try:
            # the file sinks take each result together (signals held), the window on its own: a paused
            # window waits for a key and must stay interruptible
            files = [s for s in sinks if not isinstance(s, WindowSink)]
            grouped = [SinkGroup(files)] + [s for s in sinks if isinstance(s, WindowSink)]
            stats = run_stream(source, pipeline, grouped, max_frames=args.max_frames)
        except KeyboardInterrupt as exc:
            # the sinks are closed: the JSON lines flushed, the mp4 finished with the frames so far
            print(f"handstream run: {interrupted_how(exc)}", file=sys.stderr)
            return interrupt_status(exc)
    print(f"handstream run: {stats.summary()}")
    if args.stats:
        print(stats.table())
    for what, path in (("video", args.out), ("results", args.jsonl)):
        if path:
            print(f"  {what}: {path}")
    return 0
