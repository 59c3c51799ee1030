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

from ..argtypes import check_fps, check_frames, check_seed
from ..errors import InputError
from .base import Pacer, Source

__all__ = ["Source", "Pacer", "open_source", "source_kind", "refuse_unused", "VIDEO_EXTS", "RECORDING_EXTS"]

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
RECORDING_EXTS = (".bag", ".db3")


# which source kinds use each option: anything else is refused, not silently ignored
_OPTION_USERS: dict[str, tuple[str, ...]] = {
    "width": ("realsense",),
    "height": ("realsense",),
    "fps": ("realsense", "synthetic", "folder"),
    "realtime": ("recording",),
    "live": ("synthetic",),
    "frames": ("synthetic",),
    "depth": ("video",),
    "intrinsics": ("video", "folder"),
    "camera": ("synthetic", "folder", "video"),
}


def source_kind(spec: str) -> str:
    """realsense | synthetic | folder | recording | video (or the extension's kind, checked later)."""
    s = str(spec).strip()
    head = s.partition(":")[0].lower()
    if head == "realsense":
        return "realsense"
    if head == "synthetic" and not Path(s).exists():
        return "synthetic"
    p = Path(s)
    if p.is_dir():
        return "folder"
    ext = p.suffix.lower()
    return "recording" if ext in RECORDING_EXTS else "video" if ext in VIDEO_EXTS else "unknown"


def refuse_unused(kind: str, given: dict[str, object]) -> None:
    """One line for the first option given (not None, not False) that a `kind` source does not use."""
    article = {"realsense": "a RealSense camera", "synthetic": "the synthetic generator"}
    for name, value in given.items():
        users = _OPTION_USERS.get(name, ())
        if value is None or value is False or kind in users:
            continue
        where = " or ".join(article.get(u, f"a {u}") for u in users)
        raise InputError(f"--{name} only applies to {where} source, not to {article.get(kind, f'a {kind}')}")


def open_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
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
    a known camera (frames.KNOWN_CAMERAS) for the generator or a folder. An option the source does not
    use is refused (InputError), as is a frame rate, a frame count or a seed out of range."""
    s = str(spec).strip()
    if not s:
        raise InputError("--source is empty")
    kind = source_kind(s)
    if kind not in ("realsense", "synthetic") and not Path(s).exists():
        raise InputError(
            f"source {s!r} not found (give realsense, synthetic, a recording, a video or a folder)"
        )
    if kind != "unknown":
        refuse_unused(
            kind,
            {
                "width": width,
                "height": height,
                "fps": fps,
                "realtime": realtime,
                "live": live,
                "frames": frames,
                "depth": depth,
                "intrinsics": intrinsics,
                "camera": camera,
            },
        )
    if fps is not None:
        fps = check_fps(fps)
    if frames is not None:
        frames = check_frames(frames)
    head, _, arg = s.partition(":")
    if kind == "realsense":
        from .realsense import RealSenseSource

        return RealSenseSource(
            width=width or 640,
            height=height or 480,
            fps=fps or 30.0,
            serial=arg or None,
            timeout_ms=timeout_ms,
        )
    if kind == "synthetic":
        from .synthetic import SyntheticSource

        seed = check_seed(arg, "synthetic:SEED") if arg else 0
        return SyntheticSource(
            n_frames=300 if frames is None else frames,
            fps=fps or 30.0,
            seed=seed,
            cam=camera or "d435_320x240",
            live=bool(live),
        )
    p = Path(s)
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
