"""`handstream record --source ... --out rec.db3`: write a RealSense recording from any source (a camera,
a recording, a video with depth, a folder, the generator) through librealsense's software device and
recorder. No camera is needed; the file plays back with `handstream run --source rec.db3`.

From a damaged source (a recording with messages librealsense cannot read, a folder with corrupt files)
the readable frames are copied and one line on stderr says "N of M frames readable"; the exit status is
then 1, because the copy is incomplete (2 is an error with nothing written, 0 a complete copy)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import frames_type
from ..errors import interrupt_status, interrupted_how
from .run import add_source_args, source_from_args, source_inputs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="handstream record", description=__doc__)
    add_source_args(ap)
    ap.add_argument("--out", required=True, help="the recording to write (.db3)")
    ap.add_argument(
        "--max-frames", type=frames_type("--max-frames"), default=None, help="stop after this many frames"
    )
    ap.add_argument(
        "--no-compress",
        action="store_true",
        help="store frames uncompressed (librealsense compresses with lz4 by default): ~3x the file size, "
        "~1/3 of the CPU to play back -- for recordings replayed on small machines",
    )
    args = ap.parse_args(argv)
    from ..outputs import check_outputs
    from ..sources.rs_writer import write_recording

    check_outputs([("--out", args.out)], source_inputs(args))
    source = source_from_args(args)
    try:
        info = write_recording(source, args.out, max_frames=args.max_frames, compress=not args.no_compress)
    except KeyboardInterrupt as exc:
        print(
            f"handstream record: {interrupted_how(exc)}; the recording holds the frames written so far",
            file=sys.stderr,
        )
        return interrupt_status(exc)
    intr = info.intrinsics
    print(
        f"handstream record: {info.frames} frames ({'depth + colour' if info.has_color else 'depth'}, "
        f"{intr.width}x{intr.height}, fx {intr.fx:g}) -> {info.path}"
    )
    if info.unreadable:
        print(
            f"handstream record: incomplete copy: {info.frames} of {info.frames_in} frames readable in "
            f"{source.name}; the unreadable ones are left out of {info.path}",
            file=sys.stderr,
        )
        return 1
    return 0
