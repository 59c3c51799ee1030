"""The fit cue's weights (`stream.hands.handedness.FIT_CUE`) from the runtime's own hand-frames.

Two-hand generator sequences (`SceneConfig(two_hands=True)`, D435 320x240, as `train.handedness.evaluate`
runs them) go through the default two-hand pipeline; every hand-frame where the handedness stage ran and
whose centre lies on a generator hand gives the fit cue's log energy ratio (r = log((E_R + 1) / (E_L + 1)),
E the right-hand and the left-hand fit's depth energy per point) and the side it truly is. A logistic
regression on [r, 1] is fitted on the training seeds and scored per frame on the test seeds, beside the
shipped weights' per-frame answers:

    python -m train.handedness.fit_cue --train-seeds 100,200,300,400 --test-seeds 4242,5151 --sequences 20

Prints one JSON object. Uses no torch: only the runtime (about 3 s a sequence of 60 frames here).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def collect(seed: int, sequences: int, frames: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(log energy ratios, 1 for a left hand) of the hand-frames of `sequences` two-hand sequences."""
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import HandSynthesizer, SceneConfig

    from .evaluate import labelled, pipeline, which_hand

    synth = HandSynthesizer(SceneConfig(camera=KNOWN_CAMERAS["d435_320x240"], two_hands=True), seed)
    e, left = [], []
    with pipeline(True, 2) as p:
        for _ in range(sequences):
            p.reset()
            for s in synth.sequence(frames):
                frame, truth, _ = labelled(s, False)
                for h in p.process(frame).hands or ():
                    d = h.fields.get("handedness_fit_log_ratio")
                    side = which_hand(truth, h.com_xyz_mm)
                    if d is not None and side is not None:
                        e.append(float(d))
                        left.append(int(side == "left"))
    return np.array(e), np.array(left)


def design(r: np.ndarray) -> np.ndarray:
    """[r, 1]: the inputs of the cue's logistic regression."""
    return np.column_stack([np.asarray(r, np.float64), np.ones(len(r))])


def main(argv: list[str] | None = None) -> int:
    from stream.hands.handedness import FIT_CUE

    from .synthesis_fit import fit_logistic

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-seeds", default="100,200,300,400")
    ap.add_argument("--test-seeds", default="4242,5151")
    ap.add_argument("--sequences", type=int, default=20, help="sequences of 60 frames per training seed")
    ap.add_argument("--test-sequences", type=int, default=8)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.train_seeds.split(",")]
    parts = [collect(s, args.sequences) for s in seeds]
    e_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if len(e_tr) == 0 or len(set(y_tr.tolist())) < 2:
        raise SystemExit("fit_cue: the training sequences gave no hand-frames of both sides")
    w = fit_logistic(design(e_tr), y_tr)
    test = [collect(int(s), args.test_sequences) for s in args.test_seeds.split(",")]
    e_te, y_te = np.concatenate([p[0] for p in test]), np.concatenate([p[1] for p in test])
    x_te = design(e_te)
    print(
        json.dumps(
            {
                "weights": [round(float(v), 3) for v in w],
                "shipped": [round(float(v), 3) for v in FIT_CUE],
                "train_hand_frames": len(y_tr),
                "test_hand_frames": len(y_te),
                "test_per_frame": float(((x_te @ w > 0) == y_te).mean()) if len(y_te) else None,
                "test_per_frame_shipped": float(((x_te @ FIT_CUE > 0) == y_te).mean()) if len(y_te) else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
