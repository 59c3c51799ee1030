"""The user's hand size from a stream of per-frame estimates: a robust running estimate with a confidence.

Per-frame estimates scatter (pose, occlusion, sensor noise) and now and then a frame is far off (a wrong
segment, a half-hidden hand), so the estimate is the per-quantity median of the last `window` frames: a
third of the window can be outliers without moving it much, and it needs no tuning of a noise model. The
confidence grows with the number of frames and shrinks with their spread: the median's standard error is
about 1.25 sd / sqrt(n) (sd from the MAD, itself robust), and confidence = 1 / (1 + (se / ref_mm)^2) scaled
by n / (n + min_frames), so a handful of consistent frames give a moderate confidence and a few seconds of
consistent frames give nearly 1. The window is fixed-size (memory stays flat over a long run).

`reset()` starts over: the pipeline calls it when the hand is lost or the tracked hand changes, because
the next hand may be someone else's.
"""

from __future__ import annotations

from collections import deque

import numpy as np

# Estimates outside these ranges are not a hand (a segment of the arm, a wrong blob): dropped, not counted.
PLAUSIBLE_MM = ((90.0, 280.0), (40.0, 140.0))


class SizeCalibrator:
    def __init__(self, window: int = 90, min_frames: int = 10, ref_mm: float = 1.0) -> None:
        if window < 1 or min_frames < 0 or ref_mm <= 0:
            raise ValueError("window >= 1, min_frames >= 0, ref_mm > 0")
        self.window = int(window)
        self.min_frames = int(min_frames)
        self.ref_mm = float(ref_mm)
        self._hist: deque[np.ndarray] = deque(maxlen=self.window)

    def reset(self) -> None:
        self._hist = deque(maxlen=self.window)  # rebind: a forked copy must not share the window

    def __len__(self) -> int:
        return len(self._hist)

    def add(self, size_mm) -> None:
        """One frame's (length, width) estimate; non-finite or implausible ones are ignored."""
        v = np.asarray(size_mm, np.float64).reshape(-1)
        if v.shape != (2,) or not np.isfinite(v).all():
            return
        if not all(lo <= x <= hi for x, (lo, hi) in zip(v, PLAUSIBLE_MM)):
            return
        self._hist.append(v)

    def estimate(self) -> tuple[np.ndarray | None, float]:
        """(the (length, width) estimate in mm or None before the first frame, confidence in [0, 1])."""
        if not self._hist:
            return None, 0.0
        h = np.stack(self._hist)
        med = np.median(h, axis=0)
        n = len(h)
        sd = 1.4826 * float(np.median(np.abs(h[:, 0] - med[0])))  # robust sd of the length
        se = 1.2533 * sd / np.sqrt(n)
        conf = (n / (n + self.min_frames)) / (1.0 + (se / self.ref_mm) ** 2)
        return med.astype(np.float32), float(np.clip(conf, 0.0, 1.0))
