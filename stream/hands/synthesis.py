"""Handedness by analysis by synthesis: the shipped pose engine knows only right hands. Run on a right
hand's crop it gives a skeleton that lies on the hand; run on a left hand's crop it still gives a right
hand's skeleton, which cannot lie on a left hand as well as the one it gives for the mirrored crop (a
mirrored left hand is a right hand). So the side whose skeleton explains the crop's depth better is the
hand's side -- a cue that needs no training of its own and assumes nothing about the camera's view.

How well a skeleton explains a crop (normalized cube coordinates, pixels by the crop's own mapping): the
share of joints that land on the hand's pixels, how far each such joint's depth is from the surface seen
there, and how far joints float in front of that surface (a joint is inside the hand: at or behind it).
"""

from __future__ import annotations

import numpy as np

# a joint more than this (normalized: 1 = half the cube, 150 mm) from the surface counts as this far
_CAP = 0.3


def skeleton_fit(crop: np.ndarray, joints_norm: np.ndarray) -> np.ndarray:
    """[joints off the hand (share), mean |joint depth - surface depth|, mean depth in front of the
    surface], all >= 0, smaller is better. `crop`: (S, S) normalized depth (1 = no hand);
    `joints_norm`: (J, 3) normalized cube coordinates."""
    s = crop.shape[0]
    j = np.asarray(joints_norm, np.float64).reshape(-1, 3)
    u = np.clip(np.rint((j[:, 0] + 1.0) * s / 2.0 - 0.5).astype(int), 0, s - 1)
    v = np.clip(np.rint((j[:, 1] + 1.0) * s / 2.0 - 0.5).astype(int), 0, s - 1)
    d = crop[v, u].astype(np.float64)
    on = d < 1.0
    if not on.any():
        return np.array([1.0, _CAP, _CAP])
    gap = j[on, 2] - d[on]  # > 0: behind the visible surface (inside the hand), as a joint should be
    return np.array(
        [1.0 - on.mean(), float(np.minimum(np.abs(gap), _CAP).mean()), float(np.clip(-gap, 0, _CAP).mean())]
    )


def chirality_features(pose_engine, crop: np.ndarray) -> np.ndarray:
    """How much better the mirrored crop's skeleton fits than the crop's own (the three `skeleton_fit`
    measures, crop's minus mirror's): > 0 says left. Two calls of the pose engine (its batch is one)."""
    return chirality_with_outputs(pose_engine, crop)[0]


def chirality_with_outputs(pose_engine, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`chirality_features`, and the pose engine's raw outputs on the crop and on its left-right mirror
    (`both_readings`)."""
    own, mir = both_readings(pose_engine, crop)
    return fit_difference(np.ascontiguousarray(crop, np.float32), own, mir), own, mir


def both_readings(pose_engine, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose engine's raw outputs on the crop and on its left-right mirror (as the pose stage mirrors a
    left hand in: `stream.stages.mirror_crop`), as the engine returns them: the readings of the hand as a
    right one and as a left one."""
    x = np.ascontiguousarray(crop, np.float32)
    m = np.ascontiguousarray(x[:, ::-1])
    s = x.shape[0]
    name = "joints" if "joints" in pose_engine.output_names else pose_engine.output_names[0]
    own = np.asarray(pose_engine.infer(x.reshape(1, 1, s, s))[name])
    mir = np.asarray(pose_engine.infer(m.reshape(1, 1, s, s))[name])
    return own, mir


def fit_difference(crop: np.ndarray, own: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """`skeleton_fit` of the crop's own skeleton minus that of the mirrored crop's (each (J, 3), or the
    engine's flat output); zeros (no evidence) when either skeleton holds a non-finite joint (the pose stage
    reports that frame as no hand)."""
    if not (np.all(np.isfinite(own)) and np.all(np.isfinite(mirrored))):
        return np.zeros(3)
    return skeleton_fit(crop, own) - skeleton_fit(np.ascontiguousarray(crop[:, ::-1]), mirrored)
