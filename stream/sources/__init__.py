"""Frame sources: a RealSense camera, a RealSense recording, a video file, an image folder, the generator.

`open_source(spec)` turns what a user types after --source into a Source (not yet opened):
- `realsense` or `realsense:SERIAL`: a live camera (pyrealsense2);
- a `.bag` / `.db3` file: a RealSense recording played through librealsense (lossless, or `realtime=True`);
- a video file (.mp4/.avi/.mkv/.mov): colour frames, with optional paired depth and intrinsics;
- a folder: NYU-layout or plain 16-bit depth PNGs (+ colour);
- `synthetic` or `synthetic:SEED`: the built-in generator.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import Pacer, Source

__all__ = ["Source", "Pacer", "open_source", "VIDEO_EXTS", "RECORDING_EXTS"]

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
RECORDING_EXTS = (".bag", ".db3")


def open_source(
    spec: str,
    *,
    width: int = 640,
    height: int = 480,
    fps: float | None = None,
    realtime: bool = False,
    live: bool | None = None,
    frames: int | None = None,
    depth: str | None = None,
    intrinsics: str | None = None,
    camera: str | None = None,
    timeout_ms: int = 5000,
) -> Source:
    """Build the source `spec` names. `fps`/`width`/`height` set a camera's mode (and the generator's
    rate); `realtime` paces a recording by its timestamps (may drop) instead of lossless replay; `live`
    paces the generator like a camera; `depth` and `intrinsics` pair a video with depth; `camera` names
    a known camera (frames.KNOWN_CAMERAS) for the generator or a folder."""
    s = str(spec).strip()
    if not s:
        raise InputError("--source is empty")
    head, _, arg = s.partition(":")
    if head.lower() == "realsense":
        from .realsense import RealSenseSource

        return RealSenseSource(
            width=width, height=height, fps=fps or 30.0, serial=arg or None, timeout_ms=timeout_ms
        )
    if head.lower() == "synthetic" and not Path(s).exists():
        from .synthetic import SyntheticSource

        try:
            seed = int(arg) if arg else 0
        except ValueError:
            raise InputError(f"synthetic source seed must be an integer, got {arg!r}") from None
        return SyntheticSource(
            n_frames=frames or 300,
            fps=fps or 30.0,
            seed=seed,
            cam=camera or "d435_320x240",
            live=bool(live),
        )
    p = Path(s)
    if not p.exists():
        raise InputError(
            f"source {s!r} not found (give realsense, synthetic, a recording, a video or a folder)"
        )
    if p.is_dir():
        from .folder import FolderSource

        return FolderSource(p, fps=fps or 30.0, intrinsics=intrinsics, camera=camera)
    ext = p.suffix.lower()
    if ext in RECORDING_EXTS:
        from .recording import RecordingSource

        return RecordingSource(p, realtime=realtime)
    if ext in VIDEO_EXTS:
        from .video import VideoSource

        return VideoSource(p, depth=depth, intrinsics=intrinsics, camera=camera)
    raise InputError(
        f"{p.name}: unknown source type {ext or '(no extension)'}; expected a recording "
        f"({', '.join(RECORDING_EXTS)}), a video ({', '.join(VIDEO_EXTS)}) or a folder"
    )
