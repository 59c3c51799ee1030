"""Hand size measured from the depth by analysis-by-synthesis: the articulated hand model of several sizes is
fitted to the same frame, and the sizes whose fits explain the depth best are the hand's.

Depth is metric, so a hand model that is too short leaves the fingertips' points unexplained and one that
is too narrow the palm's edge. Each candidate (length, width) is a model `build_model(default_shape(L, W))`
fitted by `fit_hand` from the inverse kinematics of the pose engine's joints, then scored: the data term of
the fit over the hand's points, truncated (a point the model cannot reach costs a fixed amount instead of
being dropped, which would reward a small model), plus the fitted joints' distance to the engine's. The
silhouette and free-space terms are computed too but weighted 0: on training subjects they did not help.

A frame's energies are divided by its best candidate's (`evidence`): a frame no candidate explains well
(noise, a pose the model cannot take) has large energies and large differences between them, yet says
the least; read against its own residual variance it says less. The evidence is read as a likelihood,
exp(-evidence / temperature), times the population's prior, and the estimate is the posterior mean on the
candidate grid (interpolated to 1 mm): one frame's evidence is weak (a curled or hidden finger says little
about its length), so a frame alone stays near the population. Over a track each candidate's evidence is
averaged over the frames (which weights each frame by the inverse of its best energy), so that every frame
moves the estimate a little instead of voting for its own minimum; averaged, not summed, because the frames
of a second show one or two poses and are not independent evidence. The confidence is the share of the
population's variance in length that the posterior removed. Candidates lie on a grid of lengths, the
width on the population's regression line plus a few offsets, so that a track's frames add up candidate by
candidate. The weights and temperatures were chosen on training subjects (BENCHMARKS.md, "Hand size").

The size itself is read from this posterior by a learned map (readout.py, `SizeFitConfig.readout`): a small
network, fitted on training subjects, corrects the posterior mean from the whole evidence grid, the best
fit's energy and its pose; a track's size is the same map applied to its frames' averaged inputs. With
`readout=None` the size is the posterior mean.

The fits run compiled (stream/fitting/kernels.py) and so does the scoring (kernels.py here, compiled when
the stage is set up); the numpy `score_terms` stays the reference and the fallback without numba.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..compiled import announce_compile, not_compiled
from ..fitting import FitConfig, HandModel, Observation, build_model, default_shape, fit_hand, pose_model
from ..fitting.fit import FitResult
from ..fitting.fit import compile_kernels as compile_fit_kernels
from ..fitting.pose_prior import shipped_pose_prior
from . import kernels as _kernels
from .readout import N_POSE, SizeReadout, load_readout, pose_features

# hand width on hand length over the ANSUR II population as the generator draws it (half men, half women):
# least squares on the 600 training subjects of the hand-size study (BENCHMARKS.md, "Hand size")
WIDTH_INTERCEPT_MM = 11.85
WIDTH_SLOPE = 0.3823  # residual sd 4.8 mm


def population_width(length_mm: float | np.ndarray) -> float | np.ndarray:
    """The palm width the population's regression expects for a hand length."""
    return WIDTH_INTERCEPT_MM + WIDTH_SLOPE * np.asarray(length_mm, np.float64)


