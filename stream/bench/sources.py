"""The fixed input a benchmark runs on: a clip of RGB-D frames held in memory and cycled.

Frames are read (or rendered) once before timing. For the timed runs the clip is then written once, cycled
to the length a run needs, as a RealSense recording (.db3, by the runtime's own `rs_writer`, cached in
.cache/bench/recordings) and played back by the runtime's `RecordingSource`: capture/decode is real
librealsense playback, not a list look-up. `ClipSource` serves the same frames from memory (the pipeline's
capacity without decoding, and the fallback where pyrealsense2 is not installed). `synthetic`
renders a 640x480 D435-like sequence with stream.synth (about 0.25 s a frame on a 2-core VM), cached in
.cache/bench/clips so repeated runs time the very same frames. A path may be an .npz clip (`depth_mm`
(N, H, W), optional `color_bgr` (N, H, W, 3), `camera` name), a NYU depth PNG (its rgb_ PNG beside it is
the colour), or anything the runtime's sources open (a recording or a video).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..frames import KNOWN_CAMERAS, CameraIntrinsics, RGBDFrame, camera
from ..sources.base import Source

CLIP_DIR = Path(__file__).resolve().parents[2] / ".cache" / "bench" / "clips"
RECORDING_DIR = CLIP_DIR.parent / "recordings"
SYNTH_CAMERA = "d435_640x480"


@dataclass(frozen=True)
class Clip:
    """Frames to cycle through, and what they are (for the report)."""

    frames: list[RGBDFrame]
    source: str
    description: str

    def describe(self) -> dict:
        f = self.frames[0]
        return {
            "source": self.source,
            "description": self.description,
            "distinct_frames": len(self.frames),
            "width": f.intrinsics.width,
            "height": f.intrinsics.height,
            "has_color": f.color_bgr is not None,
        }


def save_clip(path: str | Path, frames: list[RGBDFrame]) -> Path:
    """An .npz clip: depth_mm (N, H, W), color_bgr when every frame has colour, intrinsics as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"depth_mm": np.stack([f.depth_mm for f in frames])}
    if all(f.color_bgr is not None for f in frames):
        arrays["color_bgr"] = np.stack([f.color_bgr for f in frames])
    arrays["intrinsics_json"] = np.array(json.dumps(frames[0].intrinsics.to_dict()))
    arrays["timestamp_ms"] = np.array([f.timestamp_ms for f in frames], np.float64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load_npz_clip(path: str | Path, limit: int = 0) -> list[RGBDFrame]:
    path = Path(path)
    try:
        with np.load(path) as data:
            if "depth_mm" not in data.files:
                raise InputError(f"{path}: an .npz clip needs a depth_mm array (N, H, W)")
            depth = data["depth_mm"]
            color = data["color_bgr"] if "color_bgr" in data.files else None
            if "intrinsics_json" in data.files:
                intr = CameraIntrinsics.from_dict(json.loads(str(data["intrinsics_json"])))
            else:
                intr = camera(str(data["camera"])) if "camera" in data.files else None
            ts = data["timestamp_ms"] if "timestamp_ms" in data.files else None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read clip {path}: {exc}") from None
    if depth.ndim == 2:
        depth = depth[None]
    if color is not None and color.ndim == 3:
        color = color[None]
    if intr is None:
        match = [c for c in KNOWN_CAMERAS.values() if c.shape == depth.shape[1:]]
        if not match:
            raise InputError(
                f"{path}: no intrinsics_json or camera, and no known camera is {depth.shape[1:]}"
            )
        intr = match[0]
    n = len(depth) if not limit else min(limit, len(depth))
    return [
        RGBDFrame(
            index=i,
            timestamp_ms=float(ts[i]) if ts is not None else i * 1000.0 / 30.0,
            depth_mm=depth[i],
            intrinsics=intr,
            color_bgr=color[i] if color is not None else None,
            source=str(path),
        )
        for i in range(n)
    ]


def synthetic_clip(
    n: int, seed: int = 0, cache_dir: str | Path | None = None, two_hands: bool = False
) -> Clip:
    """A smooth synthetic 640x480 sequence (depth + colour), rendered once and cached as .npz.
    `two_hands`: the generator's two-hand scene (a right and a left hand of one person)."""
    from ..synth import GENERATOR_VERSION, HandSynthesizer, SceneConfig

    # the generator's version is in the name: a changed generator renders (and is timed on) new frames
    kind = "synthetic_two_hands" if two_hands else "synthetic"
    cache = Path(cache_dir or CLIP_DIR) / f"{kind}_{GENERATOR_VERSION}_{SYNTH_CAMERA}_seed{seed}_n{n}.npz"
    scene = "two-hand sequence" if two_hands else "sequence"
    desc = f"synthetic {SYNTH_CAMERA} {scene} ({GENERATOR_VERSION}), seed {seed}, {n} frames cycled"
    if cache.is_file():
        try:
            return Clip(load_npz_clip(cache), kind, desc)
        except InputError:
            pass  # a damaged cache is rendered again

    synth = HandSynthesizer(SceneConfig(camera=KNOWN_CAMERAS[SYNTH_CAMERA], two_hands=two_hands), seed)
    frames = [s.frame for s in synth.sequence(n, 30.0)]
    save_clip(cache, frames)
    return Clip(frames, kind, desc)


def _nyu_png_clip(path: Path) -> Clip:
    import cv2

    from ..depth_io import read_depth

    depth = read_depth(path, "nyu")
    rgb_path = path.with_name(path.name.replace("depth_", "rgb_", 1))
    color = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR) if rgb_path != path and rgb_path.is_file() else None
    frame = RGBDFrame(0, 0.0, depth, KNOWN_CAMERAS["nyu"], color, str(path))
    what = "with colour" if color is not None else "depth only"
    return Clip([frame], str(path), f"NYU frame {path.name} ({what}), repeated")


