"""The learned hand detector at run time: a depth frame -> palm-centre heatmap + hand-mask logits (ONNX
Runtime, one thread), and the peaks of that heatmap as hand candidates.

The network (train/detector.py, trained by `handstream train detector` on synthetic frames) sees the frame at a
fixed small size. `detector_input` is the one definition of that input, used by training and by the runtime:

- the frame is fitted into `input_width x input_height` (160x120) with cv2.resize INTER_NEAREST, keeping
  its aspect ratio. A 4:3 frame (320x240, 640x480, 1280x960...) fills the input exactly. Any other aspect
  ratio is *letterboxed*: scaled by the same factor on both axes until it fits, placed at the top-left and
  padded with 0 (= no measurement) on the right or bottom. So a 16:9 848x480 frame becomes 160x91 plus 29
  empty rows: hands keep their shape, the picture is just smaller. Not tied to any camera: the network was
  trained on several (D435 at two resolutions, SR300, NYU's Kinect) and hand distances of 0.3-0.9 m.
- depth in metres: d / depth_scale_mm (1000), clipped to depth_clip_m (3 m: far walls keep a value,
  the hand range is resolved finely); no measurement (0, NaN, inf, negative, above max_valid_mm) -> 0.

Outputs at 1/`output_stride` (4) of the input: heatmap in [0, 1] (a Gaussian around the palm centre =
mean of the wrist and the four finger MCPs, the same palm `handstream eval segmentation` measures against; a
hand less than ~40 % visible was trained as "no peak") and the hand-mask logits (the visible pixels of
all hands, forearm excluded). An engine may add a third output, "depth": the depth (m) of the hand's
visible surface, trained near palm peaks only (it tells the hand from an occluder in front of it).

numpy + OpenCV + engines (ONNX Runtime); never torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

__all__ = [
    "DETECTOR_TASK",
    "DetectorGeometry",
    "DetectorOutput",
    "HandDetector",
    "Peak",
    "detector_input",
    "find_peaks",
]

DETECTOR_TASK = "detect-hand"
DEFAULT_ENGINE = "detector"  # engines/default/detector.onnx + .json


@dataclass(frozen=True)
class DetectorGeometry:
    """How a frame maps onto the detector's input: input pixel = full-resolution pixel * scale (both axes;
    the letterbox keeps the aspect ratio), the frame occupying the top-left `used_wh` of the input."""

    frame_wh: tuple[int, int]
    input_wh: tuple[int, int]
    used_wh: tuple[int, int]
    scale: float  # input pixels per frame pixel
    stride: int  # input pixels per output cell

    def cell_to_frame(self, cu: float, cv: float) -> tuple[float, float]:
        """Centre of output cell (cu, cv) in full-resolution pixel coordinates."""
        s = self.stride
        return ((cu + 0.5) * s / self.scale - 0.5, (cv + 0.5) * s / self.scale - 0.5)

    def frame_to_cell(self, u: float, v: float) -> tuple[float, float]:
        """Full-resolution pixel (u, v) -> output-cell coordinates (inverse of cell_to_frame)."""
        s = self.stride
        return ((u + 0.5) * self.scale / s - 0.5, (v + 0.5) * self.scale / s - 0.5)


def input_geometry(frame_wh: tuple[int, int], input_wh: tuple[int, int], stride: int) -> DetectorGeometry:
    w, h = int(frame_wh[0]), int(frame_wh[1])
    iw, ih = int(input_wh[0]), int(input_wh[1])
    scale = min(iw / w, ih / h)
    used = (min(iw, max(1, int(round(w * scale)))), min(ih, max(1, int(round(h * scale)))))
    return DetectorGeometry((w, h), (iw, ih), used, scale, int(stride))


def detector_input(
    depth_mm: np.ndarray,
    input_wh: tuple[int, int] = (160, 120),
    depth_scale_mm: float = 1000.0,
    depth_clip_m: float = 3.0,
    max_valid_mm: float = 10000.0,
    stride: int = 4,
) -> tuple[np.ndarray, DetectorGeometry]:
    """(input_h, input_w) float32 network input (see the module docstring) and the frame's geometry."""
    h, w = depth_mm.shape
    geo = input_geometry((w, h), input_wh, stride)
    x = np.zeros((input_wh[1], input_wh[0]), np.float32)
    sub = x[: geo.used_wh[1], : geo.used_wh[0]]
    if depth_mm.dtype == np.uint16:
        # a camera's own depth (the common case): no NaN or negative value can occur, so "missing" is 0 or
        # above max_valid_mm, zeroed while still integers -- the same input, half the passes over it
        small = cv2.resize(depth_mm, geo.used_wh, interpolation=cv2.INTER_NEAREST)
        small[small > max_valid_mm] = 0
        np.multiply(small, np.float32(1.0 / depth_scale_mm), out=sub)
        np.minimum(sub, np.float32(depth_clip_m), out=sub)
        return x, geo
    src = depth_mm if depth_mm.dtype != np.float64 else depth_mm.astype(np.float32)
    small = cv2.resize(src, geo.used_wh, interpolation=cv2.INTER_NEAREST).astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        bad = ~((small > 0) & (small <= max_valid_mm))  # NaN compares False: missing as well
    np.multiply(small, np.float32(1.0 / depth_scale_mm), out=sub)
    np.minimum(sub, np.float32(depth_clip_m), out=sub)
    sub[bad] = 0.0
    return x, geo


