"""Log-odds of a probability, clipped so that a network's 0 or 1 stays finite: the one conversion the
presence check's scores and the handedness cues' logistic combinations share."""

from __future__ import annotations

import numpy as np

P_CLIP = 1e-4  # probabilities are clipped to [P_CLIP, 1 - P_CLIP]: log-odds within +-9.21


def log_odds(p):
    """log(p / (1 - p)) of a probability (a float) or of an array of them (an array), `p` clipped."""
    q = np.clip(np.asarray(p, dtype=np.float64), P_CLIP, 1.0 - P_CLIP)
    out = np.log(q / (1.0 - q))
    return float(out) if out.ndim == 0 else out
