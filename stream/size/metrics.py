"""The seed's measures of a size estimator (Shu et al. 2023, eqs. 3-4 and the temporal-stability study),
plus subject-grouped folds. No torch: the runtime's `handstream eval size` and the training share them.

MAPE divides by the reference value (the seed's eq. 4 writes the estimate in the denominator; the usual
definition, and the one that makes "3 %" a statement about the truth, uses the reference).
"""

from __future__ import annotations

import numpy as np

from .calibrator import SizeCalibrator


def mae(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean absolute error per quantity (last axis), in the inputs' unit."""
    return np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64)).mean(axis=0)


def mape(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean absolute percentage error per quantity, relative to the reference `true`."""
    t = np.asarray(true, np.float64)
    return 100.0 * (np.abs(np.asarray(pred, np.float64) - t) / np.abs(t)).mean(axis=0)


def sequence_spread(pred: np.ndarray, sequence: np.ndarray, min_frames: int = 2) -> dict[str, list[float]]:
    """The seed's temporal stability: the variance of the predictions within each sequence (the truth is
    constant there), averaged over sequences, per quantity; with the mean per-sequence sd beside it."""
    p = np.asarray(pred, np.float64)
    var, sd = [], []
    for s in np.unique(sequence):
        x = p[sequence == s]
        if len(x) >= min_frames:
            v = x.var(axis=0, ddof=1)
            var.append(v)
            sd.append(np.sqrt(v))
    if not var:
        return {"variance_mm2": [float("nan")] * p.shape[1], "sd_mm": [float("nan")] * p.shape[1]}
    return {"variance_mm2": np.mean(var, axis=0).tolist(), "sd_mm": np.mean(sd, axis=0).tolist()}


def calibrated_errors(
    pred: np.ndarray, true: np.ndarray, sequence: np.ndarray, frames: int, calibrator_kw: dict | None = None
) -> np.ndarray:
    """(S, 2) absolute errors of the calibrator's estimate after the first `frames` frames of each sequence
    (frames whose prediction is NaN, no hand, are skipped as the stage skips them)."""
    errs = []
    for s in np.unique(sequence):
        idx = np.flatnonzero(sequence == s)[:frames]
        cal = SizeCalibrator(**(calibrator_kw or {}))
        for i in idx:
            cal.add(pred[i])
        est, _ = cal.estimate()
        if est is not None:
            errs.append(np.abs(est - np.asarray(true[idx[0]], np.float64)))
    return np.array(errs).reshape(-1, 2)


def held_errors(held: np.ndarray, true: np.ndarray, sequence: np.ndarray, frames: int) -> np.ndarray:
    """(S, 2) absolute errors of the size a stage held after the first `frames` frames of each sequence
    (`held`: the stage's calibrated size after every frame, NaN where it had none yet): what a user
    calibrated for that long gets, whichever way the stage combines its frames."""
    errs = []
    for s in np.unique(sequence):
        idx = np.flatnonzero(sequence == s)[:frames]
        ok = idx[np.isfinite(held[idx]).all(1)]
        if len(ok):
            errs.append(np.abs(np.asarray(held[ok[-1]], np.float64) - np.asarray(true[idx[0]], np.float64)))
    return np.array(errs).reshape(-1, 2)


def grouped_folds(groups: np.ndarray, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train index, test index) pairs where every group (subject) lies in exactly one test fold."""
    g = np.asarray(groups)
    uniq = np.unique(g)
    if len(uniq) < k:
        raise ValueError(f"{len(uniq)} groups cannot make {k} folds")
    order = np.random.default_rng(seed).permutation(uniq)
    fold_of = {int(u): i % k for i, u in enumerate(order)}
    f = np.array([fold_of[int(x)] for x in g])
    return [(np.flatnonzero(f != i), np.flatnonzero(f == i)) for i in range(k)]
