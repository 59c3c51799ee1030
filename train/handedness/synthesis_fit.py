"""The analysis-by-synthesis cue on handedness crops (`stream.hands.synthesis`): its three measures and
the engine's P(left) on a crops file, and the logistic combination fitted on one file and scored on another.

    python -m train.handedness.synthesis_fit --train TRAIN.npz --test TEST.npz [--n-train 3000] [--seed 0]

Prints each measure's accuracy alone, the engine's, and the combination's on the test crops, with the
weights (`stream.hands.handedness.COMBINE`: measures scaled by 10). Uses no torch: only the runtime.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from stream.hands.odds import log_odds


def features(path: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(engine P(left), the three measures, labels) of `n` crops of a crops file (all when n <= 0)."""
    from engines import load_engine
    from stream.hands.synthesis import chirality_features

    z = np.load(path)
    depth, left = z["depth"], z["left"].astype(int)
    idx = np.arange(len(left))
    if 0 < n < len(left):
        idx = np.sort(np.random.default_rng(seed).choice(len(left), n, replace=False))
    pose = load_engine("pose", backend="onnxruntime", threads=1)
    hand = load_engine("handedness", backend="onnxruntime", threads=1)
    out = hand.output_names[0]
    p, f = [], []
    for i in idx:
        x = depth[i].astype(np.float32)
        f.append(chirality_features(pose, x))
        p.append(float(np.asarray(hand.infer(x[None, None])[out]).flat[0]))
    return np.array(p), np.array(f), left[idx]


def design(p: np.ndarray, f: np.ndarray) -> np.ndarray:
    """[engine logit, measures x 10, 1]: the inputs of the combination."""
    return np.column_stack([log_odds(np.asarray(p)), f * 10.0, np.ones(len(p))])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Weights of an L2-regularised logistic regression by Newton's method."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        g = x.T @ (p - y) / len(y) + l2 * w
        h = (x * (p * (1 - p))[:, None]).T @ x / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(h, g)
    return w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    p_tr, f_tr, y_tr = features(args.train, args.n_train, args.seed)
    p_te, f_te, y_te = features(args.test, 0, args.seed)
    w = fit_logistic(design(p_tr, f_tr), y_tr)
    x_te = design(p_te, f_te)
    rep = {
        "weights": [round(float(v), 3) for v in w],
        "test_crops": len(y_te),
        "engine": float(((p_te > 0.5) == y_te).mean()),
        "measures_alone": [float(((f_te[:, k] > 0) == y_te).mean()) for k in range(f_te.shape[1])],
        "combined": float(((x_te @ w > 0) == y_te).mean()),
    }
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
