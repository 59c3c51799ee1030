"""PNG plots of a bench run: a latency histogram per stage, and latency vs. accuracy of the model variants.

matplotlib belongs to the train/dev extras, not to the runtime, so it is imported inside the functions and
a missing matplotlib turns into a note (`PlotSkipped`) rather than a failed benchmark. The object-oriented
Figure + Agg canvas API is used instead of pyplot so no global figure state or GUI backend is involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..outputs import writing_failed


class PlotSkipped(Exception):
    """A plot could not be made (no matplotlib, nothing to plot); the message says why."""


def _figure(width_in: float, height_in: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotSkipped(
            "matplotlib is not installed (pip install 'handstream[dev]'); plots skipped"
        ) from exc
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise writing_failed(path, exc) from None
    return path


def stage_histograms(samples_ms: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """One histogram per stage (and whatever else is in `samples_ms`, e.g. end_to_end), p50/p99 marked."""
    items = [(k, np.asarray(v, np.float64)) for k, v in samples_ms.items() if len(v)]
    if not items:
        raise PlotSkipped("no latency samples to plot")
    cols = min(3, len(items))
    rows = math.ceil(len(items) / cols)
    fig = _figure(4.0 * cols, 2.8 * rows)
    for i, (name, a) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        hi = float(np.percentile(a, 99.5)) if a.size > 1 else float(a.max())
        ax.hist(np.clip(a, None, hi), bins=40, color="#4477aa")
        for p, style in ((50, "-"), (99, "--")):
            ax.axvline(
                float(np.percentile(a, p)), color="#cc3311", linestyle=style, linewidth=1, label=f"p{p}"
            )
        ax.set_title(f"{name} (n={a.size})", fontsize=9)
        ax.set_xlabel("ms", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def latency_vs_accuracy(
    points: Mapping[str, tuple[float, float]], path: str | Path, accuracy_label: str = "mean 3D error (mm)"
) -> Path:
    """Scatter of (latency p50 ms, accuracy) per model variant, each point labelled with its name."""
    pts = {
        k: v for k, v in points.items() if all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
    }
    if not pts:
        raise PlotSkipped("no variant has both a latency and an accuracy to plot")
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, (lat, acc) in pts.items():
        ax.scatter([lat], [acc], color="#4477aa")
        ax.annotate(name, (lat, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("engine latency p50 (ms)")
    ax.set_ylabel(accuracy_label)
    ax.set_title("Model variants: latency vs accuracy", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
