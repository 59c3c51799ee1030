"""Image folders: the NYU layout or plain 16-bit depth PNGs, each with optional colour.

Layouts, recognised in this order:
- NYU: `depth_<cam>_<n>.png` (depth mm = (G << 8) | B) with `rgb_<cam>_<n>.png` beside it; camera `nyu`
  by default (its flipped y is the dataset's labels' business, not the images').
- `depth/` and `color/` (or `rgb/`) sub-folders: 16-bit PNG depth, colour PNG/JPEG paired by file stem
  (or by order when the stems differ).
- a flat folder of 16-bit PNGs (depth only).
Intrinsics: --intrinsics (JSON/YAML or camera name), else `intrinsics.json`/`.yaml` in the folder, else
the NYU camera for the NYU layout; otherwise a one-line error asks for them. Depth is read by
stream.depth_io (the preprocessing module's reader). A file that cannot be used (corrupt or truncated,
not readable for permissions, another size than the camera) becomes an unreadable frame saying why
(`RGBDFrame.unreadable`) and the stream goes on.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2

from ..errors import InputError
from ..frames import RGBDFrame, camera
from .base import Source
from .intrinsics_file import load_intrinsics

_NYU = re.compile(r"^depth_(\d+)_(\d+)\.png$", re.IGNORECASE)
_COLOR_EXT = (".png", ".jpg", ".jpeg")


def _images(folder: Path, exts) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


class FolderSource(Source):
    def __init__(
        self, path: str | Path, fps: float = 30.0, intrinsics: str | None = None, camera: str | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = f"folder {self.path.name}"
        self.fps = float(fps)
        self._intr_spec = intrinsics or camera
        self._pairs: list[tuple[Path, Path | None]] = []
        self._fmt = "png16"
        self._i = 0

    def _open(self) -> None:
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such folder")
        nyu = sorted((p for p in self.path.iterdir() if _NYU.match(p.name)), key=lambda p: p.name)
        default_cam = None
        if nyu:
            self._fmt, default_cam = "nyu", "nyu"
            for p in nyu:
                cam, n = _NYU.match(p.name).groups()
                c = p.with_name(f"rgb_{cam}_{n}.png")
                self._pairs.append((p, c if c.is_file() else None))
        elif (self.path / "depth").is_dir():
            depth = _images(self.path / "depth", (".png",))
            cdir = next((self.path / n for n in ("color", "colour", "rgb") if (self.path / n).is_dir()), None)
            colors = _images(cdir, _COLOR_EXT) if cdir else []
            by_stem = {c.stem: c for c in colors}
            if colors and all(d.stem in by_stem for d in depth):
                self._pairs = [(d, by_stem[d.stem]) for d in depth]
            elif colors and len(colors) == len(depth):
                self._pairs = list(zip(depth, colors))
            elif colors:
                raise InputError(
                    f"{self.path}: {len(depth)} depth and {len(colors)} colour images that do not pair up by name"
                )
            else:
                self._pairs = [(d, None) for d in depth]
        else:
            self._pairs = [(d, None) for d in _images(self.path, (".png",))]
        if not self._pairs:
            raise InputError(
                f"{self.path}: no depth images (expected NYU depth_*_*.png, a depth/ sub-folder or 16-bit PNGs)"
            )
        spec = self._intr_spec or next(
            (
                str(p)
                for n in ("intrinsics.json", "intrinsics.yaml", "intrinsics.yml")
                if (p := self.path / n).is_file()
            ),
            None,
        )
        if spec:
            self.intrinsics = load_intrinsics(spec)
        elif default_cam:
            self.intrinsics = camera(default_cam)
        else:
            raise InputError(
                f"{self.path}: the camera is unknown; pass --intrinsics FILE.json or --camera NAME"
            )
        self.frame_count = len(self._pairs)

    def _read(self) -> RGBDFrame | None:
        if self._i >= len(self._pairs):
            return None
        dpath, cpath = self._pairs[self._i]
        index, t_ms = self._i, self._i * 1000.0 / self.fps
        self._i += 1
        try:
            depth, color = self._load(dpath, cpath)
        except InputError as exc:
            return RGBDFrame.unreadable(
                index,
                t_ms,
                self.intrinsics,
                self.name,
                str(exc).replace(str(dpath), dpath.name),  # the file's name is enough in a stream
                meta={"file": dpath.name},
            )
        return RGBDFrame(
            index=index,
            timestamp_ms=t_ms,
            depth_mm=depth,
            intrinsics=self.intrinsics,
            color_bgr=color,
            source=self.name,
            meta={"file": dpath.name},
        )

    def _load(self, dpath: Path, cpath: Path | None):
        """(depth mm, colour BGR or None) of one pair; an InputError naming the file says why it cannot be
        used (the caller turns it into an unreadable frame: one bad file never ends the stream)."""
        from ..depth_io import read_depth

        for p in (dpath, cpath):
            if p is not None:
                _check_readable(p)
        depth = read_depth(dpath, fmt=self._fmt, depth_unit_mm=self.intrinsics.depth_unit_mm)
        intr = self.intrinsics
        if depth.shape != intr.shape:
            raise InputError(
                f"{dpath.name} is {depth.shape[1]}x{depth.shape[0]}, the camera {intr.width}x{intr.height}"
            )
        color = None
        if cpath is not None:
            color = cv2.imread(str(cpath), cv2.IMREAD_COLOR)
            if color is None:
                raise InputError(f"{cpath.name}: not a readable image (corrupt?)")
            if color.shape[:2] != depth.shape:
                color = cv2.resize(color, (intr.width, intr.height), interpolation=cv2.INTER_AREA)
        return depth, color


def _check_readable(p: Path) -> None:
    """OpenCV says "no image" for a file it may not open as for a corrupt one: open it first, so that a
    permission problem is reported as what it is."""
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"{p.name}: cannot read: {exc.strerror or type(exc).__name__}") from None
