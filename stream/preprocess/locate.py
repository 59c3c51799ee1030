"""`handstream locate FILES...`: find the hand in depth frames a user points at, one JSON line per frame.

    {"file", "hand", "confidence", "com_uvd", "com_xyz_mm", "bbox", "reason"}

`--crops DIR` also writes, per frame, the normalized cube crop (`<stem>_crop.png`, depth -1..1 -> 0..255)
and an overlay of the whole frame (`<stem>_overlay.png`: mask, bounding box, centre, cube window).
A file that cannot be read gives a JSON line with "error" (and exit status 2 at the end), the other files
are still processed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..argtypes import int_type
from ..depth_io import FORMATS, guess_format, read_depth
from ..errors import InputError
from ..frames import KNOWN_CAMERAS, CameraIntrinsics
from ..outputs import check_outputs, prepare_folder, write_png
from .cube import crop_cube, cube_window
from .segment import HandSegmenter, Segmentation, SegmenterConfig

MIN_CROP_PX, MAX_CROP_PX = 8, 1024  # a crop is size x size float32: 4 MB at 1024, tens of GB at 100 000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handstream locate", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", metavar="FILE", help="depth frames (.png NYU or 16-bit, .npz)")
    p.add_argument("--format", choices=FORMATS, help="depth file format (default: guessed per file)")
    p.add_argument(
        "--depth-unit-mm", type=float, default=1.0, help="mm per raw count (png16/npz), e.g. 0.125"
    )
    p.add_argument("--intrinsics", metavar="FX,FY,CX,CY", help="camera intrinsics in pixels")
    p.add_argument("--camera", choices=sorted(KNOWN_CAMERAS), help="a known camera instead of --intrinsics")
    p.add_argument("--cube-mm", type=float, default=250.0, help="cube edge in mm (NYU convention: 300)")
    p.add_argument(
        "--size",
        type=int_type("--size", MIN_CROP_PX, MAX_CROP_PX),
        default=128,
        help=f"crop size in pixels ({MIN_CROP_PX}-{MAX_CROP_PX})",
    )
    p.add_argument("--max-depth-mm", type=float, default=SegmenterConfig.max_depth_mm, help="farthest hand")
    p.add_argument("--crops", metavar="DIR", help="write normalized crops and overlays here")
    return p


def _intrinsics(args, fmt: str, shape: tuple[int, int]) -> CameraIntrinsics:
    h, w = shape
    if args.intrinsics:
        try:
            fx, fy, cx, cy = (float(x) for x in args.intrinsics.split(","))
        except ValueError:
            raise InputError(f"--intrinsics must be FX,FY,CX,CY, got {args.intrinsics!r}") from None
        return CameraIntrinsics(fx, fy, cx, cy, w, h, args.depth_unit_mm, "cli")
    name = args.camera or ("nyu" if fmt == "nyu" else None)
    if name is None:
        raise InputError("no camera intrinsics: pass --intrinsics FX,FY,CX,CY or --camera NAME")
    intr = KNOWN_CAMERAS[name]
    return intr if intr.shape == (h, w) else intr.scaled(w, h)


def _record(path: str, seg: Segmentation) -> dict:
    rec: dict = {"file": path, "hand": seg.found}
    if seg.found:
        h = seg.hands[0]
        rec.update(
            confidence=round(h.confidence, 4),
            com_uvd=[round(float(x), 2) for x in h.com_uvd],
            com_xyz_mm=[round(float(x), 2) for x in h.com_xyz_mm],
            bbox=[int(x) for x in h.bbox_xywh],
            hands=len(seg.hands),
        )
    else:
        rec.update(confidence=0.0, com_uvd=None, com_xyz_mm=None, bbox=None, reason=seg.reason)
    return rec


def _overlay(depth: np.ndarray, seg: Segmentation, intr: CameraIntrinsics, cube_mm: float) -> np.ndarray:
    d = np.nan_to_num(depth.astype(np.float32), nan=0.0)
    valid = d > 0
    lo, hi = np.percentile(d[valid], (1, 99)) if valid.any() else (0.0, 1.0)
    gray = np.clip((d - lo) / max(hi - lo, 1.0) * 255, 0, 255).astype(np.uint8)
    gray[~valid] = 0
    img = cv2.applyColorMap(255 - gray, cv2.COLORMAP_BONE)
    colors = [(0, 0, 255), (0, 200, 0)]
    for i, h in enumerate(seg.hands):
        col = colors[i % 2]
        img[h.mask] = (0.5 * img[h.mask] + 0.5 * np.array(col)).astype(np.uint8)
        x, y, w, hh = h.bbox_xywh
        cv2.rectangle(img, (x, y), (x + w - 1, y + hh - 1), col, 1)
        u0, v0, u1, v1 = cube_window(h.com_xyz_mm, intr, cube_mm)
        cv2.rectangle(img, (round(u0), round(v0)), (round(u1), round(v1)), (255, 200, 0), 1)
        cv2.circle(img, (round(h.com_uvd[0]), round(h.com_uvd[1])), 4, (0, 255, 255), -1)
        cv2.putText(img, f"{h.confidence:.2f}", (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1)
    if not seg.found:
        cv2.putText(img, f"no hand: {seg.reason}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 1)
    return img


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.cube_mm > 0 and np.isfinite(args.cube_mm)):
        raise InputError(f"--cube-mm must be positive, got {args.cube_mm}")
    seg = HandSegmenter(SegmenterConfig(max_depth_mm=args.max_depth_mm))
    out_dir = Path(args.crops) if args.crops else None
    if out_dir is not None:
        check_outputs(crop_outputs(out_dir, args.files), args.files)
        prepare_folder(out_dir, "--crops folder")
    failed = 0
    prev: Segmentation | None = None
    for name in args.files:
        try:
            fmt = args.format or guess_format(name)
            depth = read_depth(name, fmt, args.depth_unit_mm)
            intr = _intrinsics(args, fmt, depth.shape)
            result = seg.segment(depth, intr, prev=prev)
        except InputError as exc:
            failed += 1
            print(json.dumps({"file": name, "hand": False, "error": str(exc)}), flush=True)
            print(f"handstream locate: error: {exc}", file=sys.stderr)
            continue
        prev = result if result.found else None
        print(json.dumps(_record(name, result)), flush=True)
        if out_dir is not None:
            stem = Path(name).stem
            if result.found:
                h = result.hands[0]
                crop = crop_cube(depth, intr, h.com_xyz_mm, args.cube_mm, args.size, mask=h.mask)
                img = np.rint((crop.depth + 1.0) * 127.5).astype(np.uint8)
                write_png(out_dir / f"{stem}_crop.png", img)
            write_png(out_dir / f"{stem}_overlay.png", _overlay(depth, result, intr, args.cube_mm))
    return 2 if failed else 0


def crop_outputs(out_dir: Path, files: list[str]) -> list[tuple[str, Path]]:
    """Every file --crops may write: two inputs with one stem, or an input named like a crop, would be
    overwritten, so they are refused before the first frame."""
    return [
        (f"--crops file for {name}", out_dir / f"{Path(name).stem}{kind}.png")
        for name in files
        for kind in ("_crop", "_overlay")
    ]
