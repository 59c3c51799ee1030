"""Fit the articulated hand model to the observed depth: the network proposes, the model disposes.

Model-based tracking in the manner of Tagliasacchi et al. 2015 / Tkach et al. 2016 (sphere-mesh hands, ICP
on depth plus a silhouette term), cut down to a per-frame budget of about a millisecond in numpy: the
engine's joints initialise the model by inverse kinematics, then a few damped Gauss-Newton steps minimise

    data       observed hand points (the crop's hand pixels, back-projected, subsampled) to the nearest
               model sphere's surface, Huber-weighted (a stray forearm pixel must not drag a finger);
    silhouette model sphere centres that project outside the crop's hand pixels pay their distance to the
               nearest hand pixel (the crop is metric, so pixels convert to mm at the cube's scale);
    free space a model sphere whose front surface lies in front of the observed depth at its pixel pays
               the gap (a camera sees through empty space, not through a hand);
    prior      the model's joints to the engine's joints, weakly (a wrong fit cannot run away);
    temporal   the model's joints to the previous frame's fitted joints;

over the global rotation (about the wrist), translation and the 20 joint angles, with analytic Jacobians.
Angles are projected onto the joint limits after every step, and the bone lengths are the model's, so the
skeleton out is always anatomically valid and keeps one user's proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .ik import inverse_kinematics
from .model import (
    LIMITS_RAD,
    N_PARAMS,
    HandModel,
    joint_rows,
    local_joints,
    point_rows,
    pose_model,
    rotation_update,
)


@dataclass(frozen=True)
class FitConfig:
    """Weights are in residual mm per unit (a data point's mm counts 1)."""

    iterations: int = 3
    # when tracking, the last frame's fit is the start: no inverse kinematics, and fewer steps from a start
    # that is already fitted; unless the engine's wrist is this far from the last fit's (the hand jumped)
    tracking_iterations: int = 2
    tracking_jump_mm: float = 30.0
    points: int = 128
    huber_mm: float = 8.0
    outlier_mm: float = 30.0  # data points farther than this from the model are not the hand
    forearm_frac: float = 0.06  # data points this far (x hand length) behind the wrist are the forearm
    w_data: float = 1.0
    w_silhouette: float = 0.5
    w_free_space: float = 0.5
    w_prior: float = 0.35
    w_temporal: float = (
        0.0  # measured on generator sequences: helps tracked hands, hurts lost ones (BENCHMARKS)
    )
    damping: float = 1e-2  # Levenberg-Marquardt lambda, relative to the diagonal
    free_space_margin_mm: float = 4.0


@dataclass(frozen=True, eq=False)
class Observation:
    """What the fitter looks at, cut from the pose stage's normalized crop: hand points in camera mm, the
    observed depth (mm, NaN off the hand) and the distance (crop pixels) to the nearest hand pixel, with
    its gradient, for the free-space and silhouette terms."""

    points: np.ndarray  # (N, 3)
    points_sq: np.ndarray  # (N,) |p|^2
    index: np.ndarray  # (N,) 0..N-1
    depth_mm: np.ndarray  # (S, S) the hand's depth, NaN off the hand
    raw_mm: np.ndarray  # (S, S) whatever the sensor saw there (NaN: nothing), inf: background assumed
    dist_px: np.ndarray  # (S, S) float32, 0 on the hand
    grad_u: np.ndarray  # (S, S)
    grad_v: np.ndarray
    proj: np.ndarray  # (4,) crop column = proj[0] x / z + proj[1], row = proj[2] y / z + proj[3]
    mm_per_px: float
    mirror: float = 1.0  # -1: the model is a right hand fitted to a left hand's points mirrored in x


def observe(
    crop, depth_mm: np.ndarray | None = None, n_points: int = 128, mirror: bool = False, slack_px: float = 1.5
) -> Observation | None:
    """The observation of a CubeCrop (stream.preprocess) cut from the frame's `depth_mm`: None when it holds
    too few hand pixels. Without the frame, every pixel off the hand counts as seen-through background."""
    d = crop.depth
    hand = d < 1.0
    rows, cols = np.nonzero(hand)
    if len(rows) < 20:
        return None
    pick = np.linspace(0, len(rows) - 1, min(n_points, len(rows))).astype(np.int64)
    r, c = rows[pick].astype(np.float64), cols[pick].astype(np.float64)
    pts = crop.crop_to_xyz(np.stack([c, r, d[rows[pick], cols[pick]].astype(np.float64)], 1))
    hand_mm = d.astype(np.float64) * crop.half_mm + crop.com_xyz_mm[2]
    if depth_mm is None:
        raw = np.where(hand, hand_mm, np.inf)
    else:
        src = depth_mm if depth_mm.dtype in (np.uint16, np.float32) else depth_mm.astype(np.float32)
        raw = cv2.warpAffine(src, crop.image_to_crop, (crop.size, crop.size), flags=cv2.INTER_NEAREST)
        raw = raw.astype(np.float64)
        raw[hand] = hand_mm[hand]
        raw[~(raw > 0)] = np.nan  # no measurement: no evidence either way
    depth_obs = np.where(hand, hand_mm, np.nan)
    # the sensor drops depth along silhouettes and across thin fingers, so the measured hand is smaller
    # than the hand: the silhouette term only counts what lies beyond a pixel's slack
    dist = np.maximum(
        cv2.distanceTransform((~hand).astype(np.uint8), cv2.DIST_L2, 3) - np.float32(slack_px), 0
    )
    gu = cv2.Sobel(dist, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)  # central differences
    gv = cv2.Sobel(dist, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    a, intr = crop.image_to_crop, crop.intrinsics
    proj = np.array(
        [a[0, 0] * intr.fx, a[0, 0] * intr.cx + a[0, 2], a[1, 1] * intr.fy, a[1, 1] * intr.cy + a[1, 2]]
    )
    sign = -1.0 if mirror else 1.0
    if mirror:
        pts[:, 0] *= -1.0
    pts = np.ascontiguousarray(pts)
    return Observation(
        pts,
        (pts * pts).sum(1),
        np.arange(len(pts)),
        depth_obs,
        raw,
        dist,
        gu,
        gv,
        proj,
        crop.cube_mm / crop.size,
        sign,
    )


@dataclass(frozen=True, eq=False)
class FitResult:
    joints: np.ndarray  # (21, 3) camera mm
    rot: np.ndarray
    trans: np.ndarray
    pose: np.ndarray  # (20,) radians, within limits
    data_rms_mm: float  # RMS point-to-surface distance of the data points at the last iteration


_DIAG = np.diag_indices(N_PARAMS)
_MIRROR = np.array([-1.0, 1.0, 1.0])
_EZ = np.array([0.0, 0.0, 1.0])


def fit_hand(
    model: HandModel,
    obs: Observation,
    engine_joints: np.ndarray,
    config: FitConfig = FitConfig(),
    previous: np.ndarray | None = None,
    warm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> FitResult:
    """Fit `model` to `obs`, starting from the inverse kinematics of the engine's joints (camera mm), or,
    when tracking, from `warm` (rot, trans, pose of the last frame's FitResult) for
    `config.tracking_iterations` steps. `previous`: the last frame's fitted joints, for the temporal term."""
    prior = np.asarray(engine_joints, dtype=np.float64)
    prev = None if previous is None or config.w_temporal <= 0 else np.asarray(previous, dtype=np.float64)
    if obs.mirror < 0:
        prior = prior * _MIRROR
        prev = None if prev is None else prev * _MIRROR
    cfg = config
    if warm is None:
        rot, trans, pose = inverse_kinematics(model, prior)
        iterations = cfg.iterations
    else:
        rot, trans, pose = warm
        iterations = cfg.tracking_iterations
    targets = [(cfg.w_prior, prior.reshape(-1))]
    if prev is not None:
        targets.append((cfg.w_temporal, prev.reshape(-1)))
    rms = float("nan")
    for _ in range(iterations):
        posed = pose_model(model, rot, trans, pose)
        vec, idx, wt, res, rms = _terms(model, obs, posed, cfg)
        jac = point_rows(posed, vec, idx) * wt[:, None]
        h = jac.T @ jac
        g = jac.T @ res
        # the joint terms (prior, temporal) are point rows with x, y, z directions: one J^T J for all
        jj = joint_rows(posed)
        jt = jj.T
        w2 = sum(w * w for w, _ in targets)
        h += w2 * (jt @ jj)
        flat = posed.joints.reshape(-1)
        for w, target in targets:
            g += (w * w) * (jt @ (flat - target))
        h[_DIAG] *= 1.0 + cfg.damping
        h[_DIAG] += 1e-6
        step = np.linalg.solve(h, -g)
        rot = rotation_update(step[0:3]) @ rot
        trans = trans + step[3:6]
        pose = np.clip(pose + step[6:], LIMITS_RAD[:, 0], LIMITS_RAD[:, 1])
    joints = local_joints(model, pose)[0] @ rot.T + trans
    if obs.mirror < 0:
        joints = joints * _MIRROR
    return FitResult(joints, rot, trans, pose, rms)


def _terms(model: HandModel, obs: Observation, posed, cfg: FitConfig) -> tuple:
    """The depth terms as point rows: per residual a direction (R, 3), the model point it measures (R,),
    its weight (R,) and weighted residual (R,) (mm); and the data points' RMS distance."""
    c = posed.centres
    # data: r = |p - c| - radius, dr/dc = -n (n the unit direction from the centre to the point); Huber
    # weights (IRLS), and none for points behind the wrist (the forearm) or far from every sphere
    d2 = obs.points_sq[:, None] + (c * c).sum(1) - 2.0 * (obs.points @ c.T)
    surf = np.sqrt(np.maximum(d2, 1e-12)) - model.radii
    k = surf.argmin(1)
    e = surf[obs.index, k]
    n = obs.points - c[k]
    n /= (e + model.radii[k])[:, None]
    a = np.abs(e)
    w = np.sqrt(np.minimum(1.0, cfg.huber_mm / np.maximum(a, 1e-9)))
    behind = (obs.points - posed.trans) @ posed.axis_y < -cfg.forearm_frac * model.shape.length_mm
    w = cfg.w_data * w * ~(behind | (a > cfg.outlier_mm))
    vecs, idxs, wts, res = [n], [k], [-w], [w * e]
    # silhouette and free space at each sphere centre's crop pixel
    x, y, z = obs.mirror * c[:, 0], c[:, 1], np.maximum(c[:, 2], 1.0)
    p = obs.proj
    size = obs.dist_px.shape[0] - 1
    ci = np.clip(np.rint(p[0] * x / z + p[1]), 0, size).astype(np.intp)
    ri = np.clip(np.rint(p[2] * y / z + p[3]), 0, size).astype(np.intp)
    flat = ri * (size + 1) + ci
    dt = obs.dist_px.ravel()[flat]
    # only where the sensor saw through to something behind the sphere: off the hand but in front of it
    # is an occluder (or the other hand), and no measurement says nothing
    out = np.flatnonzero((dt > 0) & (obs.raw_mm.ravel()[flat] > z))
    if len(out):
        zz, xx, yy = z[out], x[out], y[out]
        gu, gv = obs.grad_u.ravel()[flat[out]], obs.grad_v.ravel()[flat[out]]
        # d(col)/d(c) = p0 (mirror / z, 0, -x / z^2); d(row)/d(c) = p2 (0, 1 / z, -y / z^2)
        ws = cfg.w_silhouette * obs.mm_per_px
        grad = np.empty((len(zz), 3))
        grad[:, 0] = gu * (p[0] * obs.mirror) / zz
        grad[:, 1] = gv * p[2] / zz
        grad[:, 2] = -(gu * p[0] * xx + gv * p[2] * yy) / (zz * zz)
        vecs.append(grad)
        idxs.append(out)
        wts.append(np.full(len(out), ws))
        res.append(ws * dt[out])
    gap = c[:, 2] - model.radii - (obs.depth_mm.ravel()[flat] - cfg.free_space_margin_mm)
    viol = np.flatnonzero(gap < 0)  # NaN (off the hand) compares False
    if len(viol):
        vecs.append(np.broadcast_to(_EZ, (len(viol), 3)))
        idxs.append(viol)
        wts.append(np.full(len(viol), cfg.w_free_space))
        res.append(cfg.w_free_space * gap[viol])
    rms = float(np.sqrt(np.dot(e, e) / len(e)))
    return np.concatenate(vecs), np.concatenate(idxs), np.concatenate(wts), np.concatenate(res), rms