def load_clip(source: str, n: int = 60, seed: int = 0) -> Clip:
    """The frames to benchmark on: 'synthetic', an .npz clip, a NYU depth PNG, or a runtime source path."""
    if n < 1:
        raise InputError(f"a clip needs at least one frame, got {n}")
    if source == "synthetic":
        return synthetic_clip(n, seed)
    path = Path(source)
    if not path.exists():
        raise InputError(f"source {source!r} is neither 'synthetic' nor an existing file")
    if path.suffix.lower() == ".npz":
        return Clip(load_npz_clip(path, n), str(path), f"clip {path.name}, cycled")
    if path.suffix.lower() == ".png":
        return _nyu_png_clip(path)
    return _runtime_source_clip(path, n)


def _runtime_source_clip(path: Path, n: int) -> Clip:
    """Up to n frames of a recording or video through the runtime's own source (decoded up front)."""
    try:
        from .. import sources as rt_sources  # the runtime's sources (RealSense playback, video)
    except ImportError:
        raise InputError(
            f"{path}: this source type needs stream.sources (the runtime), not available"
        ) from None
    opener = getattr(rt_sources, "open_source", None)
    if opener is None:
        raise InputError(f"{path}: stream.sources has no open_source()")
    frames = []
    src = opener(str(path))
    try:
        for f in src:
            if getattr(f, "readable", True):  # a frame the source could not read has nothing to time
                frames.append(f)
            if len(frames) >= n:
                break
    finally:
        close = getattr(src, "close", None)
        if close:
            close()
    if not frames:
        raise InputError(f"{path}: no frames could be read")
    return Clip(frames, str(path), f"{path.name}: first {len(frames)} frames, decoded up front, cycled")


class ClipSource(Source):
    """The clip as a replay source: its frames cycled to `n_frames`, re-indexed at `fps` so that indices and
    timestamps keep increasing (One Euro and the recorder both need that)."""

    name = "clip (memory)"

    def __init__(self, clip: Clip, n_frames: int, fps: float = 30.0) -> None:
        super().__init__()
        if n_frames < 1 or not clip.frames:
            raise InputError(f"a clip source needs frames, got {len(clip.frames)} cycled to {n_frames}")
        self.frames, self.n, self.fps = clip.frames, int(n_frames), float(fps)
        self.intrinsics = clip.frames[0].intrinsics
        self.frame_count = self.n
        self._i = 0

    def _open(self) -> None:
        self._i = 0

    def _read(self) -> RGBDFrame | None:
        if self._i >= self.n:
            return None
        f = self.frames[self._i % len(self.frames)]
        out = replace(f, index=self._i, timestamp_ms=self._i * 1000.0 / self.fps, meta={})
        self._i += 1
        return out


def clip_key(clip: Clip) -> str:
    """A content hash of the clip's pixels and intrinsics: a cached recording is reused only for these frames."""
    h = hashlib.sha1(json.dumps(clip.frames[0].intrinsics.to_dict()).encode())
    for f in clip.frames:
        for a in (f.depth_mm, f.color_bgr):
            h.update(b"-" if a is None else memoryview(a.tobytes()))
    return h.hexdigest()[:12]


RAW_SUFFIX = "_raw.db3"


def is_raw(recording: Path) -> bool:
    """Whether a cached bench recording was written uncompressed (its name says so)."""
    return recording.name.endswith(RAW_SUFFIX)


def clip_recording(
    clip: Clip, n_frames: int, cache_dir: str | Path | None = None, compress: bool = True
) -> Path:
    """The clip cycled to `n_frames` as a RealSense recording (.db3), written once by the runtime's
    `rs_writer` and cached by content, length and compression (one length per clip and kind: 640x480 depth +
    colour is about 0.5 MB a frame with librealsense's lz4, 1.5 MB raw). Needs pyrealsense2 (the realsense
    extra)."""
    from ..sources.rs_writer import write_recording

    folder = Path(cache_dir or RECORDING_DIR)
    key = clip_key(clip)
    path = folder / f"clip_{key}_n{int(n_frames)}{'.db3' if compress else RAW_SUFFIX}"
    if path.is_file() and path.stat().st_size > 0:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"clip_{key}_n*.db3"):  # the same clip and kind at another length
        if is_raw(old) == compress:
            continue  # the other kind (raw vs lz4) is kept
        old.unlink()
    tmp = path.with_name("partial_" + path.name)
    write_recording(ClipSource(clip, n_frames), tmp, compress=compress)
    tmp.replace(path)
    return path