@dataclass(frozen=True)
class SizeFitConfig:
    """The candidate grid and the scoring energy's weights (residual mm per unit, as in FitConfig)."""

    lengths_mm: tuple[float, ...] = tuple(float(v) for v in np.arange(140.0, 227.0, 6.0))
    width_offsets_mm: tuple[float, ...] = (-9.0, -4.5, 0.0, 4.5, 9.0)
    huber_mm: float = 8.0
    cap_mm: float = 20.0  # a data point farther than this from the model costs what one at cap_mm costs
    w_data: float = 1.0
    w_silhouette: float = 0.0
    w_free_space: float = 0.0
    w_prior: float = 0.3
    # exp(-evidence / temperature) is the likelihood of a size (length and width each their own); the prior
    # is the population (the study's training subjects)
    temperature_length: float = 115.0
    temperature_width: float = 16.0
    prior_length_mm: float = 186.8
    prior_length_sd_mm: float = 11.3
    prior_width_sd_mm: float = 4.8
    # each frame's energies are divided by its best candidate's and multiplied by this (`evidence`): the
    # median best energy over the training frames, so that the temperatures read in mm^2; 0: raw energies
    energy_ref_mm2: float = 574.0
    # the model that explains a frame best is shorter than the hand: the sensor loses depth along the
    # silhouette and the fingertips, so the measured hand is smaller (the fit's silhouette slack says the
    # same). A model of length L is read as a hand of length_scale x L; fitted on training frames, where
    # the evidence alone (its minimum) was 5-6 mm (~2-3 %) short
    length_scale: float = 1.02
    # each candidate's fit: 6 steps x 256 points, affordable since the scoring runs compiled; the
    # temperatures above were chosen with these settings, so they are pinned here: the worst finger
    # re-seeded once, and no rescue of bad starts (the fit stage's rescue re-seeds every finger where the
    # energy is high, which would change every candidate's energy, and cost up to 3x, on such frames). The
    # fit stage's pose prior (stream/fitting/pose_prior.py) holds the fingers the depth cannot see, so each
    # candidate's pose, and with it the width's evidence, is better (BENCHMARKS.md, "Hand size")
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(
            iterations=6, points=256, reseed_fingers=1, rescue_fingers=0, pose_prior=shipped_pose_prior()
        )
    )
    # the learned reading of the evidence (readout.py): a shipped name or a path to its JSON; None: the
    # posterior mean (`read_size`). A readout is trained for the settings above and refuses others
    readout: str | None = "size_readout"

    @property
    def pose_prior_weight(self) -> float:
        """The candidate fits' pose-prior weight (0 without a prior): a readout is trained for one."""
        return float(self.fit.w_pose_prior) if self.fit.pose_prior is not None else 0.0

    def candidates(self) -> np.ndarray:
        """(nL, nW, 2) the candidate (length, width) grid."""
        lengths = np.asarray(self.lengths_mm, np.float64)
        widths = population_width(lengths)[:, None] + np.asarray(self.width_offsets_mm)[None, :]
        return np.stack(np.broadcast_arrays(lengths[:, None], widths), axis=-1)


N_TERMS = 4  # data, silhouette, free space, prior: each a sum of squared residuals (mm^2), unweighted


def score_terms(
    model: HandModel,
    obs: Observation,
    res,
    engine_joints: np.ndarray,
    cfg: SizeFitConfig,
    compiled: bool = False,
) -> np.ndarray:
    """(N_TERMS,) unweighted energy terms of a fitted model: truncated Huber data term over the hand's
    points (the forearm's excluded, as in the fit), silhouette and free space at the sphere centres, and
    the joints' squared distance to the engine's. `compiled`: by the numba kernel (kernels.py, the same
    numbers to rounding); False: this numpy code, the reference."""
    if compiled:
        return _score_compiled(model, obs, res, engine_joints, cfg)
    posed = pose_model(model, res.rot, res.trans, res.pose)
    c = posed.centres
    p = obs.points
    d = np.sqrt(((p[:, None, :] - c[None, :, :]) ** 2).sum(-1)) - model.radii[None, :]
    e = np.abs(d.min(1))
    behind = (p - posed.trans) @ posed.axis_y < -cfg.fit.forearm_frac * model.shape.length_mm
    e = np.minimum(e[~behind], cfg.cap_mm)
    h = cfg.huber_mm
    data = float(np.where(e <= h, e * e, 2.0 * h * e - h * h).sum())
    z = np.maximum(c[:, 2], 1.0)
    uv = c[:, :2].T * (obs.scale_uv / z) + obs.proj[1::2, None]
    ci, ri = np.minimum(np.maximum(np.rint(uv), 0.0), obs.size - 1).astype(np.intp)
    flat = ri * obs.size + ci
    dt = obs.dist_px[flat]
    out = (dt > 0) & (obs.raw_mm[flat] > z)
    sil = float(((dt[out] * obs.mm_per_px) ** 2).sum())
    gap = c[:, 2] - model.radii - (obs.depth_mm[flat] - cfg.fit.free_space_margin_mm)
    gap = gap[gap < 0]  # NaN (off the hand) compares False
    free = float((gap * gap).sum())
    prior_j = np.asarray(engine_joints, np.float64)
    if obs.mirror < 0:
        prior_j = prior_j * np.array([-1.0, 1.0, 1.0])
    prior = float(((posed.joints - prior_j) ** 2).sum())
    return np.array([data, sil, free, prior])


_MIRROR = np.array([-1.0, 1.0, 1.0])


