"""Peers: MediaPipe Hands timed on the colour stream of the same frames, in its own virtualenv.

MediaPipe pins an old numpy/protobuf, so it never enters the project's environment: the frames are written
to an .npz, `tools/mediapipe_peer.py` runs under the peer venv's Python (made by `tools/mediapipe_env.sh`),
and its JSON comes back on stdout. A missing venv or script is a skip with the reason, not a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = REPO_ROOT / "tools" / "mediapipe_peer.py"
DEFAULT_VENV = REPO_ROOT / ".cache" / "mediapipe-venv"
CONFIGS = tuple(f"mediapipe_{m}_c{c}" for m in ("tracking", "detection") for c in (0, 1))


class PeerUnavailable(Exception):
    """The peer cannot run here; the message says why and how to get it."""


def mediapipe_python(venv: str | Path | None = None) -> Path:
    """The peer venv's interpreter: --mediapipe-venv, else $HANDSTREAM_MEDIAPIPE_VENV, else .cache/."""
    venv = Path(venv or os.environ.get("HANDSTREAM_MEDIAPIPE_VENV") or DEFAULT_VENV)
    py = venv / "bin" / "python"
    if not py.is_file():
        raise PeerUnavailable(f"no MediaPipe venv at {venv} (create it with `bash tools/mediapipe_env.sh`)")
    if not PEER_SCRIPT.is_file():
        raise PeerUnavailable(f"{PEER_SCRIPT} is missing (run from a source checkout)")
    return py


def run_mediapipe(
    frames_bgr: Sequence[np.ndarray],
    frames: int,
    warmup: int,
    venv: str | Path | None = None,
    modes: Sequence[str] = ("tracking", "detection"),
    complexities: Sequence[int] = (0, 1),
    timeout_s: float = 1800.0,
) -> dict:
    """Run the peer on these BGR uint8 frames; returns its JSON (`peers` holds one entry per config)."""
    py = mediapipe_python(venv)
    if not len(frames_bgr):
        raise InputError("the MediaPipe peer needs colour frames, and the source gave none")
    stack = np.stack([np.ascontiguousarray(f, dtype=np.uint8) for f in frames_bgr])
    if stack.ndim != 4 or stack.shape[-1] != 3:
        raise InputError(f"colour frames must be (H, W, 3) BGR, got {stack.shape[1:]}")
    with tempfile.TemporaryDirectory(prefix="handstream-mp-") as tmp:
        npz = Path(tmp) / "frames.npz"
        np.savez(npz, color_bgr=stack)
        cmd = [
            str(py),
            str(PEER_SCRIPT),
            "--npz",
            str(npz),
            "--frames",
            str(frames),
            "--warmup",
            str(warmup),
            "--modes",
            ",".join(modes),
            "--complexity",
            ",".join(str(c) for c in complexities),
        ]
        # The peer's own stderr (TFLite/absl chatter) is kept only for the error message.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise PeerUnavailable(f"MediaPipe peer failed (exit {proc.returncode}): {tail}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise PeerUnavailable(f"MediaPipe peer printed no JSON: {exc}") from exc
