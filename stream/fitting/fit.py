"""Fit the articulated hand model to the observed depth: the network proposes, the model disposes.

Model-based tracking in the manner of Tagliasacchi et al. 2015 / Tkach et al. 2016 (sphere-mesh hands, ICP
on depth plus a silhouette term), cut down to a per-frame budget of under a millisecond: the engine's
joints initialise the model by inverse kinematics, then a few damped Gauss-Newton steps minimise

    data       observed hand points (the crop's hand pixels, back-projected, subsampled) to the nearest
               model sphere's surface, Huber-weighted (a stray forearm pixel must not drag a finger);
    silhouette model sphere centres that project outside the crop's hand pixels pay their distance to the
               nearest hand pixel (the crop is metric, so pixels convert to mm at the cube's scale);
    free space a model sphere whose front surface lies in front of the observed depth at its pixel pays
               the gap (a camera sees through empty space, not through a hand);
    prior      the model's joints to the engine's joints, weakly (a wrong fit cannot run away);
    pose prior the joint angles to the nearest Gaussian of a mixture of the poses hands take (pose_prior.py),
               where given: a finger the depth cannot see follows its neighbours, not only the engine;
    temporal   the model's joints to the previous frame's fitted joints;

over the global rotation (about the wrist), translation and the 20 joint angles, with analytic Jacobians.
Angles are projected onto the joint limits after every step, and the bone lengths are the model's, so the
skeleton out is always anatomically valid and keeps one user's proportions. A finger the engine bent the
wrong way is a local minimum the descent cannot leave, so where the fit's own evidence says the start was
bad (its energy per hand point, which ranks the tuning set's errors: BENCHMARKS.md, "Model fitting"), every
finger is re-seeded (Sharp et al. 2015): straight, then curled, each seed followed by whole-hand steps, kept
where the energy drops; an effort paid on those frames only. (Re-seeding the worst finger alone on every
frame, over its own angles, is an option. Global alternatives, the hand turned or flipped, were tried and
left out: the energy could not tell them from the engine's start.)

The numpy code here is the reference; `observe` and `fit_hand` run the same arithmetic compiled with numba
(kernels.py) unless told `compiled=False` or numba does not import.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..compiled import announce_compile, not_compiled
from .ik import inverse_kinematics
from .model import (
    _DOF_INDEX,
    LIMITS_RAD,
    N_PARAMS,
    RESEED_RAD,
    HandModel,
    build_model,
    default_shape,
    point_rows,
    pose_joints,
    pose_model,
    rotation_update,
)
from .pose_prior import N_ANGLES, PosePrior, component_energies


@dataclass(frozen=True)
class FitConfig:
    """Weights are in residual mm per unit (a data point's mm counts 1)."""

    # 6 steps x 256 points: chosen on the tuning set (seed 77) within the 1 ms a hand the compiled fit
    # has (3 x 128 was the numpy fit's budget; BENCHMARKS.md, "Model fitting")
    iterations: int = 6
    # when tracking, the last frame's fit is a second start: no inverse kinematics, and one step from a start
    # that is already fitted (two were no better on generator sequences); unless the engine's wrist is this
    # far from the last fit's (the hand jumped)
    tracking_iterations: int = 1
    tracking_jump_mm: float = 30.0
    points: int = 256
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
    # re-seeding (Sharp et al. 2015), after the descent: this many fingers of the highest own energy (their
    # spheres' data, silhouette and free-space terms), each reset straight and curled and descended over its
    # 4 angles alone for `reseed_iterations` steps, a seed kept where it lowers the energy; it reaches a
    # finger the engine bent the wrong way, which the descent from the engine's start cannot. Off by default:
    # the rescue below re-seeds every finger where the energy says the start was bad, and with it the worst
    # finger on every frame bought nothing more on the tuning set for 0.15 ms a frame (BENCHMARKS.md,
    # "Model fitting")
    reseed_fingers: int = 0
    reseed_iterations: int = 1
    # rescue of a bad start: where the energy at the result is above `rescue_energy` per hand point (mm^2),
    # the `rescue_fingers` fingers of the highest own energy are re-seeded straight and curled, each seed
    # followed by `rescue_iterations` whole-hand steps, a seed kept where it lowers the energy. Its cost
    # (~20 steps) is paid only on the frames whose own evidence says the start was bad (BENCHMARKS.md,
    # "Model fitting"); 0 fingers: never
    rescue_energy: float = 5.0
    rescue_fingers: int = 5
    rescue_iterations: int = 2
    # the pose prior (pose_prior.py) and its weight: no term without a prior. The fit stage uses the shipped
    # mixture, the size measurement's candidate fits (SizeFitConfig) the shipped single Gaussian. Weight 5
    # chosen on the tuning sets (seeds 78, 77; BENCHMARKS.md, "Model fitting")
    w_pose_prior: float = 5.0
    pose_prior: PosePrior | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class Observation:
    """What the fitter looks at, cut from the pose stage's normalized crop: hand points in camera mm, the
    observed depth (mm, NaN off the hand) and the distance (crop pixels) to the nearest hand pixel, with
    its gradient, for the free-space and silhouette terms. Images are stored flat (S * S,): the fitter
    reads them at the pixels of the model's spheres."""

    points: np.ndarray  # (N, 3)
    # the nearest-sphere search in float32 about `origin` (coordinates of a few hundred mm lose nothing
    # that picking a sphere needs): -2 (p - origin) (N, 3) and |p - origin|^2 (N, 1)
    origin: np.ndarray
    points_m2: np.ndarray
    points_sq: np.ndarray
    depth_mm: np.ndarray  # (S * S,) float32 the hand's depth, NaN off the hand
    raw_mm: np.ndarray  # (S * S,) whatever the sensor saw there (0: nothing; inf: background assumed)
    dist_px: np.ndarray  # (S * S,) float32, 0 on the hand
    grad_u: np.ndarray  # (S * S,)
    grad_v: np.ndarray
    proj: np.ndarray  # (4,) crop column = proj[0] x / z + proj[1], row = proj[2] y / z + proj[3]
    mm_per_px: float
    size: int  # S
    mirror: float = 1.0  # -1: the model is a right hand fitted to a left hand's points mirrored in x

    @property
    def scale_uv(self) -> np.ndarray:
        """(2, 1) column and row per unit of x / z and y / z (x mirrored back to the image)."""
        return np.array([[self.proj[0] * self.mirror], [self.proj[2]]])


def observe(
    crop,
    depth_mm: np.ndarray | None = None,
    n_points: int = FitConfig.points,
    mirror: bool = False,
    slack_px: float = 1.5,
    compiled: bool = True,
) -> Observation | None:
    """The observation of a CubeCrop (stream.preprocess) cut from the frame's `depth_mm`: None when it holds
    too few hand pixels. Without the frame, every pixel off the hand counts as seen-through background.
    The points are an even stride through the hand's pixels (deterministic, no sorting or random draw).
    `compiled`: the per-pixel part by a numba kernel when numba imports; False: numpy (the reference)."""
    d = crop.depth
    size = int(d.shape[0])
    a, intr = crop.image_to_crop, crop.intrinsics
    proj = np.array(
        [a[0, 0] * intr.fx, a[0, 0] * intr.cx + a[0, 2], a[1, 1] * intr.fy, a[1, 1] * intr.cy + a[1, 2]]
    )
    if compiled and _kernels is not None and d.dtype == np.float32 and d.flags.c_contiguous:
        count, pts, depth_obs, off_u8 = _kernels.observe_kernel(
            d, float(crop.half_mm), float(crop.com_xyz_mm[2]), proj, int(n_points), bool(mirror)
        )
        if count < 20:
            return None
    else:
        off_hand = d >= 1.0
        flat = np.flatnonzero(~off_hand)
        if len(flat) < 20:
            return None
        n = min(n_points, len(flat))
        pick = (np.arange(n) * ((len(flat) - 1) / max(n - 1, 1))).astype(np.intp)
        pick[-1] = len(flat) - 1
        sel = flat[pick]
        z = d.ravel()[sel].astype(np.float64) * crop.half_mm + crop.com_xyz_mm[2]
        pts = np.empty((n, 3))
        pts[:, 0] = (sel % size - proj[1]) * z / proj[0]
        pts[:, 1] = (sel // size - proj[3]) * z / proj[2]
        pts[:, 2] = z
        if mirror:
            pts[:, 0] *= -1.0
        hand_mm = d * np.float32(crop.half_mm) + np.float32(crop.com_xyz_mm[2])
        depth_obs = np.where(off_hand, np.float32(np.nan), hand_mm).ravel()
        off_u8 = off_hand.view(np.uint8)
    if depth_mm is None:
        raw = np.full(size * size, np.inf, dtype=np.float32)
    else:
        # only read off the hand (where the silhouette term looks): what lies behind a sphere there
        src = depth_mm if depth_mm.dtype in (np.uint16, np.float32) else depth_mm.astype(np.float32)
        raw = cv2.warpAffine(src, crop.image_to_crop, (size, size), flags=cv2.INTER_NEAREST)
        raw = raw.ravel().astype(np.float32, copy=False)  # one dtype for the compiled kernels
    # the sensor drops depth along silhouettes and across thin fingers, so the measured hand is smaller
    # than the hand: the silhouette term only counts what lies beyond a pixel's slack
    dist = cv2.distanceTransform(off_u8, cv2.DIST_L2, 3)
    if compiled and _kernels is not None:
        dist, gu, gv, origin, m2, sq = _kernels.finish_observation_kernel(dist, float(slack_px), pts)
    else:
        dist = np.maximum(dist - np.float32(slack_px), np.float32(0.0))
        gu = cv2.Sobel(dist, cv2.CV_32F, 1, 0, ksize=1, scale=0.5).ravel()  # central differences
        gv = cv2.Sobel(dist, cv2.CV_32F, 0, 1, ksize=1, scale=0.5).ravel()
        dist = dist.ravel()
        origin = pts.mean(0)
        rel = (pts - origin).astype(np.float32)
        m2, sq = -2.0 * rel, (rel * rel).sum(1, keepdims=True)
    return Observation(
        points=pts,
        origin=origin,
        points_m2=m2,
        points_sq=sq,
        depth_mm=depth_obs,
        raw_mm=raw,
        dist_px=dist,
        grad_u=gu,
        grad_v=gv,
        proj=proj,
        mm_per_px=crop.cube_mm / crop.size,
        size=size,
        mirror=-1.0 if mirror else 1.0,
    )


def _load_kernels():
    """The compiled kernels, or None where numba does not import (the numpy reference then runs)."""
    try:
        from . import kernels
    except ImportError:
        return None
    return kernels


_kernels = _load_kernels()


def fit_kernels():
    """The compiled kernels module, or None where numba is missing or could not compile them here
    (`compile_kernels` returned False): callers then run their numpy reference."""
    return _kernels


@dataclass(frozen=True, eq=False)
class FitResult:
    joints: np.ndarray  # (21, 3) camera mm
    rot: np.ndarray
    trans: np.ndarray
    pose: np.ndarray  # (20,) radians, within limits
    data_rms_mm: float  # RMS point-to-surface distance of the data points at the last iteration
    # the energy (sum of squared weighted residuals, mm^2) at the result: fits of one frame from several
    # starts compare by it
    energy: float = math.nan
    rescued: bool = False  # the energy said the start was bad, and the rescue's seeds were tried
    prior_energy: float = 0.0  # the pose prior's share of `energy`

    @property
    def depth_energy(self) -> float:
        """The energy less the pose prior's share: what the depth and the engine's joints say of the fit,
        which the gates read (a pose the prior finds unusual is not by itself a bad start)."""
        return self.energy - self.prior_energy


_DIAG = np.diag_indices(N_PARAMS)
_MIRROR = np.array([-1.0, 1.0, 1.0])
_EZ = np.array([0.0, 0.0, 1.0])
_EYE_ROWS = np.tile(np.eye(3), (21, 1))  # x, y, z of each joint
_LO, _HI = LIMITS_RAD[:, 0].copy(), LIMITS_RAD[:, 1].copy()


def fit_hand(
    model: HandModel,
    obs: Observation,
    engine_joints: np.ndarray,
    config: FitConfig = FitConfig(),
    previous: np.ndarray | None = None,
    warm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    compiled: bool = True,
) -> FitResult:
    """Fit `model` to `obs`, starting from the inverse kinematics of the engine's joints (camera mm), or,
    when tracking, from `warm` (rot, trans, pose of the last frame's FitResult) for
    `config.tracking_iterations` steps. `previous`: the last frame's fitted joints, for the temporal term.
    `compiled`: the numba kernels (kernels.py) when numba imports; False: the numpy reference."""
    prior = np.asarray(engine_joints, dtype=np.float64)
    prev = None if previous is None or config.w_temporal <= 0 else np.asarray(previous, dtype=np.float64)
    if obs.mirror < 0:
        prior = prior * _MIRROR
        prev = None if prev is None else prev * _MIRROR
    if compiled and _kernels is not None:
        return _fit_compiled(model, obs, prior, prev, config, warm)
    return _fit_numpy(model, obs, prior, prev, config, warm)


def _fit_numpy(
    model: HandModel,
    obs: Observation,
    prior: np.ndarray,
    prev: np.ndarray | None,
    cfg: FitConfig,
    warm: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> FitResult:
    """The reference: numpy, one array operation per term (the compiled kernels must agree with it)."""
    if warm is None:
        rot, trans, pose = inverse_kinematics(model, prior)
        iterations = cfg.iterations
    else:
        rot, trans, pose = warm
        iterations = cfg.tracking_iterations
    # the joint terms (prior, temporal) are point rows too: x, y, z of every joint, towards a target
    joint_terms = [(cfg.w_prior, prior.reshape(-1))]
    if prev is not None:
        joint_terms.append((cfg.w_temporal, prev.reshape(-1)))
    rot, trans, pose, rms = _steps(model, obs, cfg, joint_terms, rot, trans, pose, iterations)
    energy, own = _energy(model, obs, pose_model(model, rot, trans, pose), cfg, joint_terms)
    if cfg.reseed_fingers > 0:
        pose, energy = _reseed(model, obs, cfg, joint_terms, rot, trans, pose, energy, own)
    # the gate reads the depth's and the engine's evidence: the energy less the pose prior's share
    depth_energy = energy - _prior_energy(cfg, pose)
    rescued = cfg.rescue_fingers > 0 and depth_energy > cfg.rescue_energy * len(obs.points)
    if rescued:
        rot, trans, pose, energy = _rescue(model, obs, cfg, joint_terms, rot, trans, pose, energy, own)
    joints = pose_model(model, rot, trans, pose).joints.copy()
    if obs.mirror < 0:
        joints = joints * _MIRROR
    return FitResult(joints, rot, trans, pose, rms, energy, rescued, _prior_energy(cfg, pose))


def _steps(
    model: HandModel,
    obs: Observation,
    cfg: FitConfig,
    joint_terms: list,
    rot: np.ndarray,
    trans: np.ndarray,
    pose: np.ndarray,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """`iterations` damped Gauss-Newton steps over all 26 parameters, angles projected onto the limits
    after each: (rot, trans, pose, the data RMS at the last step's start)."""
    rms = float("nan")
    for _ in range(iterations):
        posed = pose_model(model, rot, trans, pose)
        jac, r, rms, _ = _system(model, obs, posed, cfg, joint_terms)
        h = jac.T @ jac
        h[_DIAG] *= 1.0 + cfg.damping
        h[_DIAG] += 1e-6
        step = np.linalg.solve(h, -(jac.T @ r))
        rot = rotation_update(step[0:3]) @ rot
        trans = trans + step[3:6]
        pose = np.minimum(np.maximum(pose + step[6:], _LO), _HI)
    return rot, trans, pose, rms


def _system(model: HandModel, obs: Observation, posed, cfg: FitConfig, joint_terms: list) -> tuple:
    """The weighted Jacobian (R, 26) and residuals (R,) of every term at `posed`, the data RMS and each
    chain's own energy (6,)."""
    vecs, idxs, wts, res, rms, own = _terms(model, obs, posed, cfg)
    k = len(model.radii)
    flat = posed.joints.reshape(-1)
    for w, target in joint_terms:
        vecs.append(_EYE_ROWS)
        idxs.append(np.repeat(np.arange(k, k + 21), 3))
        wts.append(np.full(63, w))
        res.append(w * (flat - target))
    jac = point_rows(posed, np.concatenate(vecs), np.concatenate(idxs))
    jac *= np.concatenate(wts)[:, None]
    r = np.concatenate(res)
    prior = _pose_prior_terms(cfg)
    if prior is not None:  # w L_k^T (theta - mean_k) of the nearest component k: rows over the angles only
        means, _, roots, _ = prior
        k = _prior_component(prior, posed.pose)
        rows = np.zeros((N_ANGLES, N_PARAMS))
        rows[:, 6:] = roots[k]
        jac, r = np.vstack([jac, rows]), np.concatenate([r, roots[k] @ (posed.pose - means[k])])
    return jac, r, rms, own


def _energy(model: HandModel, obs: Observation, posed, cfg: FitConfig, joint_terms: list) -> tuple:
    """(the energy, each chain's own energy (6,)) at `posed`."""
    _, _, _, res, _, own = _terms(model, obs, posed, cfg)
    flat = posed.joints.reshape(-1)
    res += [w * (flat - target) for w, target in joint_terms if w > 0]
    r = np.concatenate(res)
    return float(r @ r) + _prior_energy(cfg, posed.pose), own


def _pose_prior_terms(cfg: FitConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(means, w^2 precisions, w L_k^T, w^2 c_k) of the config's pose prior (pose_prior.py), or None when it
    has none or weight 0."""
    if cfg.pose_prior is None or cfg.w_pose_prior <= 0:
        return None
    return _weighted_prior(cfg.pose_prior, float(cfg.w_pose_prior))


def _prior_component(prior: tuple, pose: np.ndarray) -> int:
    """The component of lowest energy at `pose` (the first of equal ones, as the kernel)."""
    return int(np.argmin(component_energies(prior, pose)))


def _prior_energy(cfg: FitConfig, pose: np.ndarray) -> float:
    """The pose prior's energy at `pose` (0 without one): its nearest component's."""
    prior = _pose_prior_terms(cfg)
    if prior is None:
        return 0.0
    return float(component_energies(prior, pose).min())


@functools.lru_cache(maxsize=8)
def _weighted_prior(prior: PosePrior, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(_c(a) for a in prior.weighted(weight))


def _reseed(
    model: HandModel,
    obs: Observation,
    cfg: FitConfig,
    joint_terms: list,
    rot: np.ndarray,
    trans: np.ndarray,
    pose: np.ndarray,
    energy: float,
    own: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Per-finger re-seeding: the `cfg.reseed_fingers` fingers of the highest own energy, worst first, each
    reset straight and curled (model.RESEED_RAD) and descended over its 4 angles alone (a 4 x 4 system; the
    rest of the hand stays where the descent left it); a seed is kept where it lowers the whole energy."""
    for c in np.argsort(-own[:5], kind="stable")[: cfg.reseed_fingers]:
        dofs = _DOF_INDEX[:, c]
        for seed in RESEED_RAD[:, :, c]:
            trial = pose.copy()
            trial[dofs[1:]] = np.clip(seed, _LO[dofs[1:]], _HI[dofs[1:]])
            for _ in range(cfg.reseed_iterations):
                jac, r, _, _ = _system(model, obs, pose_model(model, rot, trans, trial), cfg, joint_terms)
                sub = jac[:, 6 + dofs]
                h = sub.T @ sub
                h[np.diag_indices(4)] *= 1.0 + cfg.damping
                h[np.diag_indices(4)] += 1e-6
                step = np.linalg.solve(h, -(sub.T @ r))
                trial[dofs] = np.minimum(np.maximum(trial[dofs] + step, _LO[dofs]), _HI[dofs])
            e, _ = _energy(model, obs, pose_model(model, rot, trans, trial), cfg, joint_terms)
            if e < energy:
                pose, energy = trial, e
    return pose, energy


def _rescue(
    model: HandModel,
    obs: Observation,
    cfg: FitConfig,
    joint_terms: list,
    rot: np.ndarray,
    trans: np.ndarray,
    pose: np.ndarray,
    energy: float,
    own: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The rescue of a fit whose energy says its start was bad: the `cfg.rescue_fingers` fingers of the
    highest own energy (after the descent), worst first, each reset straight and curled and followed by
    `cfg.rescue_iterations` whole-hand steps, so the palm and the other fingers re-settle around the seed;
    a seed is kept where it lowers the whole energy, and the next finger starts from what was kept."""
    for c in np.argsort(-own[:5], kind="stable")[: cfg.rescue_fingers]:
        dofs = _DOF_INDEX[1:, c]
        for seed in RESEED_RAD[:, :, c]:
            trial = pose.copy()
            trial[dofs] = np.clip(seed, _LO[dofs], _HI[dofs])
            t_rot, t_trans, trial, _ = _steps(
                model, obs, cfg, joint_terms, rot, trans, trial, cfg.rescue_iterations
            )
            e, _ = _energy(model, obs, pose_model(model, t_rot, t_trans, trial), cfg, joint_terms)
            if e < energy:
                rot, trans, pose, energy = t_rot, t_trans, trial, e
    return rot, trans, pose, energy


def _terms(model: HandModel, obs: Observation, posed, cfg: FitConfig) -> tuple:
    """The depth terms as point rows: lists of per residual directions (R, 3), the model points they measure
    (R,), weights (R,) and weighted residuals (R,) (mm); the data points' RMS distance; and each chain's own
    energy (6,): the data terms of the points nearest its spheres, its spheres' silhouette and free space
    (5: the palm)."""
    c = posed.centres
    # data: r = |p - c| - radius, dr/dc = -n (n the unit direction from the centre to the point); the
    # nearest sphere surface by one float32 (N, K) block, the residual itself in float64; Huber weights
    # (IRLS), and none for points behind the wrist (the forearm) or far from every sphere
    c32 = (c - obs.origin).astype(np.float32)
    d2 = obs.points_m2 @ c32.T
    d2 += obs.points_sq
    d2 += (c32 * c32).sum(1)
    np.maximum(d2, np.float32(1e-12), out=d2)
    np.sqrt(d2, out=d2)
    d2 -= model.radii32
    k = d2.argmin(1)
    n = obs.points - c[k]
    dist = np.sqrt((n * n).sum(1))
    n /= dist[:, None]
    e = dist - model.radii[k]
    a = np.abs(e)
    w = np.sqrt(np.minimum(1.0, cfg.huber_mm / np.maximum(a, 1e-9)))
    behind = (obs.points - posed.trans) @ posed.axis_y < -cfg.forearm_frac * model.shape.length_mm
    w *= cfg.w_data * ~(behind | (a > cfg.outlier_mm))
    vecs, idxs, wts, res = [n], [k], [-w], [w * e]
    own = np.bincount(model.point_chain[k], (w * e) ** 2, minlength=6)
    # silhouette and free space at each sphere centre's crop pixel
    z = np.maximum(c[:, 2], 1.0)
    uv = c[:, :2].T * (obs.scale_uv / z) + obs.proj[1::2, None]  # (2, K) crop column, row
    ci, ri = np.minimum(np.maximum(np.rint(uv), 0.0), obs.size - 1).astype(np.intp)
    flat = ri * obs.size + ci
    dt = obs.dist_px[flat]
    # only where the sensor saw through to something behind the sphere: off the hand but in front of it
    # is an occluder (or the other hand), and no measurement (0) says nothing
    out = np.flatnonzero((dt > 0) & (obs.raw_mm[flat] > z))
    if len(out):
        zz = z[out]
        gu, gv = obs.grad_u[flat[out]] / zz, obs.grad_v[flat[out]] / zz
        # d(col)/d(c) = p0 (mirror / z, 0, -x / z^2); d(row)/d(c) = p2 (0, 1 / z, -y / z^2)
        p = obs.proj
        ws = cfg.w_silhouette * obs.mm_per_px
        grad = np.empty((len(out), 3))
        grad[:, 0] = gu * (p[0] * obs.mirror)
        grad[:, 1] = gv * p[2]
        grad[:, 2] = -(grad[:, 0] * c[out, 0] + grad[:, 1] * c[out, 1]) / zz
        vecs.append(grad)
        idxs.append(out)
        wts.append(np.full(len(out), ws))
        res.append(ws * dt[out])
        own += np.bincount(model.point_chain[out], (ws * dt[out]).astype(np.float64) ** 2, minlength=6)
    gap = c[:, 2] - model.radii - (obs.depth_mm[flat] - cfg.free_space_margin_mm)
    viol = np.flatnonzero(gap < 0)  # NaN (off the hand) compares False
    if len(viol):
        vecs.append(np.broadcast_to(_EZ, (len(viol), 3)))
        idxs.append(viol)
        wts.append(np.full(len(viol), cfg.w_free_space))
        res.append(cfg.w_free_space * gap[viol])
        own += np.bincount(model.point_chain[viol], (cfg.w_free_space * gap[viol]) ** 2, minlength=6)
    rms = math.sqrt(float(e @ e) / len(e))
    return vecs, idxs, wts, res, rms, own


@functools.lru_cache(maxsize=16)
def _config_array(cfg: FitConfig) -> np.ndarray:
    """The config's scalars in kernels.CONFIG_FIELDS order (a FitConfig is frozen, so this is cached)."""
    return np.array([float(getattr(cfg, f)) for f in _kernels.CONFIG_FIELDS])


# the kernel's "no pose prior": no components
_NO_MEAN, _NO_PREC, _NO_CONST = np.zeros((0, N_ANGLES)), np.zeros((0, N_ANGLES, N_ANGLES)), np.zeros(0)


def _fit_compiled(
    model: HandModel,
    obs: Observation,
    prior: np.ndarray,
    prev: np.ndarray | None,
    cfg: FitConfig,
    warm: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> FitResult:
    """fit_hand by the numba kernels: inverse kinematics, then all steps and the re-seeding, in two calls."""
    if warm is None:
        rot, trans, pose = _kernels.inverse_kinematics_kernel(
            _c(model.rest_joints), _c(model.rest_xyz_by_chain), _c(prior)
        )
        iterations = cfg.iterations
    else:
        rot, trans, pose = (_c(a) for a in warm)
        iterations = cfg.tracking_iterations
    if prev is None:
        targets, target_w = _c(prior[None]), np.array([cfg.w_prior])
    else:
        targets, target_w = _c(np.stack([prior, prev])), np.array([cfg.w_prior, cfg.w_temporal])
    prior_terms = _pose_prior_terms(cfg)
    mean, prec, const = (
        (_NO_MEAN, _NO_PREC, _NO_CONST)
        if prior_terms is None
        else (prior_terms[0], prior_terms[1], prior_terms[3])
    )
    rot, trans, pose, joints, rms, energy, rescued = _kernels.gauss_newton_kernel(
        *_model_args(model), *_obs_args(obs), targets, target_w, _config_array(cfg), rot, trans, pose,
        iterations, int(cfg.reseed_fingers), int(cfg.reseed_iterations), int(cfg.rescue_fingers),
        int(cfg.rescue_iterations), mean, prec, const,
    )  # fmt: skip
    if obs.mirror < 0:
        joints = joints * _MIRROR
    return FitResult(
        joints, rot, trans, pose, float(rms), float(energy), bool(rescued), _prior_energy(cfg, pose)
    )


def _c(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    """C-contiguous of one dtype: a kernel is compiled once per argument layout and dtype (at set-up), so
    a view or another dtype must not reach it (a compile on a stream's frame)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _model_args(model: HandModel) -> tuple:
    return (
        _c(model.rest_joints),
        _c(model.bone_mm),
        _c(model.rest_xyz_by_chain),
        _c(model.point_ptr, np.int64),
        _c(model.point_index, np.int64),
        _c(model.point_value),
        _c(model.point_offsets),
        _c(model.radii),
        _c(model.radii32, np.float32),
        float(model.shape.length_mm),
        _c(model.point_chain, np.int64),
    )


def _obs_args(obs: Observation) -> tuple:
    f32 = np.float32
    return (
        _c(obs.points),
        _c(obs.origin),
        _c(obs.depth_mm, f32),
        _c(obs.raw_mm, f32),
        _c(obs.dist_px, f32),
        _c(obs.grad_u, f32),
        _c(obs.grad_v, f32),
        _c(obs.proj),
        float(obs.mm_per_px),
        int(obs.size),
        float(obs.mirror),
    )


@functools.cache
def compile_kernels() -> bool:
    """Compile the kernels (or load them from numba's cache) on a small made-up hand, so that a stream's
    first frame does not pay for it: a stage calls this when it is set up. False: numba is missing or cannot
    compile here, and the numpy reference runs (for every fit of this process)."""
    global _kernels
    if _kernels is None:
        return False
    announce_compile(_kernels, "model-fitting")
    try:
        _warm_up_kernels()
    except Exception as exc:  # noqa: BLE001 - numba cannot compile here: every fit takes the numpy reference
        not_compiled("model-fitting", exc)
        _kernels = None
        return False
    return True


def _warm_up_kernels() -> None:
    """Every kernel called once on a small made-up hand (numba compiles, or loads its cache, on first call)."""
    model = build_model(default_shape(185.0, 83.0))
    joints = pose_joints(model, np.eye(3), np.array([0.0, 0.0, 400.0]), np.zeros(N_PARAMS - 6))
    points = joints - np.array([0.0, 0.0, 10.0])  # the skin in front of the bones
    size = 8
    origin = points.mean(0)
    rel = (points - origin).astype(np.float32)
    obs = Observation(
        points=points,
        origin=origin,
        points_m2=-2.0 * rel,
        points_sq=(rel * rel).sum(1, keepdims=True),
        depth_mm=np.full(size * size, 400.0, dtype=np.float32),
        raw_mm=np.full(size * size, np.inf, dtype=np.float32),
        dist_px=np.ones(size * size, dtype=np.float32),
        grad_u=np.zeros(size * size, dtype=np.float32),
        grad_v=np.zeros(size * size, dtype=np.float32),
        proj=np.array([10.0, 4.0, 10.0, 4.0]),
        mm_per_px=30.0,
        size=size,
    )
    fit_hand(model, obs, joints, FitConfig(iterations=1), previous=joints)
    _kernels.observe_kernel(np.ones((size, size), dtype=np.float32), 100.0, 400.0, obs.proj, 128, False)
    _kernels.finish_observation_kernel(np.ones((size, size), dtype=np.float32), 1.5, points)
    bone = np.ones((1, 3), dtype=np.float32)
    _kernels.bone_distance_kernel(rel, bone, bone, np.ones(1, dtype=np.float32))