def _c(a: np.ndarray) -> np.ndarray:
    """C-contiguous float64: the kernel is compiled once per argument layout (at set-up), so a view or
    another dtype must not reach it on a frame."""
    return np.ascontiguousarray(a, dtype=np.float64)


def _score_compiled(
    model: HandModel, obs: Observation, res, engine_joints: np.ndarray, cfg: SizeFitConfig
) -> np.ndarray:
    """score_terms by the kernel, in the fit's frame (a left hand's joints mirrored, as the fit works)."""
    joints, engine = _c(res.joints), _c(engine_joints)
    if obs.mirror < 0:
        joints, engine = joints * _MIRROR, engine * _MIRROR
    return _kernels.score_kernel(
        _c(obs.points), _c(model.radii), _c(model.point_weights), _c(model.point_offsets), _c(res.rot),
        _c(res.trans), joints, engine, obs.depth_mm, obs.raw_mm, obs.dist_px, _c(obs.proj),
        float(obs.mirror), float(obs.mm_per_px), int(obs.size), cfg.fit.forearm_frac * model.shape.length_mm,
        float(cfg.huber_mm), float(cfg.cap_mm), float(cfg.fit.free_space_margin_mm),
    )  # fmt: skip


def compile_kernels() -> bool:
    """Compile the fit's and the scoring's kernels (or load numba's cache) on a made-up frame, so that a
    stream's first frame does not pay for it: the stage calls this when it is set up. False: numba is
    missing or cannot compile here, and the numpy reference scores (the fit decides on its own)."""
    compile_fit_kernels()
    if not _kernels.HAVE_NUMBA:
        return False
    announce_compile(_kernels, "hand-size")
    try:
        _warm_up()
    except Exception as exc:  # noqa: BLE001 - numba cannot compile here: the numpy reference scores
        not_compiled("hand-size", exc)
        return False
    return True


def _warm_up() -> None:
    """The kernel called once on a made-up hand (numba compiles, or loads its cache, on the first call),
    with the argument types of a real frame's (float32 images, float64 arrays)."""
    model = build_model(default_shape(185.0, 83.0))
    size = 8
    img = np.zeros(size * size, dtype=np.float32)
    _kernels.score_kernel(
        np.zeros((4, 3)), _c(model.radii), _c(model.point_weights), _c(model.point_offsets), np.eye(3),
        np.array([0.0, 0.0, 400.0]), np.zeros((21, 3)), np.zeros((21, 3)), img, img, img,
        np.array([10.0, 4.0, 10.0, 4.0]), 1.0, 30.0, size, 50.0, 8.0, 20.0, 5.0,
    )  # fmt: skip


def weights(cfg: SizeFitConfig) -> np.ndarray:
    """(N_TERMS,) the squared weights that turn score_terms into one energy."""
    return np.array([cfg.w_data, cfg.w_silhouette, cfg.w_free_space, cfg.w_prior]) ** 2


def frame_terms(
    models: np.ndarray,
    obs: Observation,
    engine_joints: np.ndarray,
    cfg: SizeFitConfig,
    compiled: bool = False,
) -> np.ndarray:
    """(nL, nW, N_TERMS) the energy terms of every candidate model (an object array of HandModels) fitted to
    one frame; `compiled`: scored by the kernel (the fits run compiled whenever numba imports)."""
    return frame_fits(models, obs, engine_joints, cfg, compiled)[0]


def frame_fits(
    models: np.ndarray,
    obs: Observation,
    engine_joints: np.ndarray,
    cfg: SizeFitConfig,
    compiled: bool = False,
) -> tuple[np.ndarray, FitResult | None]:
    """frame_terms and the fit of the candidate whose weighted energy is the lowest (the first of equals,
    None when none is finite): its pose is an input of the learned reading (readout.pose_features)."""
    out = np.empty((*models.shape, N_TERMS))
    w = weights(cfg)
    best, best_e = None, np.inf
    for idx in np.ndindex(models.shape):
        m = models[idx]
        res = fit_hand(m, obs, engine_joints, cfg.fit)
        out[idx] = score_terms(m, obs, res, engine_joints, cfg, compiled)
        e = float(out[idx] @ w)
        if e < best_e:
            best, best_e = res, e
    return out, best


def build_models(cfg: SizeFitConfig) -> np.ndarray:
    """(nL, nW) object array of the candidate models (built once: a model costs several fits)."""
    cand = cfg.candidates()
    models = np.empty(cand.shape[:2], dtype=object)
    for idx in np.ndindex(models.shape):
        models[idx] = build_model(default_shape(*cand[idx]))
    return models


