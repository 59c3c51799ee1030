"""`handstream eval smoothing`: measure the One Euro filter on synthetic hand motion with known ground truth.

The generator's smooth sequences give true 21-joint trajectories (mm); Gaussian noise of `--noise-mm`
per coordinate stands in for a pose engine's frame-to-frame error. For the raw (noisy) and each filtered
trajectory we report, over all joints and frames (after a short settling period):
  - jitter: RMS of the frame-to-frame acceleration |x[t+1] - 2 x[t] + x[t-1]| in mm/frame^2;
  - error: mean 3-D distance to the ground truth (mm);
  - lag: the time shift (ms) of the ground truth that best explains the output (argmin of the mean
    error over shifts of 0..200 ms, linear interpolation between frames).
Only the joints go through the generator's renderer, so this takes a few seconds per 100 frames.

    handstream eval smoothing --sequences 3 --frames 150 --noise-mm 4 --markdown
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from stream.smoothing import OneEuroConfig, OneEuroFilter


def true_trajectories(sequences: int, frames: int, fps: float, seed: int) -> list[np.ndarray]:
    """(frames, 21, 3) mm per sequence, from the generator (a different subject/scene per seed)."""
    from stream.frames import camera
    from stream.synth import HandSynthesizer, SceneConfig

    out = []
    for s in range(sequences):
        cfg = SceneConfig(camera=camera("d435_320x240"), distractors=False, body=False)
        syn = HandSynthesizer(cfg, seed=seed + s)
        out.append(np.stack([smp.joints_xyz_mm.astype(np.float64) for smp in syn.sequence(frames, fps=fps)]))
    return out


def run_filter(x: np.ndarray, fps: float, cfg: OneEuroConfig | None) -> np.ndarray:
    if cfg is None:
        return x
    f = OneEuroFilter(cfg)
    return np.stack([f(x[k], k / fps) for k in range(len(x))])


def jitter(y: np.ndarray) -> float:
    acc = y[2:] - 2 * y[1:-1] + y[:-2]
    return float(np.sqrt(np.mean(np.sum(acc**2, -1))))


def error(y: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(y - gt, axis=-1)))


def lag_ms(y: np.ndarray, gt: np.ndarray, fps: float, settle: int, max_ms: float = 200.0) -> float:
    t = np.arange(len(gt)) / fps
    best, best_err = 0.0, np.inf
    for shift in np.arange(0.0, max_ms + 1e-9, 2.0):
        ts = t - shift / 1000.0
        k = np.clip(ts * fps, 0, len(gt) - 1)
        k0 = np.floor(k).astype(int)
        k1 = np.minimum(k0 + 1, len(gt) - 1)
        w = (k - k0)[:, None, None]
        g = gt[k0] * (1 - w) + gt[k1] * w
        e = error(y[settle:], g[settle:])
        if e < best_err:
            best, best_err = shift, e
    return float(best)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="handstream eval smoothing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--noise-mm", type=float, default=4.0, help="Gaussian noise per coordinate (mm)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    gts = true_trajectories(args.sequences, args.frames, args.fps, args.seed)
    rng = np.random.default_rng(args.seed)
    noisy = [g + rng.normal(0, args.noise_mm, g.shape) for g in gts]
    d = OneEuroConfig()
    variants: list[tuple[str, OneEuroConfig | None]] = [
        ("raw (noisy input)", None),
        (f"default (min_cutoff {d.min_cutoff_hz:g} Hz, beta {d.beta:g})", d),
        ("min_cutoff 0.5, beta 0.02", OneEuroConfig(min_cutoff_hz=0.5, beta=0.02)),
        ("min_cutoff 2, beta 0.02", OneEuroConfig(min_cutoff_hz=2.0, beta=0.02)),
        ("min_cutoff 1, beta 0 (plain low-pass)", OneEuroConfig(min_cutoff_hz=1.0, beta=0.0)),
        ("min_cutoff 1, beta 0.1", OneEuroConfig(min_cutoff_hz=1.0, beta=0.1)),
    ]
    settle = min(10, args.frames // 4)
    truth_jitter = np.mean([jitter(g[settle:]) for g in gts])
    rows = []
    for name, cfg in variants:
        js, es, ls = [], [], []
        for g, x in zip(gts, noisy):
            y = run_filter(x, args.fps, cfg)
            js.append(jitter(y[settle:]))
            es.append(error(y[settle:], g[settle:]))
            ls.append(lag_ms(y, g, args.fps, settle))
        rows.append((name, float(np.mean(js)), float(np.mean(es)), float(np.mean(ls))))
    wall = time.perf_counter() - t0
    head = (
        f"{args.sequences} sequences x {args.frames} frames at {args.fps:g} fps, noise {args.noise_mm:g} mm "
        f"per coordinate; ground-truth jitter {truth_jitter:.2f} mm/frame^2; {wall:.1f} s"
    )
    if args.markdown:
        print(head + "\n")
        print("| trajectory | jitter (mm/frame²) | error vs GT (mm) | lag (ms) |")
        print("|---|---:|---:|---:|")
        for name, j, e, lag in rows:
            print(f"| {name} | {j:.2f} | {e:.2f} | {lag:.0f} |")
    else:
        print(head)
        for name, j, e, lag in rows:
            print(f"{name:45s} jitter {j:7.2f}  error {e:6.2f} mm  lag {lag:4.0f} ms")
    return 0
