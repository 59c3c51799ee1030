"""`handstream calibrate`: watch the user's hand for a few seconds and write their hand size (user.json).

Hold the open hand still, palm to the camera, the whole length in view. Measures with the size_fit stage by
default (hand models of several sizes fitted to the depth after the pose engine, their energies averaged
over the frames: stream/size/measure.py), or with the size engine (`--models size`: the net per frame, a
running median over the frames) on a source, stops after `--seconds` of frames with a hand, prints the hand
length and palm width with the confidence and writes them to `--out`, which `handstream run --user
user.json` reads to fix the hand size.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from ..argtypes import int_type
from ..errors import InputError
from .run import add_source_args, source_from_args, source_inputs


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="handstream calibrate", description=__doc__)
    add_source_args(ap)
    ap.add_argument("--out", required=True, help="the user file to write (JSON: hand_size_mm, confidence)")
    ap.add_argument(
        "--seconds",
        type=int_type("--seconds", 1, 600),
        default=3,
        help="seconds of frames with a hand to calibrate on (default 3)",
    )
    ap.add_argument(
        "--models",
        default="size_fit",
        help="how to measure: size_fit (hand models fitted to the depth after the pose engine; default), "
        "size (the shipped size engine) or size=PATH",
    )
    ap.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    return ap


class _Calibration:
    """A sink that keeps the latest calibrated size and stops the run once enough hand frames were seen."""

    def __init__(self, frames_needed: int) -> None:
        self.frames_needed = frames_needed
        self.hand_frames = 0
        self.size: np.ndarray | None = None
        self.confidence = 0.0

    def write(self, result, frame=None) -> bool:
        size = result.fields.get("hand_size_mm")
        if size is not None:
            self.hand_frames += 1
            self.size = np.asarray(size, np.float64)
            self.confidence = float(result.fields.get("hand_size_confidence", 0.0))
        return self.hand_frames < self.frames_needed

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="handstream: %(message)s")
    from ..outputs import check_outputs, prepare_file
    from ..pipeline import build_pipeline, parse_models, run_stream
    from ..size import save_user

    names = parse_models(args.models)
    if names == ["size_fit"]:
        names = ["pose", "size_fit"]
    elif len(names) != 1 or names[0].split("=")[0] != "size":
        raise InputError(f"--models must be size_fit, size or size=PATH, got {args.models!r}")
    check_outputs([("--out", args.out)], source_inputs(args))
    source = source_from_args(args)
    with build_pipeline(
        backend=args.backend, models=names, overlay=False, smoothing=False, threads=args.threads
    ) as pipeline:
        source.want_color = pipeline.uses_color
        source.open()
        prepare_file(args.out, "--out")
        fps = float(source.fps or 30.0)
        sink = _Calibration(max(1, int(round(args.seconds * fps))))
        for stage in pipeline.stages:
            if (
                stage.kind == "size_fit"
            ):  # measure over every calibration frame, not only its default first second
                stage.frames = sink.frames_needed
        run_stream(source, pipeline, [sink])
    if sink.size is None:
        raise InputError(f"{source.name}: no hand seen; nothing to calibrate (show the hand to the camera)")
    short = sink.hand_frames < sink.frames_needed
    save_user(args.out, sink.size, sink.confidence, sink.hand_frames, source.name)
    print(
        f"hand length {sink.size[0]:.1f} mm, palm width {sink.size[1]:.1f} mm "
        f"(confidence {sink.confidence:.2f}, {sink.hand_frames} frames with a hand"
        f"{', fewer than asked: the source ended' if short else ''})"
    )
    print(f"  user file: {args.out}", file=sys.stderr)
    return 0