@dataclass(frozen=True)
class Peak:
    """A heatmap maximum: output cell, full-resolution pixel, and the heatmap value (presence score)."""

    cell_uv: tuple[int, int]
    frame_uv: tuple[float, float]
    score: float


@dataclass(frozen=True, eq=False)
class DetectorOutput:
    """One frame through the detector: heatmap (h, w) in [0, 1], mask logits (h, w), the network input
    (depth in metres, for a robust depth near a peak) and the frame -> input geometry."""

    heatmap: np.ndarray
    mask_logits: np.ndarray
    input_m: np.ndarray
    geometry: DetectorGeometry
    hand_depth_m: np.ndarray | None = None  # (h, w) predicted hand depth near peaks; None: old engine


def find_peaks(heatmap: np.ndarray, threshold: float, max_peaks: int) -> list[tuple[int, int, float]]:
    """(cu, cv, value) of local 3x3 maxima >= threshold, best first, at most max_peaks."""
    hm = np.ascontiguousarray(heatmap, np.float32)
    if not hm.size or float(hm.max()) < threshold:
        return []
    is_max = (hm >= cv2.dilate(hm, np.ones((3, 3), np.uint8))) & (hm >= threshold)
    vs, us = np.nonzero(is_max)
    vals = hm[vs, us]
    order = np.argsort(-vals)[: max(0, int(max_peaks))]
    return [(int(us[i]), int(vs[i]), float(vals[i])) for i in order]


class HandDetector:
    """The shipped (or a given) detector engine, loaded once; `run(depth_mm)` per frame.

    engine: a path to an .onnx with its manifest, or a shipped engine name (default "detector"). The
    manifest must say task "detect-hand"; its preprocessing fields fix the input size and depth scaling.
    ONNX Runtime on the CPU with `threads` intra-op threads (1: the detector is tiny, a second thread only
    adds synchronisation, and the pose engine runs beside it)."""

    def __init__(self, engine: str | Path = DEFAULT_ENGINE, threads: int = 1):
        import engines  # lazily: importing stream.preprocess stays numpy + OpenCV only

        eng = engines.load_engine(
            engine, backend="onnxruntime", threads=threads, expect={"task": DETECTOR_TASK}, device="cpu"
        )
        pre = eng.manifest.preprocessing
        try:
            self.input_wh = (int(pre["input_width"]), int(pre["input_height"]))
            self.stride = int(pre["output_stride"])
            self.depth_scale_mm = float(pre["depth_scale_mm"])
            self.depth_clip_m = float(pre["depth_clip_m"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"detector engine {eng.manifest.name!r}: manifest preprocessing lacks {exc} "
                "(input_width, input_height, output_stride, depth_scale_mm, depth_clip_m)"
            ) from None
        if set(eng.output_names) not in ({"heatmap", "mask"}, {"heatmap", "mask", "depth"}):
            raise InputError(
                f"detector engine {eng.manifest.name!r} must output 'heatmap' and 'mask' (and optionally "
                f"'depth'), has {eng.output_names}"
            )
        self.has_depth = "depth" in eng.output_names
        self._outputs = ["heatmap", "mask", "depth"] if self.has_depth else ["heatmap", "mask"]
        self.engine = eng
        self.manifest = eng.manifest
        self._in_name = eng.input_names[0]
        # the session directly: Engine.infer re-checks shapes/dtypes on every call, which costs more than
        # half of this tiny net's run time; the input built by detector_input always fits the manifest
        self._session = eng.session

    def describe(self) -> str:
        return self.engine.describe()

    def run(self, depth_mm: np.ndarray, max_valid_mm: float = 10000.0) -> DetectorOutput:
        x, geo = detector_input(
            depth_mm, self.input_wh, self.depth_scale_mm, self.depth_clip_m, max_valid_mm, self.stride
        )
        res = self._session.run(self._outputs, {self._in_name: x[None, None]})
        depth = res[2][0, 0] if self.has_depth else None
        return DetectorOutput(res[0][0, 0], res[1][0, 0], x, geo, depth)

    def peaks(self, out: DetectorOutput, threshold: float, max_peaks: int) -> list[Peak]:
        """Heatmap maxima above `threshold` in the part of the input the frame occupies."""
        found = []
        geo = out.geometry
        for cu, cv, val in find_peaks(out.heatmap, threshold, max_peaks + 2):
            u, v = geo.cell_to_frame(cu, cv)
            if u > geo.frame_wh[0] - 0.5 or v > geo.frame_wh[1] - 0.5:
                continue  # in the letterbox padding: no picture there
            found.append(Peak((cu, cv), (u, v), val))
        return found[:max_peaks]
