"""Pose metrics (seed 003 §4.4.2), numpy only (no torch): per-joint and mean 3-D error, and the success
rate -- the fraction of frames whose MAXIMUM joint error is below a threshold -- as a curve.

Arrays are (N, J, 3) in millimetres (a single (J, 3) frame is treated as N = 1)."""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLDS_MM: tuple[float, ...] = (20.0, 40.0, 80.0)


def _frames(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"joints must be (N, J, 3) or (J, 3), got {a.shape}")
    return a


def joint_errors_mm(pred_mm: np.ndarray, gt_mm: np.ndarray) -> np.ndarray:
    """(N, J) Euclidean distance of each predicted joint to its ground truth."""
    p, g = _frames(pred_mm), _frames(gt_mm)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in shape")
    return np.linalg.norm(p - g, axis=-1)


def per_joint_error_mm(pred_mm: np.ndarray, gt_mm: np.ndarray) -> np.ndarray:
    """(J,) error of each joint averaged over frames."""
    return joint_errors_mm(pred_mm, gt_mm).mean(axis=0)


def mean_error_mm(pred_mm: np.ndarray, gt_mm: np.ndarray) -> float:
    """Mean over all frames and joints (the number papers report for NYU)."""
    return float(joint_errors_mm(pred_mm, gt_mm).mean())


def success_rate(
    pred_mm: np.ndarray, gt_mm: np.ndarray, thresholds_mm: float | np.ndarray = DEFAULT_THRESHOLDS_MM
) -> np.ndarray | float:
    """Fraction of frames whose max joint error is <= each threshold (a float for a scalar threshold)."""
    worst = joint_errors_mm(pred_mm, gt_mm).max(axis=1)
    return success_curve(worst, thresholds_mm)


def success_curve(max_errors_mm: np.ndarray, thresholds_mm: float | np.ndarray) -> np.ndarray | float:
    """Success rate from per-frame max errors; the curve of §4.4.2 for thresholds 0..80 mm."""
    worst = np.asarray(max_errors_mm, dtype=np.float64)
    t = np.asarray(thresholds_mm, dtype=np.float64)
    out = (worst[None, :] <= t.reshape(-1, 1)).mean(axis=1)
    return float(out[0]) if t.ndim == 0 else out


def summary(pred_mm: np.ndarray, gt_mm: np.ndarray, thresholds_mm=DEFAULT_THRESHOLDS_MM) -> dict:
    """The JSON object `handstream eval` prints: mean_mm, per_joint_mm, success_rate {threshold: fraction},
    plus the 0-80 mm curve (1 mm steps) and the frame count."""
    err = joint_errors_mm(pred_mm, gt_mm)
    worst = err.max(axis=1)
    curve_t = np.arange(0, 81, 1.0)
    return {
        "frames": int(err.shape[0]),
        "mean_mm": float(err.mean()),
        "median_mm": float(np.median(err)),
        "per_joint_mm": [float(v) for v in err.mean(axis=0)],
        "success_rate": {
            f"{t:g}": float(v) for t, v in zip(thresholds_mm, success_curve(worst, thresholds_mm))
        },
        "success_curve": {
            "threshold_mm": curve_t.tolist(),
            "fraction": success_curve(worst, curve_t).tolist(),
        },
    }


def plot_results(results: dict[str, dict], out_png: str, title: str = "") -> None:
    """Success-rate curves and per-joint errors of one or more `summary()` results into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        c = r["success_curve"]
        ax1.plot(c["threshold_mm"], np.asarray(c["fraction"]) * 100, label=f"{name} ({r['mean_mm']:.2f} mm)")
        pj = r["per_joint_mm"]
        ax2.plot(range(len(pj)), pj, marker="o", label=name)
    ax1.set(
        xlabel="max joint error threshold (mm)",
        ylabel="frames within threshold (%)",
        xlim=(0, 80),
        ylim=(0, 100),
    )
    ax2.set(xlabel="joint", ylabel="mean error (mm)")
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
