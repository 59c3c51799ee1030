"""The fit stage: the pose engine's joints -> the articulated hand model fitted to the depth, every frame.

Runs after the pose engine and before smoothing, by default whenever a pose engine drives the skeleton
(`--no-fit`, `build_pipeline(fit=False)` leave it out): compiled with numba (kernels.py), it fits within its
1 ms of CPU a hand on the 2-core VM (BENCHMARKS.md, "Model fitting"). It reads the engine's joints
(`joints_raw_mm`) and the normalized crop they came from, fits the model (fit.py) and writes the fitted joints back into
`joints_raw_mm`, so smoothing, the record's `joints_xyz_mm` and every later stage see an anatomically valid
skeleton with one user's bone lengths. The engine's own joints stay in the record as
`joints_engine_xyz_mm`.

Shape: the user's calibrated hand size (`fields["hand_size_mm"]`, written by the hand-size work) when a
stage provides it; otherwise estimated from the engine's bone lengths over the first `shape_frames` frames
of a track (their median) and then held, so the bone lengths stay constant. `reset()` (the hand was lost,
a new sequence) starts the estimate over. Left hands (`fields["handedness"] == "left"`) are fitted as
mirrored right hands.

Start: the inverse kinematics of the engine's joints. A tracked hand (`warm_start`, on) is also fitted from
its last fit (`FitConfig.tracking_iterations` steps; not after a jump, a lost hand or a change of
handedness) and the fit of lower energy is kept: the last fit alone drifts where the depth is ambiguous,
the engine's start alone forgets what the last frame settled, and the pair beat either on generator
sequences. `keep_cold=False` keeps only the warm fit (cheaper, less accurate). The fit from the engine's
start (six steps, about 0.3 ms) runs only when the warm fit's energy per hand point exceeds `cold_energy`
(3 mm^2): a tracked hand the last fit already explains rarely gains from it. On the generator's close-range
tuning sequences (seeds 9200, 9300) the gate cost 0.04-0.06 mm on frontal scenes, nothing measurable on the
others, and took 0.3 ms off the p50 of a tracked frame (0: always, as before; BENCHMARKS.md, "Model
fitting").

Rescue: where a hand without a last fit (a new track, every independent frame) has a fit whose energy per
hand point says its start was bad (`FitConfig.rescue_energy`), every finger is re-seeded with whole-hand
steps (fit.py); the extra effort is paid on those frames only (about a quarter of the tuning set's
independent frames), so the stage's median cost does not rise. A tracked hand is not rescued unless
`rescue_tracked` (and never re-seeded): it carries on what its first frame settled; on the generator
sequences chosen on, rescuing it moved the lost track further along what the engine found (BENCHMARKS.md,
"Model fitting").

Two readings of a new hand: the pose engine turns each crop to its silhouette's major axis, and for a
compact silhouette it can pick the wrong end and read the hand upside down. Given `alternative` (the shipped
twin engine with that choice flipped, engines/flip_canonical.py), a hand without a last fit to start from
(a new track, or the engine's wrist far from the last fit's) whose fit's energy per hand point exceeds
`alternative_energy` is also fitted from the twin's joints, and the fit of
lower energy is kept (`fields["fit_flipped"]` says which). On the generator's frontal tuning frames
(seeds 78 and 77, calibrated size) the mean fell 9.90 -> 9.48 and 11.23 -> 10.69 mm and success@20 rose
1.7 and 0.8 points with the gate at 4 mm^2, where about 30 % of new hands pay one more engine call and fit
(without the gate, every new hand: 9.40 and 10.61 mm; a tracked hand never pays).

Pose prior: a mixture of Gaussians over the joint angles of the poses hands take (pose_prior.py, the
shipped `engines/default/pose_prior_mixture.json`), of which the nearest component joins the fit's terms
with weight `FitConfig.w_pose_prior`: where the depth cannot see a finger, the engine's joints alone
decided it, and on the generator's frontal tuning frames the truth's pose had the lower depth energy in
three of five failing frames but lost to that prior (BENCHMARKS.md, "Model fitting"). `pose_prior=None`
leaves it out.

Two hands: while the pipeline tracks another hand too (`fields["tracked_hands"]` >= 2, even one unseen this
frame because the two are one blob), a hand counts as new only when its own observed points' mean moved
more than `tracking_jump_mm` since the last frame, not when the engine's wrist did. The engine's reading of a
hand jumps three times as often beside the other hand: on the generator's two-hand scene a third of the
tracked hand-frames went the new-hand way (about 10 ms each, against 1.2-1.6 ms for a warm fit), where the
crop held part of the other hand or the hands were one blob, and two hands cost 2.5-2.7x one hand end to
end. With this rule the two-hand tuning sequences' pose error was level (frontal 4242 / 5151 / 7373 / 8484
and close-range 9200 / 9300, right and left hands: -0.01 and +0.03 mm on average) and two hands cost 1.8-2.1x
one hand (BENCHMARKS.md, "Two hands"). A hand alone keeps the engine's rule: decided by its own pixels, the
one-hand close-range sequences lost 0.15-1.2 mm, where the second readings fix what the engine misread.

A third reading, behind the same gate: the crop cut again around the pixels the fit so far explains
(recut.py: the segmenter's mask held a forearm or an object beside the hand, and its centre was off the
hand's), the pose engine (`recut_engine`, which build_pipeline passes) run on it, and the model fitted from
those joints to the same observation; again the lower energy is kept (`fields["fit_recut"]`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..stage_registry import register_stage
from ..stages import FrameState, Stage
from .fit import FitConfig, FitResult, compile_kernels, fit_hand, observe
from .ik import estimate_size
from .model import HandModel, build_model, default_shape
from .pose_prior import SHIPPED_MIXTURE, load_pose_prior

# the size estimates start from a typical adult hand; a size outside these bounds is not a hand
SIZE_BOUNDS_MM = np.array([[100.0, 240.0], [45.0, 115.0]])
SIZE_STEP_MM = 2.0
_UNIT = build_model(default_shape(185.0, 83.0))


@register_stage("fit")
class FitStage(Stage):
    """Fits the articulated hand model (stream.synth's kinematics and limits) to the observed depth around
    the pose engine's joints: constant bone lengths per user, angles within the joint limits."""

    reads = ("joints_raw_mm", "crop")
    # "tracked_hands": how many hands the pipeline tracks this frame (see `_start`)
    optional_reads = ("hand_size_mm", "handedness", "tracked_hands")
    writes = (
        "joints_raw_mm",
        "joints_engine_mm",
        "fit_rms_mm",
        "fit_energy_per_point",
        "fit_rescued",
        "fit_flipped",
        "fit_recut",
    )

    def __init__(
        self,
        name: str = "fit",
        config: FitConfig | None = None,
        shape_frames: int = 15,
        temporal: bool = True,
        warm_start: bool = True,
        compiled: bool = True,
        keep_cold: bool = True,
        rescue_tracked: bool = False,
        alternative=None,
        alternative_energy: float = 4.0,
        recut_engine=None,
        cold_energy: float = 3.0,
        pose_prior: str | None = SHIPPED_MIXTURE,
    ) -> None:
        """`alternative`: a second pose engine whose joints start a second fit of a hand without a last fit
        when the first fit's energy per hand point exceeds `alternative_energy` mm^2 (the shipped
        `pose_flipped`, which build_pipeline passes when it is the pose engine's twin); `recut_engine`: the
        pose engine, run behind the same gate on the crop cut again around the fitted hand's pixels; the
        other options are the docstring's above. `pose_prior`: the prior over the joint angles
        (pose_prior.py; a shipped name or a file) the config is given when it has none; None: no pose prior."""
        super().__init__(None, name)
        self.alternative = alternative
        self.alternative_energy = float(alternative_energy)
        self.recut_engine = recut_engine
        self.config = config or FitConfig()
        if pose_prior is not None and self.config.pose_prior is None and self.config.w_pose_prior > 0:
            self.config = replace(self.config, pose_prior=load_pose_prior(pose_prior))
        # a tracked hand (two starts) is not re-seeded: on generator sequences it bought nothing there and
        # cost 0.14 ms a frame; what the track's first frame settled is carried on by the warm start.
        # Neither of its two fits is rescued on its own: with `rescue_tracked` the lower is, once, when its
        # energy says it is bad
        self._tracked_config = replace(self.config, reseed_fingers=0, rescue_fingers=0)
        self._rescue_config = replace(self.config, tracking_iterations=0, reseed_fingers=0)
        # the numba kernels are compiled (or loaded from numba's cache) here, never on a stream's first
        # frame; compiled=False, or numba missing: the numpy reference
        self.compiled = bool(compiled) and compile_kernels()
        self.shape_frames = max(1, int(shape_frames))
        self.temporal = bool(temporal)
        self.warm_start = bool(warm_start)
        self.keep_cold = bool(keep_cold)
        self.cold_energy = float(cold_energy)
        self.rescue_tracked = bool(rescue_tracked)
        self._models: dict[tuple[int, int], HandModel] = {}
        self.reset()

    def reset(self) -> None:
        self._sizes: list[np.ndarray] = []
        self._model: HandModel | None = None
        self._held = False
        self._previous: np.ndarray | None = None
        self._warm: tuple[bool, FitResult] | None = None  # (left, the last fit) of this track
        self._points_mean: np.ndarray | None = None  # the last observed hand points' mean (mm)

    def run(self, st: FrameState) -> None:
        engine = st.joints_raw_mm
        if engine is None or st.crop is None:
            self._previous = self._warm = None
            return
        model = self._model_for(st, engine)
        left = st.fields.get("handedness") == "left"
        obs = observe(st.crop, st.frame.depth_mm, self.config.points, mirror=left, compiled=self.compiled)
        st.fields["joints_engine_mm"] = engine
        if obs is None:  # too few hand pixels to fit to: the engine's joints stand
            self._warm = None
            return
        previous = self._previous if self.temporal else None
        mean = np.asarray(obs.points, dtype=np.float64).mean(axis=0)
        moved = None if self._points_mean is None else float(np.linalg.norm(mean - self._points_mean))
        self._points_mean = mean
        warm = self._start(
            engine, left, paired=int(st.fields.get("tracked_hands", 1)) >= 2, points_moved_mm=moved
        )
        cfg = self.config if warm is None else self._tracked_config
        res = fit_hand(model, obs, engine, cfg, previous, warm, compiled=self.compiled)
        if (
            warm is not None and self.keep_cold and res.depth_energy > self.cold_energy * len(obs.points)
        ):  # two hypotheses: the last fit's and the engine's
            cold = fit_hand(model, obs, engine, cfg, previous, compiled=self.compiled)
            res = cold if cold.energy < res.energy else res
        flipped = recut = False
        if warm is None and res.depth_energy > self.alternative_energy * len(obs.points):
            # a new hand whose fit is poor: read the other way up, then from a crop of the fitted hand alone
            # (cut around the best fit so far, so it may start from the flipped one); the flags name the
            # reading the kept fit came from
            for kind, joints in (("flip", self._alternative_joints), ("recut", self._recut_joints)):
                other = joints(st, left, res)
                if other is None:
                    continue
                alt = fit_hand(model, obs, other, cfg, previous, compiled=self.compiled)
                if alt.energy < res.energy:
                    res = alt
                    flipped, recut = kind == "flip", kind == "recut"
        st.fields["fit_flipped"] = flipped
        st.fields["fit_recut"] = recut
        if warm is not None and self.rescue_tracked and self._bad(res, obs):
            # no step, only the rescue's seeds from the kept fit (rescue_energy decides, as on a cold fit)
            start = (res.rot, res.trans, res.pose)
            rescued = fit_hand(model, obs, engine, self._rescue_config, previous, start, self.compiled)
            res = replace(rescued, data_rms_mm=res.data_rms_mm)  # no step: the kept fit's RMS stands
        self._previous = res.joints
        self._warm = (left, res)
        st.joints_raw_mm = res.joints
        st.fields["fit_rms_mm"] = res.data_rms_mm
        # the fit's own evidence (what the rescue's gate reads) and whether the rescue ran: for evaluation
        st.fields["fit_energy_per_point"] = res.depth_energy / len(obs.points)
        st.fields["fit_rescued"] = res.rescued

    def _alternative_joints(self, st: FrameState, left: bool, res: FitResult) -> np.ndarray | None:
        """The alternative engine's joints (camera mm) on this crop, mirrored in and out for a left hand as
        the pose stage does; None without one, or when they are not finite."""
        from ..stages import pose_input, pose_joints, pose_output_name

        if self.alternative is None:
            return None
        out = self.alternative.infer(pose_input(st.crop, left))
        return pose_joints(out[pose_output_name(self.alternative)], st.crop, left)

    def _recut_joints(self, st: FrameState, left: bool, res: FitResult) -> np.ndarray | None:
        """The pose engine's joints on the crop cut again around the pixels within reach of the fit `res`
        (recut.py); None without the engine or the detection's mask, or when too few pixels are in reach."""
        from ..stages import pose_input, pose_joints, pose_output_name
        from .recut import recut

        det = st.detection
        if self.recut_engine is None or det is None or st.frame.depth_mm is None:
            return None
        crop = recut(
            st.frame.depth_mm,
            st.frame.intrinsics,
            det.mask,
            res.joints,
            st.crop.cube_mm,
            st.crop.size,
            compiled=self.compiled,
        )
        if crop is None:
            return None
        out = self.recut_engine.infer(pose_input(crop, left))
        return pose_joints(out[pose_output_name(self.recut_engine)], crop, left)

    def _bad(self, res: FitResult, obs) -> bool:
        """The fit's own evidence of a bad start: its energy per hand point above `rescue_energy`."""
        cfg = self.config
        return cfg.rescue_fingers > 0 and res.depth_energy > cfg.rescue_energy * len(obs.points)

    def _start(
        self, engine: np.ndarray, left: bool, paired: bool = False, points_moved_mm: float | None = None
    ) -> tuple | None:
        """The last fit as the start of this one, when this track has one of the same hand and the hand
        has not jumped; None: start from the engine's joints (a new hand: the rescue and the second
        readings may follow). A jump is the engine's wrist far from the last fit's, or, while another hand
        is tracked too (`paired`), the hand's own observed points moving that far since the last frame
        (`points_moved_mm`; None: no last frame to compare with): see the module's docstring."""
        if not self.warm_start or self._warm is None or self._warm[0] != left:
            return None
        last = self._warm[1]
        jump = self.config.tracking_jump_mm
        if paired:
            if points_moved_mm is None or points_moved_mm > jump:
                return None
        elif np.linalg.norm(np.asarray(engine[0], dtype=np.float64) - last.joints[0]) > jump:
            return None
        return last.rot, last.trans, last.pose

    def _model_for(self, st: FrameState, engine: np.ndarray) -> HandModel:
        """The calibrated size when given; else the running median of per-frame estimates, held after
        `shape_frames` frames."""
        given = st.fields.get("hand_size_mm")
        if given is not None:
            size = np.asarray(given, dtype=np.float64).reshape(-1)[:2]
            if size.shape == (2,) and np.all(np.isfinite(size)):
                return self._model_of(np.clip(size, SIZE_BOUNDS_MM[:, 0], SIZE_BOUNDS_MM[:, 1]))
        if self._held and self._model is not None:
            return self._model
        est = estimate_size(engine, _UNIT)
        if np.all(np.isfinite(est)):
            self._sizes = [*self._sizes, np.clip(est, SIZE_BOUNDS_MM[:, 0], SIZE_BOUNDS_MM[:, 1])]
        size = np.median(self._sizes, axis=0) if self._sizes else _UNIT.size_mm.astype(np.float64)
        self._held = len(self._sizes) >= self.shape_frames
        return self._model_of(size)

    def _model_of(self, size: np.ndarray) -> HandModel:
        """The model of this size on a SIZE_STEP_MM grid: building one costs several fits, so models are
        kept by grid cell (a read-only table that forked per-hand copies share)."""
        key = tuple(int(v) for v in np.rint(np.asarray(size) / SIZE_STEP_MM))
        m = self._models.get(key)
        if m is None:
            m = self._models[key] = build_model(default_shape(key[0] * SIZE_STEP_MM, key[1] * SIZE_STEP_MM))
        self._model = m
        return m

    def record_fields(self, st: FrameState) -> dict:
        eng = st.fields.get("joints_engine_mm")
        rms = st.fields.get("fit_rms_mm")
        return {
            "joints_engine_xyz_mm": None if eng is None else np.round(np.asarray(eng), 2).tolist(),
            "fit_rms_mm": None if rms is None else round(float(rms), 2),
        }