def _fine(energy: np.ndarray, cfg: SizeFitConfig) -> np.ndarray:
    """The (nL, nW) grid's energy interpolated onto 1 mm steps of length and width offset, each fine point
    from the parabola through its three nearest grid points (a quadratic bowl is reproduced exactly, so a
    sharp minimum between grid points is not snapped to one)."""
    fl, fo = _fine_axes(cfg)
    ml = _quadratic_weights(np.asarray(cfg.lengths_mm, np.float64), fl)
    mo = _quadratic_weights(np.asarray(cfg.width_offsets_mm, np.float64), fo)
    return ml @ energy @ mo.T


def _quadratic_weights(knots: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(len(x), len(knots)) Lagrange weights of the parabola through the three knots nearest each x (fewer
    knots: the line through two, or the one value)."""
    n = len(knots)
    w = np.zeros((len(x), n))
    if n == 1:
        w[:, 0] = 1.0
        return w
    near = np.clip(np.searchsorted(knots, x) - 1, 0, n - 1)
    centre = (
        np.clip(
            np.where(
                np.abs(x - knots[np.minimum(near + 1, n - 1)]) < np.abs(x - knots[near]), near + 1, near
            ),
            1,
            n - 2,
        )
        if n >= 3
        else np.zeros(len(x), np.intp)
    )
    idx = np.stack([centre - 1, centre, centre + 1], 1) if n >= 3 else np.tile([0, 1], (len(x), 1))
    pts = knots[idx]  # (len(x), k)
    for a in range(idx.shape[1]):
        la = np.ones(len(x))
        for b in range(idx.shape[1]):
            if a != b:
                la *= (x - pts[:, b]) / (pts[:, a] - pts[:, b])
        w[np.arange(len(x)), idx[:, a]] += la
    return w


def _fine_axes(cfg: SizeFitConfig) -> tuple[np.ndarray, np.ndarray]:
    lengths, offs = np.asarray(cfg.lengths_mm), np.asarray(cfg.width_offsets_mm)
    return np.arange(lengths[0], lengths[-1] + 1e-9, 1.0), np.arange(offs[0], offs[-1] + 1e-9, 1.0)


def pick_size(energy: np.ndarray, cfg: SizeFitConfig) -> np.ndarray:
    """(length, width) mm: posterior means of the size given an energy on the (nL, nW) grid (one frame's,
    or a track's mean), exp(-energy / temperature) times the population's prior (normal in length, and in
    the width's offset from the regression line), on the grid interpolated to 1 mm. The length and the
    width's offset are each read from a posterior of their own temperature: the width's evidence (the palm,
    seen on most frames) is sharper than the length's (a curled or hidden finger says little); the width is
    the posterior mean of the width itself (regression line plus offset) under its own temperature. The
    length is the hand's a model stands for: `length_scale` x the model's."""
    return read_size(energy, cfg)[0]


def read_size(energy: np.ndarray, cfg: SizeFitConfig) -> tuple[np.ndarray, float]:
    """pick_size's (length, width) and a confidence in [0, 1]: the share of the population's variance in
    length that the evidence removed, 1 - var(posterior) / var(prior). A frame whose energy is flat in
    length (a curled or hidden finger) leaves the prior's spread, 0; a sharp one, near 1. On training
    subjects the error grows with the posterior's spread (BENCHMARKS.md, "Hand size")."""
    fl, fo = _fine_axes(cfg)
    e = _fine(np.asarray(energy, np.float64), cfg)
    e = e - np.nanmin(e)
    hand = fl * cfg.length_scale  # the hand's length a model of length fl stands for
    widths = population_width(fl)[:, None] + fo[None, :]  # the models' palm widths
    prior_l = -0.5 * ((hand - cfg.prior_length_mm) / cfg.prior_length_sd_mm) ** 2
    # the width's prior: the population's spread about its regression on the hand's length
    prior = prior_l[:, None] - 0.5 * ((widths - population_width(hand)[:, None]) / cfg.prior_width_sd_mm) ** 2
    post_l = _posterior(prior - e / cfg.temperature_length).sum(1)
    length = float(post_l @ hand)
    width = float((_posterior(prior - e / cfg.temperature_width) * widths).sum())
    p0 = _posterior(prior).sum(1)  # the prior in length on the same (truncated) grid: no evidence gives 0
    var_prior = float(p0 @ (hand - p0 @ hand) ** 2)
    confidence = 1.0 - float(post_l @ (hand - length) ** 2) / var_prior
    return np.array([length, width]), float(np.clip(confidence, 0.0, 1.0))


def evidence(energy: np.ndarray, cfg: SizeFitConfig) -> np.ndarray:
    """A frame's energies on the grid as evidence: divided by the best candidate's, times
    `energy_ref_mm2`. The residuals' scale differs from frame to frame (sensor noise, a pose the model
    cannot take, a wrong segment): a frame that no candidate explains well has large energies and large
    differences between them, yet says the least about the size. Dividing by the best fit's energy reads
    each frame's differences against its own residual variance (as a reduced chi-square does) and, in a
    track's average, weights each frame by the inverse of it. `energy_ref_mm2` = 0: the energies as they
    are."""
    e = np.asarray(energy, np.float64)
    if cfg.energy_ref_mm2 <= 0:
        return e
    return e * (cfg.energy_ref_mm2 / max(float(np.nanmin(e)), 1e-6))


def _posterior(log_p: np.ndarray) -> np.ndarray:
    p = np.exp(log_p - np.nanmax(log_p))
    return p / p.sum()


class SizeFitter:
    """One track's size measurement: each frame's candidate energies, read as evidence (`evidence`: divided
    by its best fit's), are added to the track's sums, whose mean gives the hand's size and, from the
    spread of its posterior, the confidence. With a learned readout (`cfg.readout`, readout.py) the track
    also sums the inputs it reads beside the evidence (the log of the best fit's energy and its pose), and
    the size is the readout's, of the frame's inputs or of the track's means; without one, the posterior
    mean (`read_size`). The candidate models and the readout are built once and shared by every copy
    (`fork`), and the kernels are compiled once, when the first is made (`compiled=False`: the numpy
    reference scores)."""

    def __init__(
        self,
        cfg: SizeFitConfig | None = None,
        models: np.ndarray | None = None,
        compiled: bool = True,
        readout: SizeReadout | None = None,
    ) -> None:
        self.cfg = cfg or SizeFitConfig()
        self.models = build_models(self.cfg) if models is None else models
        # a copy (models given) was made by fork(): its original compiled already and loaded the readout
        self.compiled = bool(compiled) and (models is not None or compile_kernels())
        if readout is None and models is None and self.cfg.readout is not None:
            readout = load_readout(self.cfg.readout, self.cfg)
        self.readout = readout
        self._w = weights(self.cfg)
        self.reset()

    def reset(self) -> None:
        self.energy = np.zeros(self.models.shape)  # rebound: copies share nothing but the models
        self.log_best = 0.0
        self.pose = np.zeros(N_POSE)
        self.frames = 0

    def fork(self) -> SizeFitter:
        return SizeFitter(self.cfg, self.models, self.compiled, self.readout)

    def add(self, obs: Observation, engine_joints: np.ndarray) -> np.ndarray:
        """Fit every candidate to one frame; returns this frame's (length, width)."""
        terms, best = frame_fits(self.models, obs, engine_joints, self.cfg, self.compiled)
        raw = terms @ self._w
        e = evidence(raw, self.cfg)
        log_best = float(np.log(max(float(np.nanmin(raw)), 1e-6)))
        pose = pose_features(best.pose, best.data_rms_mm) if best is not None else np.full(N_POSE, np.nan)
        self.energy = self.energy + e  # the sums; estimate() reads the means
        self.log_best += log_best
        self.pose = self.pose + pose
        self.frames += 1
        return self._read(e, log_best, pose)[0]

    def _read(self, energy: np.ndarray, log_best: float, pose: np.ndarray) -> tuple[np.ndarray, float]:
        """The readout's (size, confidence) where it gives a finite size, else the posterior's."""
        if self.readout is not None:
            size, conf = self.readout.read(energy, log_best, pose, self.cfg)
            if np.isfinite(size).all():
                return size, conf
        return read_size(energy, self.cfg)

    def estimate(self) -> tuple[np.ndarray | None, float]:
        """(the track's (length, width) in mm, or None before a frame; its confidence in [0, 1], from the
        spread of the track's posterior in length: `read_size`)."""
        if not self.frames:
            return None, 0.0
        n = self.frames
        size, conf = self._read(self.energy / n, self.log_best / n, self.pose / n)
        return np.asarray(size).astype(np.float32), conf
