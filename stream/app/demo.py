"""`handstream demo`: no camera, no download, no display. A built-in synthetic recording (generated
deterministically on the fly) goes through the shipped default engines; an annotated video and a
JSON-lines file are written, and a one-line summary is printed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..argtypes import frames_type, seed_type
from .run import add_max_hands_arg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="handstream demo", description=__doc__)
    ap.add_argument(
        "--out-dir", default="runs/demo", help="where to write demo.mp4 and demo.jsonl (runs/ is git-ignored)"
    )
    ap.add_argument(
        "--frames", type=frames_type(), default=90, help="length of the built-in sequence (default 90 = 3 s)"
    )
    ap.add_argument("--seed", type=seed_type(), default=7, help="which built-in sequence")
    ap.add_argument("--backend", default="onnxruntime", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    add_max_hands_arg(ap)
    ap.add_argument(
        "--fit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the articulated hand model to the depth after the pose engine (stream/fitting): valid "
        "joints, constant bone lengths, under 1 ms CPU a hand on the 2-core VM; on by default, --no-fit "
        "leaves it out (BENCHMARKS.md, Model fitting)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="handstream: %(message)s")

    from ..pipeline import build_pipeline, run_stream
    from ..sinks import JsonlSink, SinkGroup, VideoSink
    from ..sources.synthetic import SyntheticSource

    out = Path(args.out_dir)
    source = SyntheticSource(n_frames=args.frames, fps=30.0, seed=args.seed, cam="d435_320x240")
    # the gesture stage names the built-in gestures from the gallery shipped beside its engine
    with build_pipeline(
        backend=args.backend, models="pose,gesture", overlay=True, max_hands=args.max_hands, fit=args.fit
    ) as pipeline:
        jsonl = JsonlSink(out / "demo.jsonl")
        try:
            video = VideoSink(out / "demo.mp4", fps=30.0)
        except BaseException:
            jsonl.close()
            raise
        stats = run_stream(source, pipeline, [SinkGroup([jsonl, video])])
        engine = pipeline.engines[0]
        note = getattr(engine.manifest, "version", "")
    print(f"handstream demo: {stats.summary()}")
    print(f"  engine: {engine.describe()}{f' (version {note})' if note else ''}")
    print(f"  video:   {out / 'demo.mp4'}")
    print(f"  results: {out / 'demo.jsonl'}")
    return 0
