"""`handstream synth`: write a synthetic dataset (meta.json + npz shards) or a preview contact sheet."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..argtypes import fps_type, frames_type, int_type, seed_type
from ..errors import InputError
from ..frames import KNOWN_CAMERAS, camera
from ..outputs import check_outputs, prepare_file
from .scenes import SCENE_KINDS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handstream synth", description=__doc__)
    p.add_argument("--out", help="dataset directory to write (meta.json + shard_*.npz)")
    p.add_argument("--preview", help="write a contact sheet PNG instead of a dataset")
    p.add_argument(
        "--frames", type=frames_type(), default=None, help="frames to generate (default 12 for a preview)"
    )
    p.add_argument("--seed", type=seed_type(), default=0)
    p.add_argument("--size", choices=("320x240", "640x480"), default=None, help="D435 resolution")
    p.add_argument(
        "--camera", default=None, help=f"camera intrinsics by name: {', '.join(sorted(KNOWN_CAMERAS))}"
    )
    p.add_argument(
        "--sequences", action="store_true", help="smooth sequences of 90 frames instead of independent frames"
    )
    p.add_argument("--fps", type=fps_type(), default=30.0)
    p.add_argument("--no-body", action="store_true")
    p.add_argument("--no-distractors", action="store_true")
    p.add_argument("--no-color", action="store_true", help="skip colour (faster; colour arrays are zeros)")
    p.add_argument("--two-hands", action="store_true")
    p.add_argument(
        "--scene",
        choices=SCENE_KINDS,
        default="frontal",
        help="frontal: a user facing the camera; egocentric: camera over a table, hands at 200-500 mm, often "
        "holding things; desk: camera forward over a desk; mixed: one of the three per sequence or frame",
    )
    p.add_argument(
        "--anthropometry",
        choices=("uniform", "ansur"),
        default="uniform",
        help="subjects' hand sizes: the generator's uniform ranges, or ANSUR II adults (hand-size studies)",
    )
    p.add_argument(
        "--calibration-pose",
        action="store_true",
        help="frontal scenes: the hand open, palm to the camera, held nearly still, as `handstream "
        "calibrate` asks (to measure hand-size calibration)",
    )
    p.add_argument("--shard-size", type=int_type("--shard-size", 1), default=256)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .dataset import write_dataset
    from .scene import HandSynthesizer, SceneConfig

    if not args.out and not args.preview:
        raise InputError("give --out DIR (a dataset) or --preview SHEET.png")
    if args.camera and args.size:
        raise InputError("give --camera or --size, not both")
    check_outputs([("--out", args.out), ("--preview", args.preview)], [])
    if args.preview:
        prepare_file(args.preview, "--preview")
    cam = camera(args.camera) if args.camera else KNOWN_CAMERAS[f"d435_{args.size or '320x240'}"]
    cfg = SceneConfig(
        camera=cam,
        body=not args.no_body,
        distractors=not args.no_distractors,
        color=not args.no_color,
        two_hands=args.two_hands,
        scene_kind=args.scene,
        anthropometry=args.anthropometry,
        calibration_pose=args.calibration_pose,
    )
    if args.preview:
        from .preview import contact_sheet

        n = args.frames or 12
        if n < 1:
            raise InputError(f"--frames must be >= 1, got {n}")
        cfg = replace(cfg, color=True)
        synth = HandSynthesizer(cfg, args.seed)
        if args.sequences:
            samples = list(synth.sequence(n, args.fps))
        else:
            samples = [synth.sample() for _ in range(n)]
        path = contact_sheet(samples, args.preview)
        print(f"wrote {path} ({n} samples)")
    if args.out:
        if args.frames is None:
            raise InputError("--out needs --frames N")
        out = write_dataset(
            args.out,
            args.frames,
            args.seed,
            cfg,
            sequences=args.sequences,
            shard_size=args.shard_size,
            fps=args.fps,
        )
        print(f"wrote {args.frames} {args.scene} frames to {out}")
    return 0
