"""The annotated view: colour (or depth) with the hand mask tinted, the projected cube, the 2-D skeleton
with joints coloured by depth, and a heads-up line (FPS, per-stage ms, dropped frames); beside it the
depth image as a colour map with the same skeleton. Pure OpenCV drawing on uint8 BGR images. Stages that
draw their own results (a gesture label, a size) are `hooks`, called between the skeleton and the HUD.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import xyz_to_uvd

# MediaPipe's 21-joint layout (the shipped pose engine's "mediapipe21"): wrist, then 4 joints per finger
# from the thumb; every finger's first joint hangs off the wrist.
BONES_21: tuple[tuple[int, int], ...] = tuple((0 if c % 4 == 1 else c - 1, c) for c in range(1, 21))
# the 12 edges of a cube whose corners are numbered by bits (x, y, z)
_CUBE_EDGES = tuple((a, a | b) for a in range(8) for b in (1, 2, 4) if not a & b)
_CORNERS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], np.float64) * 2 - 1


def _lut(colormap: int) -> np.ndarray:
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], colormap)[:, 0, :]


class Overlay:
    """Draws one frame. `hud` (pipeline.Hud) supplies the heads-up numbers; `side_by_side` adds the depth
    colour-map view to the right. `depth_range_mm` maps depth to colours in that view. `hooks`: callables
    `(image, state)` that draw in place (the pipeline sets them to its stages' `draw`)."""

    def __init__(
        self,
        side_by_side: bool = True,
        depth_range_mm: tuple[float, float] = (200.0, 1500.0),
        joint_depth_span_mm: float = 120.0,
        hud=None,
    ) -> None:
        self.side_by_side = side_by_side
        self.depth_range_mm = depth_range_mm
        self.joint_depth_span_mm = joint_depth_span_mm
        self.hud = hud
        self.hooks: tuple = ()
        self._turbo = _lut(cv2.COLORMAP_TURBO)
        # depth (uint16 mm) -> colour index 1..255 by one table look-up; 0 (no depth) -> index 0 = black
        lo, hi = depth_range_mm
        d = np.arange(65536, dtype=np.float64)
        self._index16 = np.clip(1 + (d - lo) * (254.0 / (hi - lo)), 1, 255).astype(np.uint8)
        self._index16[0] = 0
        lut = self._turbo.copy()
        lut[0] = 0
        self._lut3 = np.ascontiguousarray(lut[:, None, :])  # (256, 1, 3): a user colour map for OpenCV

    def depth_colormap(self, depth_mm: np.ndarray) -> np.ndarray:
        """(H, W) mm -> (H, W, 3) BGR turbo colours over depth_range_mm; missing depth (0, or NaN/inf in a
        float frame) is black -- nan_to_num first, so a bad frame draws without a numpy cast warning."""
        if depth_mm.dtype == np.uint16:
            d = depth_mm
        else:
            d = np.clip(np.nan_to_num(depth_mm, nan=0.0, posinf=0.0, neginf=0.0), 0, 65535).astype(np.uint16)
        return cv2.applyColorMap(np.take(self._index16, d), self._lut3)

    def draw(self, st, hands=None) -> np.ndarray:
        """The annotated image of a frame. `hands`: None draws the one hand of `st`; a list of (hand
        state, label) draws each hand (mask, cube, skeleton, the stages' drawings) and its label (id, L/R)
        by the wrist, for pipelines with several hands (`st` is then the frame's state)."""
        if hands is not None:
            return self._draw_hands(st, hands)
        f = st.frame
        views = self._views(f)
        main = views[0]
        det = st.detection
        if det is not None:
            self._tint(main, det.mask, det.bbox_xywh)
        if st.crop is not None:
            self._cube(main, st.crop.com_xyz_mm, st.crop.half_mm, f.intrinsics)
        if st.joints_uvd is not None:
            for v in views:
                self._skeleton(v, st.joints_uvd)
        img = views[0] if len(views) == 1 else np.hstack(views)
        for hook in self.hooks:
            hook(img, st)
        self._hud(img, st)
        return img

    def _views(self, f) -> list[np.ndarray]:
        """The camera view (colour, else the depth colour map) and, side by side, the depth colour map."""
        depth_view = self.depth_colormap(f.depth_mm) if f.depth_mm is not None else None
        if f.color_bgr is not None:
            main = f.color_bgr.copy()
        elif depth_view is not None:
            main = depth_view.copy()
        else:  # pragma: no cover - frames always carry one of the two
            main = np.zeros((f.intrinsics.height, f.intrinsics.width, 3), np.uint8)
        return [main, depth_view] if self.side_by_side and depth_view is not None else [main]

    def _draw_hands(self, st, hands) -> np.ndarray:
        f = st.frame
        views = self._views(f)
        main = views[0]
        for hs, _ in hands:
            if hs.detection is not None:
                self._tint(main, hs.detection.mask, hs.detection.bbox_xywh)
            if hs.crop is not None:
                self._cube(main, hs.crop.com_xyz_mm, hs.crop.half_mm, f.intrinsics)
            if hs.joints_uvd is not None:
                for v in views:
                    self._skeleton(v, hs.joints_uvd)
        img = views[0] if len(views) == 1 else np.hstack(views)
        for hs, label in hands:
            for hook in self.hooks:
                hook(img, hs)
            self._label(img, hs, label)
        n = sum(hs.joints_uvd is not None for hs, _ in hands)
        status = f"{n} hands" if n > 1 else "hand" if n else (st.reason or "no hand")[:40]
        self._hud(img, st, status)
        return img

    @staticmethod
    def _label(img: np.ndarray, hs, label: str) -> None:
        """A hand's label above its wrist (or its mask's top-left corner before it has a skeleton)."""
        if hs.joints_uvd is not None and np.all(np.isfinite(hs.joints_uvd[0, :2])):
            u, v = hs.joints_uvd[0, :2]
        elif hs.detection is not None:
            u, v = hs.detection.bbox_xywh[:2]
        else:
            return
        org = (int(np.clip(u - 12, 0, img.shape[1] - 40)), int(np.clip(v - 8, 24, img.shape[0] - 4)))
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 120), 1, cv2.LINE_AA)

    @staticmethod
    def _tint(img: np.ndarray, mask: np.ndarray, bbox) -> None:
        x, y, bw, bh = (int(v) for v in bbox)
        if bw <= 0 or bh <= 0:
            return
        roi = img[y : y + bh, x : x + bw]
        m = mask[y : y + bh, x : x + bw]
        tinted = cv2.addWeighted(roi, 0.55, np.full_like(roi, (60, 200, 60)), 0.45, 0.0)
        np.copyto(roi, tinted, where=m[..., None])

    @staticmethod
    def _cube(img: np.ndarray, com_xyz_mm: np.ndarray, half_mm: float, intr) -> None:
        corners = xyz_to_uvd(com_xyz_mm + _CORNERS * half_mm, intr)
        if not np.all(np.isfinite(corners[:, :2])):
            return
        pts = np.rint(corners[:, :2]).astype(np.int32)
        for a, b in _CUBE_EDGES:
            cv2.line(img, tuple(pts[a]), tuple(pts[b]), (255, 170, 0), 1, cv2.LINE_AA)

    def _skeleton(self, img: np.ndarray, uvd: np.ndarray) -> None:
        if not np.all(np.isfinite(uvd)):
            return
        pts = np.rint(uvd[:, :2]).astype(np.int32)
        if len(pts) == 21:
            for a, b in BONES_21:
                cv2.line(img, tuple(pts[a]), tuple(pts[b]), (235, 235, 235), 1, cv2.LINE_AA)
        z = uvd[:, 2]
        span = self.joint_depth_span_mm
        idx = np.clip((z - (np.median(z) - span / 2)) * (255.0 / span), 0, 255).astype(np.int32)
        for p, i in zip(pts, idx):
            c = self._turbo[i]
            cv2.circle(img, (int(p[0]), int(p[1])), 3, (int(c[0]), int(c[1]), int(c[2])), -1, cv2.LINE_AA)

    def _hud(self, img: np.ndarray, st, status: str | None = None) -> None:
        if status is None:
            status = "hand" if st.joints_uvd is not None else (st.reason or "no hand")[:40]
        text = hud_text(self.hud, status)
        scale = 0.4 if img.shape[1] < 900 else 0.5
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(img, (0, 0), (min(tw + 8, img.shape[1]), th + base + 6), (0, 0, 0), -1)
        cv2.putText(img, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def hud_text(hud, status: str) -> str:
    """The heads-up line: FPS, per-stage ms, drops, and for a paced source its speed against real time
    (and frames behind), then `status` (hand / why not). `hud` is a pipeline.Hud or None."""
    parts = []
    if hud is not None:
        parts.append(f"{hud.fps:5.1f} FPS")
        if hud.stage_ms:
            parts.append(" ".join(f"{k} {v:.1f}" for k, v in hud.stage_ms.items()) + " ms")
        parts.append(f"dropped {hud.dropped}")
        lag = getattr(hud, "lag", None)
        if lag is not None:
            parts.append(
                f"{lag.speed:.2f}x real time" + (f", {lag.behind_frames} behind" if lag.behind_frames else "")
            )
    parts.append(status)
    return " | ".join(parts)
