"""The per-frame pipeline and the loop that drives it from a capture thread into sinks.

    frame -> preprocess -> engines (pose, then any other by name) -> smooth -> [overlay] -> FrameResult

`build_pipeline` assembles the chain from `--models`: registered stages by name (stage_registry.py),
engines by shipped name or path (their manifest's task picks the stage), ordered and checked by the
stages' declared reads and writes, so a chain that cannot work is refused before the first frame.

`Pipeline.process(frame)` is the whole per-frame path: it times every stage with perf_counter_ns, builds
one frozen FrameResult, and never loses a frame: a stage that raises makes that frame a "no hand"
result (its `error` says why), reported once per stage and error type with the frame index, never per
frame. `run_stream` wires source -> CaptureThread -> Pipeline -> sinks and shuts all of it down cleanly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .errors import InputError
from .frames import RGBDFrame
from .smoothing import OneEuroConfig
from .sources.base import Lag
from .stage_registry import check_contracts, order_stages, stage_class, stage_for_task, unknown_message
from .stages import EngineStage, FrameState, OverlayStage, PoseStage, PreprocessStage, SmoothStage, Stage

log = logging.getLogger("handstream.pipeline")
MAX_HANDS = 2  # the segmenter keeps at most two hands (one person's); --max-hands is 1 or 2
# a track's handedness is the mean of this many frames' P(left) (1 s at 30 FPS); after them the handedness
# stage is not run on that track again, and its label no longer flickers
SIDE_SETTLED_FRAMES = 30
# ... or sooner, once its mean P(left) over at least SIDE_EARLY_FRAMES fresh frames lies SIDE_EARLY_MARGIN or
# more from even (>= 0.8 or <= 0.2): the handedness stage is most of a new hand's cost (2.9 ms a call: two
# pose-engine readings and two side fits), and a clear side does not turn. Over the runtime's 282 tracks of
# 14 tuning sets (frontal two-hand seeds 4242, 5151, 7373, 8484, 9494, 1717; desk and egocentric 9200 / 9300;
# lone hands), no track that this rule settles had the other side after its 30 frames; that held down to a
# margin of 0.15 (at 0.1 two did). The stage then ran 36 % fewer times on the frontal two-hand tuning sets, 13-38 %
# fewer at close range, and the per-frame sides moved by at most 5 hand-frames a set (BENCHMARKS.md, "Two hands")
SIDE_EARLY_FRAMES = 8
SIDE_EARLY_MARGIN = 0.3
# the record fields of a frame no stage adds any to: one shared read-only empty mapping, not a dict a frame
_NO_RECORD_FIELDS: Mapping[str, object] = MappingProxyType({})


def _settle_count(track) -> int:
    """The frames of handedness evidence after which a track's side is settled: its own count after a
    re-decision (`HandTrack.settle_frames`), else a new track's."""
    return SIDE_SETTLED_FRAMES if track.settle_frames is None else track.settle_frames


def side_settled(track) -> bool:
    """Whether a track's side is settled, so the handedness stage need not run on it again: after its full
    count of frames, or after SIDE_EARLY_FRAMES fresh ones (evidence kept from before a reopening does not
    count as fresh, though it weighs in the mean) whose mean is clear by SIDE_EARLY_MARGIN."""
    n = track.p_left_n
    if n >= _settle_count(track):
        return True
    fresh = n - track.kept_frames
    return fresh >= SIDE_EARLY_FRAMES and abs(track.p_left - 0.5) >= SIDE_EARLY_MARGIN


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What the pipeline made of one frame. Joints are the smoothed ones (raw in `joints_raw_xyz_mm`);
    `joints_uvd` is (J, 3) pixels + depth mm. `stage_ms` maps stage name -> ms for this frame;
    `latency_ms` runs from the capture moment (the source's stamp: live sources) or, in replay, from
    when the pipeline took the frame, to the end of the last stage. `image` is the overlay (None without one).
    `fields`: the stages' per-capability values (FrameState.fields); `record_fields`: what the stages'
    `record_fields` added to the JSON-lines record."""

    index: int
    timestamp_ms: float
    hand_found: bool
    joints_xyz_mm: np.ndarray | None
    joints_uvd: np.ndarray | None
    stage_ms: dict[str, float]
    latency_ms: float
    joints_raw_xyz_mm: np.ndarray | None = None
    com_xyz_mm: np.ndarray | None = None
    confidence: float = 0.0
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str = ""
    error: str = ""
    image: np.ndarray | None = None
    fields: dict[str, object] = field(default_factory=dict)
    record_fields: Mapping[str, object] = field(default_factory=dict)
    # every hand with a skeleton this frame, first hand first (pipelines with max_hands > 1; None with one
    # hand, whose record then has no "hands" list). The fields above describe the first hand.
    hands: tuple[HandResult, ...] | None = None

    @property
    def total_ms(self) -> float:
        """Sum of the stage times."""
        return float(sum(self.stage_ms.values()))

    def to_record(self) -> dict:
        """The JSON-lines record (sinks.JsonlSink): plain lists, mm and pixels rounded to 0.01."""
        rec = {
            "index": self.index,
            "timestamp_ms": round(self.timestamp_ms, 3),
            "hand_found": self.hand_found,
            "joints_xyz_mm": None,
            "joints_uv_px": None,
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.joints_xyz_mm is not None:
            rec["joints_xyz_mm"] = np.round(self.joints_xyz_mm, 2).tolist()
        if self.joints_uvd is not None:
            rec["joints_uv_px"] = np.round(np.nan_to_num(self.joints_uvd[:, :2], nan=-1.0), 2).tolist()
        if self.com_xyz_mm is not None:
            rec["com_xyz_mm"] = np.round(self.com_xyz_mm, 2).tolist()
        if self.reason:
            rec["reason"] = self.reason
        if self.error:
            rec["error"] = self.error
        if self.record_fields:
            rec.update(self.record_fields)
        if self.hands is not None:
            rec["hands"] = [h.to_record() for h in self.hands]
        return rec


@dataclass(frozen=True, eq=False)
class HandResult:
    """One tracked hand of a frame (pipelines with max_hands > 1). `id` stays the same while the hand is
    tracked; `handedness` ("left"/"right", None without a handedness stage) and its `handedness_score` are
    the track's, averaged over its frames; `frames_tracked` counts the frames its track has been seen."""

    id: int
    handedness: str | None
    handedness_score: float
    joints_xyz_mm: np.ndarray
    joints_uvd: np.ndarray
    joints_raw_xyz_mm: np.ndarray | None
    com_xyz_mm: np.ndarray | None
    confidence: float
    frames_tracked: int
    fields: dict[str, object] = field(default_factory=dict)
    record_fields: Mapping[str, object] = field(default_factory=dict)

    def to_record(self) -> dict:
        """This hand's entry in the record's "hands" list (same units and rounding as the frame's fields)."""
        rec = {
            "id": self.id,
            "handedness": self.handedness,
            "handedness_score": round(self.handedness_score, 3),
            "joints_xyz_mm": np.round(self.joints_xyz_mm, 2).tolist(),
            "joints_uv_px": np.round(np.nan_to_num(self.joints_uvd[:, :2], nan=-1.0), 2).tolist(),
            "com_xyz_mm": None if self.com_xyz_mm is None else np.round(self.com_xyz_mm, 2).tolist(),
            "confidence": round(self.confidence, 3),
        }
        rec.update(self.record_fields)
        return rec


class Hud:
    """Numbers the overlay's heads-up line shows, updated by the pipeline after every frame. `lag` is the
    paced source's report (speed against real time), None when the source is not paced."""

    __slots__ = ("fps", "stage_ms", "dropped", "lag", "frames", "_last_ns")

    def __init__(self) -> None:
        self.fps = 0.0
        self.stage_ms: dict[str, float] = {}
        self.dropped = 0
        self.lag: Lag | None = None
        self.frames = 0
        self._last_ns = 0

    def tick(self, now_ns: int, stage_ms: dict[str, float]) -> None:
        if self._last_ns:
            dt = (now_ns - self._last_ns) / 1e9
            if dt > 0:
                inst = 1.0 / dt
                self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst
        self._last_ns = now_ns
        self.stage_ms = stage_ms
        self.frames += 1


def interrupt_inside(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt (our SIGTERM/SIGHUP `Interrupted` is one) or SystemExit hidden in `exc`'s chain.

    A signal handler that raises while C code runs (a numba kernel, a numpy call) makes that call return
    with an exception set, and Python wraps the interrupt in a SystemError ("returned a result with an
    exception set"). Caught as a failing stage it would be counted and the stop lost; it is a stop."""
    seen: set[int] = set()
    e = exc.__cause__ or exc.__context__
    while e is not None and id(e) not in seen:
        if not isinstance(e, Exception):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class Pipeline:
    """Runs `stages` in order on every frame. `dropped_frames()` reports the capture's drops when a
    CaptureThread is attached (run_stream does). The stages' declared contracts are checked here: a stage
    that reads what no earlier stage writes is a one-line InputError before any frame."""

    def __init__(
        self, stages: Sequence, engines: Sequence = (), hud: Hud | None = None, max_hands: int = 1
    ) -> None:
        self.stages = list(stages)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise InputError(f"stage names must be unique, got {names}")
        check_contracts(self.stages)
        self.max_hands = int(max_hands)
        self.tracker = self._tracker() if self.max_hands > 1 else None
        self.engines = list(engines)  # closed with the pipeline
        self.hud = hud or Hud()
        self.capture = None
        self._reported: set[tuple[str, str]] = set()
        self.errors = 0
        # only the stages that add record fields or draw are called for it, so the default chain pays nothing
        self._recorders = tuple(s for s in self.stages if _own_hook(s, "record_fields"))
        drawers = tuple(s.draw for s in self.stages if _own_hook(s, "draw"))
        for s in self.stages:
            if isinstance(s, OverlayStage):
                s.overlay.hud = self.hud
                s.overlay.hooks = drawers

    def _tracker(self):
        """Several hands: the stages after preprocess (and before the overlay) run once per tracked hand,
        each track on its own forks of them (`Stage.fork`); the originals here are only the templates."""
        from .hands import HandTracker

        if self.max_hands < 1 or self.max_hands > MAX_HANDS:
            raise InputError(f"max_hands must be 1..{MAX_HANDS}, got {self.max_hands}")
        if not self.stages or not isinstance(self.stages[0], PreprocessStage):
            raise InputError("max_hands > 1 needs the preprocess stage first in the chain")
        per_hand = [s for s in self.stages[1:] if not isinstance(s, OverlayStage)]
        self._per_hand = per_hand
        self._hand_recorders = tuple(k for k, s in enumerate(per_hand) if _own_hook(s, "record_fields"))
        self._side_after = next(
            (i for i, s in enumerate(per_hand) if "handedness" in getattr(s, "writes", ())), None
        )
        return HandTracker(lambda: [s.fork() for s in per_hand])

    def dropped_frames(self) -> int:
        return int(self.capture.dropped) if self.capture is not None else 0

    @property
    def uses_color(self) -> bool:
        """Whether any stage reads the frames' colour (the overlay, an RGB engine): when none does, the
        source may leave its colour stream closed (`Source.want_color`)."""
        return any(getattr(s, "uses_color", False) for s in self.stages)

    def lag(self) -> Lag | None:
        """The attached capture's source lag (paced sources only)."""
        return source_lag(self.capture.source) if self.capture is not None else None

    def reset(self) -> None:
        """Forget tracking and smoothing state (a new sequence starts)."""
        for s in self.stages:
            r = getattr(s, "reset", None)
            if callable(r):
                r()
        if self.tracker is not None:
            self.tracker.clear()

    def process(self, frame: RGBDFrame) -> FrameResult:
        clock = time.perf_counter_ns
        t_start = clock()
        if not frame.readable:
            return self._unreadable(frame, t_start)
        if self.tracker is not None:
            return self._process_hands(frame, t_start)
        st = FrameState(frame)
        stage_ms: dict[str, float] = {}
        error = ""
        t0 = t_start
        for stage in self.stages:
            try:
                stage.run(st)
            except Exception as exc:  # noqa: BLE001 - a bad frame becomes a "no hand" result, never a lost one
                error = f"{stage.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self._report(stage.name, exc, frame.index)
                self._drop_hand(st)
                if isinstance(stage, OverlayStage):
                    st.image = None
            t1 = clock()
            stage_ms[stage.name] = (t1 - t0) * 1e-6
            t0 = t1
        meta = frame.meta
        # glass-to-result where the source stamped the capture moment (cameras, paced sources); for replay
        # there is no glass, and the wait in the back-pressured queue is not latency: count from here
        t_cap = meta.get("t_capture_ns") or t_start
        found = st.joints_mm is not None
        det = st.detection
        result = FrameResult(
            index=frame.index,
            timestamp_ms=frame.timestamp_ms,
            hand_found=found,
            joints_xyz_mm=st.joints_mm,
            joints_uvd=st.joints_uvd,
            stage_ms=stage_ms,
            latency_ms=(t0 - t_cap) * 1e-6,
            joints_raw_xyz_mm=st.joints_raw_mm,
            com_xyz_mm=det.com_xyz_mm if det is not None else None,
            confidence=float(det.confidence) if det is not None else 0.0,
            outputs=st.outputs,
            reason="" if found else (st.reason or ("error" if error else "no hand")),
            error=error,
            image=st.image,
            fields=st.fields,
            record_fields=self._record_fields(st, frame.index) if self._recorders else _NO_RECORD_FIELDS,
        )
        self.hud.dropped = self.dropped_frames()
        self.hud.lag = self.lag()
        self.hud.tick(t0, stage_ms)
        return result

    def _process_hands(self, frame: RGBDFrame, t_start: int) -> FrameResult:
        """Up to `max_hands` hands: preprocess once for the frame, then every per-hand stage on each hand's
        own FrameState with its track's own stage copies (stage by stage, so each stage's time is the sum
        over the hands: one entry per stage and frame, as with one hand), then the overlay draws them all.
        A stage that raises on one hand drops that hand for this frame, not the others."""
        clock = time.perf_counter_ns
        st = FrameState(frame)
        stage_ms: dict[str, float] = {}
        error = ""
        pre = self.stages[0]
        try:
            pre.run(st)
            states = pre.hand_states(st, self.max_hands)
        except Exception as exc:  # noqa: BLE001 - a bad frame becomes a "no hand" result, never a lost one
            error = self._error_text(pre.name, exc)
            self._report(pre.name, exc, frame.index)
            self._drop_hand(st)
            states = []
        tracks = self.tracker.assign([h.detection.com_xyz_mm for h in states])
        # how many hands are tracked, an unseen one included: the fit stage's jump test reads it
        # (stream/fitting/stage.py)
        for hs in states:
            hs.fields["tracked_hands"] = len(self.tracker.tracks)
        t0 = clock()
        stage_ms[pre.name] = (t0 - t_start) * 1e-6
        alive = list(range(len(states)))
        for k, template in enumerate(self._per_hand):
            for i in list(alive):
                if k == self._side_after and side_settled(tracks[i]):
                    continue  # this track's handedness is settled: the engine need not run on it again
                try:
                    tracks[i].stages[k].run(states[i])
                except Exception as exc:  # noqa: BLE001 - this hand is dropped for this frame, not the others
                    error = error or self._error_text(template.name, exc)
                    self._report(template.name, exc, frame.index)
                    states[i].joints_mm = states[i].joints_uvd = states[i].joints_raw_mm = None
                    self.tracker.lost(tracks[i])
                    alive.remove(i)
            if k == self._side_after:
                self._settle_handedness([states[i] for i in alive], [tracks[i] for i in alive])
            t1 = clock()
            stage_ms[template.name] = (t1 - t0) * 1e-6
            t0 = t1
        shown = [i for i in alive if states[i].joints_mm is not None]
        shown.sort(key=lambda i: (-tracks[i].frames_seen, i))  # the first hand: tracked longest, then best
        hands = tuple(self._hand_result(states[i], tracks[i], frame.index) for i in shown)
        first = states[shown[0]] if shown else (states[0] if states else st)
        for s in self.stages[1:]:
            if isinstance(s, OverlayStage):
                try:
                    drawn = [(states[i], self._label(tracks[i], states[i])) for i in alive]
                    first.image = s.overlay.draw(st, hands=drawn)
                except Exception as exc:  # noqa: BLE001 - a frame without its overlay image, still a result
                    error = error or self._error_text(s.name, exc)
                    self._report(s.name, exc, frame.index)
                    first.image = None
                t1 = clock()
                stage_ms[s.name] = (t1 - t0) * 1e-6
                t0 = t1
        t_cap = frame.meta.get("t_capture_ns") or t_start
        det = first.detection
        found = bool(hands)
        result = FrameResult(
            index=frame.index,
            timestamp_ms=frame.timestamp_ms,
            hand_found=found,
            joints_xyz_mm=first.joints_mm if found else None,
            joints_uvd=first.joints_uvd if found else None,
            stage_ms=stage_ms,
            latency_ms=(t0 - t_cap) * 1e-6,
            joints_raw_xyz_mm=first.joints_raw_mm if found else None,
            com_xyz_mm=det.com_xyz_mm if det is not None else None,
            confidence=float(det.confidence) if det is not None else 0.0,
            outputs=first.outputs,
            reason="" if found else (first.reason or st.reason or ("error" if error else "no hand")),
            error=error,
            image=first.image,
            fields=first.fields,
            record_fields=hands[0].record_fields if found else _NO_RECORD_FIELDS,
            hands=hands,
        )
        self.hud.dropped = self.dropped_frames()
        self.hud.lag = self.lag()
        self.hud.tick(t0, stage_ms)
        return result

    def _settle_handedness(self, states: list[FrameState], tracks: list) -> None:
        """Each hand's handedness becomes its track's: P(left) averaged over the track's frames, then
        hands.settle_sides (the pair rule for two hands, the right-hand prior for a hand alone). Written back into the hands'
        fields, which the pose stage (mirroring left hands) and the records read."""
        from .hands import TrackSide
        from .hands.handedness import settle_sides

        for hs, t in zip(states, tracks):
            if "handedness" in hs.fields:
                now = TrackSide(str(hs.fields["handedness"]), float(hs.fields["handedness_score"]))
                hs.fields["handedness_frame"] = now.label  # this frame's own answer, before the track's
                t.p_left_sum += now.p_left
                t.p_left_n += 1
        for hs, side in zip(states, settle_sides([t.p_left for t in tracks])):
            if side is not None:
                hs.fields["handedness"] = side.label
                hs.fields["handedness_score"] = side.score

    def _hand_result(self, hs: FrameState, track, index: int) -> HandResult:
        det = hs.detection
        rec: dict = {}
        for k in self._hand_recorders:
            s = track.stages[k]
            try:
                rec.update(s.record_fields(hs))
            except Exception as exc:  # noqa: BLE001 - a bad frame loses this stage's fields, not the frame
                self._report(s.name, exc, index)
        score = hs.fields.get("handedness_score")
        return HandResult(
            id=track.id,
            handedness=hs.fields.get("handedness"),  # type: ignore[arg-type]
            handedness_score=float(score) if score is not None else 0.0,
            joints_xyz_mm=hs.joints_mm,
            joints_uvd=hs.joints_uvd,
            joints_raw_xyz_mm=hs.joints_raw_mm,
            com_xyz_mm=det.com_xyz_mm if det is not None else None,
            confidence=float(det.confidence) if det is not None else 0.0,
            frames_tracked=track.frames_seen,
            fields=hs.fields,
            record_fields=rec,
        )

    @staticmethod
    def _label(track, hs: FrameState) -> str:
        """The overlay's label of a hand: its id and L/R (? before a handedness)."""
        side = hs.fields.get("handedness")
        return f"#{track.id} {'L' if side == 'left' else 'R' if side == 'right' else '?'}"

    @staticmethod
    def _error_text(stage: str, exc: Exception) -> str:
        return f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def _unreadable(self, frame: RGBDFrame, t_start: int) -> FrameResult:
        """A frame the source could not read: a "no hand" result saying why, without running the stages
        (there are no pixels). Every stage reports 0 ms so per-stage series stay one entry per frame; the
        trackers are reset, as the hand may have moved during the gap."""
        self._drop_hand(FrameState(frame))
        t_end = time.perf_counter_ns()
        stage_ms = {s.name: 0.0 for s in self.stages}
        self.hud.dropped = self.dropped_frames()
        self.hud.tick(t_end, stage_ms)
        return FrameResult(
            index=frame.index,
            timestamp_ms=frame.timestamp_ms,
            hand_found=False,
            joints_xyz_mm=None,
            joints_uvd=None,
            stage_ms=stage_ms,
            latency_ms=(t_end - (frame.meta.get("t_capture_ns") or t_start)) * 1e-6,
            reason=f"unreadable: {frame.unreadable_reason}",
        )

    def _drop_hand(self, st: FrameState) -> None:
        st.joints_mm = st.joints_uvd = st.joints_raw_mm = None
        st.crop = None
        st.fields.clear()
        for s in self.stages:
            if isinstance(s, Stage):
                s.reset()
        if self.tracker is not None:
            self.tracker.clear()

    def _record_fields(self, st: FrameState, index: int) -> dict:
        """The record fields of the stages that add some; one that raises loses its fields for this frame
        (reported like a failing stage), not the frame."""
        rec: dict = {}
        for s in self._recorders:
            try:
                rec.update(s.record_fields(st))
            except Exception as exc:  # noqa: BLE001 - a bad frame loses this stage's fields, never the frame
                self._report(s.name, exc, index)
        return rec

    def _report(self, stage: str, exc: Exception, index: int) -> None:
        stop = interrupt_inside(exc)
        if stop is not None:  # a Ctrl-C or SIGTERM that arrived inside compiled code: stop, do not count it
            raise stop
        self.errors += 1
        key = (stage, type(exc).__name__)
        if key not in self._reported:
            self._reported.add(key)
            log.warning(
                "stage %s failed on frame %d: %s: %s (further %s errors in this stage are counted, not shown)",
                stage,
                index,
                type(exc).__name__,
                exc,
                type(exc).__name__,
            )

    def close(self) -> None:
        for e in self.engines:
            close = getattr(e, "close", None)
            if callable(close):
                close()
        self.engines = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def source_lag(source) -> Lag | None:
    """A source's lag report, for sources that pace themselves; None for the rest (and for test doubles
    without `lag`)."""
    fn = getattr(source, "lag", None)
    return fn() if callable(fn) else None


def parse_models(models: str | Sequence[str] | None) -> list[str]:
    """ "pose,foo" / ["pose", "foo"] -> ["pose", "foo"]; the pose engine is always first when named."""
    if models is None:
        return ["pose"]
    items = models.split(",") if isinstance(models, str) else list(models)
    out = [m.strip() for m in items if m and m.strip()]
    if not out:
        raise InputError("--models names no engine")
    return out


def build_pipeline(
    backend: str = "auto",
    models: str | Sequence[str] | None = "pose",
    overlay: bool = True,
    smoothing: bool | OneEuroConfig = True,
    threads: int | None = None,
    engine: str | None = None,
    cube_mm: float | None = None,
    warmup: bool = True,
    stage_options: dict[str, dict] | None = None,
    max_hands: int = 1,
    fit: bool | None = None,
    presence: bool | None = None,
    centre: bool | None = None,
) -> Pipeline:
    """The standard pipeline: preprocess -> stages named in `models` -> One Euro -> (overlay).

    `models`: comma-separated or a list of registered stage names ("pose"; `handstream run --list-stages`),
    `STAGE=ENGINE` (a stage with another engine), or engines by shipped name or path, whose manifest task
    picks their stage (a task no stage claims runs in the generic engine stage, which reports raw
    outputs). The first pose engine drives the skeleton; a second engine for a stage already in the chain
    runs beside it as a generic engine stage, to compare the two. The stages run in the given order where
    their declared reads allow, else after the stage that writes what they read; a read nothing writes is
    a one-line InputError. `engine` (a path or shipped name) replaces the pose engine. `smoothing`: True
    (defaults), False (off) or a OneEuroConfig. The cube size and crop size come from the pose engine's
    manifest. `stage_options`: registered stage name -> keyword arguments for that stage's constructor
    (e.g. {"gesture": {"gallery": "mine.npz"}}). `max_hands` 2: up to two hands a frame, each tracked
    with its own id, stage copies and smoothing, and the handedness stage added (when its engine is
    shipped) so a left hand is mirrored into the right-hand pose engine; 1: one hand, as before. `fit`:
    True (`--fit`) fits the articulated hand model to the depth after the pose engine (the "fit" stage,
    stream/fitting) whenever a pose engine drives the skeleton; False (`--no-fit`) never, even when `models`
    names it; None (the default): as True. On by default since it became a compiled kernel: within its
    1 ms of CPU a hand on the 2-core VM it lowers the held-out mean error and keeps one user's bone
    lengths (BENCHMARKS.md, "Model fitting"). `presence`: True/None (the default) chooses a new track's
    first hand among the detector's candidates by the shipped presence engine's P(hand) on their crops
    (stream/hands/presence.py) whenever a pose engine drives the skeleton and that engine is shipped;
    False keeps the detector's order. `centre`: True/None (the default) moves the first hand's centre to
    where the shipped centre engine, reading its crop, puts the hand (stream/hands/centre.py) whenever a
    pose engine drives the skeleton and that engine is shipped; False keeps the segmenter's centre."""
    import engines as engines_pkg

    if not 1 <= int(max_hands) <= MAX_HANDS:
        raise InputError(f"max_hands must be 1..{MAX_HANDS}, got {max_hands}")
    names = parse_models(models)
    if fit is False:
        names = [n for n in names if n != "fit"]
    if engine is not None:
        names = [str(engine)] + [n for n in names if n not in ("pose", str(engine))]
    names = list(dict.fromkeys(names))  # each engine once
    shipped = engines_pkg.shipped_engines()
    if max_hands > 1 and "handedness" in shipped and not any(n.split("=")[0] == "handedness" for n in names):
        names.append("handedness")
    plan = [_plan_stage(n, shipped) for n in names]  # (name, stage class or None = by task, engine ref)
    loaded: list = []
    try:
        for _, _, ref in plan:
            if ref is not None:
                loaded.append(engines_pkg.load_engine(ref, backend=backend, threads=threads))
        return _assemble(
            plan,
            loaded,
            overlay,
            smoothing,
            cube_mm,
            warmup,
            stage_options or {},
            max_hands,
            fit,
            presence=presence is not False and "presence" in shipped,
            backend=backend,
            centre=centre is not False and "centre" in shipped,
        )
    except BaseException:
        for e in loaded:
            e.close()
        raise


def _plan_stage(item: str, shipped: Sequence[str]) -> tuple[str, type | None, str | None]:
    """One `--models` item -> (name, stage class or None when the engine's task decides, engine ref)."""
    from pathlib import Path

    name, sep, ref = item.partition("=")
    if sep and not any(c in name for c in "/\\."):  # STAGE=ENGINE; "runs/lr=1e-4/pose.onnx" is a path
        if not ref.strip():
            raise InputError(f"--models {item!r}: name an engine after '='")
        cls = stage_class(name.strip(), shipped)
        if not cls.needs_engine:
            raise InputError(f"stage {cls.kind!r} runs no engine; name it without '={ref}'")
        return name.strip(), cls, ref.strip()
    try:
        cls = stage_class(item, shipped)
    except InputError:
        looks_like_path = bool(Path(item).suffix) or "/" in item or "\\" in item or Path(item).exists()
        if looks_like_path or item in shipped:
            return item, None, item  # an engine: loaded as before, its manifest's task picks the stage
        raise InputError(unknown_message(item, shipped)) from None
    if cls.always:
        raise InputError(
            f"stage {item!r} is always in the pipeline; --models names engines and optional stages"
        )
    if cls.needs_engine and not cls.engine:
        raise InputError(f"stage {item!r} needs an engine: write {item}=PATH, or the engine's path alone")
    return item, cls, cls.engine if cls.needs_engine else None


def _assemble(
    plan,
    loaded,
    overlay,
    smoothing,
    cube_mm,
    warmup,
    stage_options: dict,
    max_hands: int = 1,
    fit: bool | None = None,
    presence: bool = False,
    backend: str = "auto",
    centre: bool = False,
) -> Pipeline:
    """The planned stages built around their loaded engines, ordered by their contracts and checked.
    `presence`, `centre`: load the shipped presence and centre engines for the preprocess stage when a pose
    engine is in."""
    engines_iter = iter(loaded)
    chosen: list[tuple[str, type, object]] = []
    used: set[type] = set()
    for name, cls, ref in plan:
        e = next(engines_iter) if ref is not None else None
        if cls is None:
            cls = stage_for_task(getattr(e.manifest, "task", "")) or EngineStage
        if cls.needs_engine and cls in used:  # one stage per capability; a second engine reports raw outputs
            cls = EngineStage
        used.add(cls)
        chosen.append((name, cls, e))
    pose_e = next((e for _, cls, e in chosen if cls is PoseStage), None)
    fit_cls = stage_class("fit")
    if fit is not False and pose_e is not None and fit_cls not in used:
        chosen.append(("fit", fit_cls, None))
    pre = dict(pose_e.manifest.preprocessing) if pose_e is not None else {}
    if pose_e is None and loaded:
        pre = dict(loaded[0].manifest.preprocessing)
    crop_size = int(pre.get("crop_size") or 96)
    cube = float(cube_mm or pre.get("cube_mm") or 250.0)
    check = None
    if presence and pose_e is not None:
        import engines as engines_pkg

        from .hands.presence import DOUBTED_P_HAND, SECOND_P_HAND, PresenceCheck

        pe = _helper_engine("presence", backend, warmup)
        loaded = [*loaded, pe]  # closed with the pipeline's engines
        # a set-aside first hand or a second-hand candidate is looked at only where a second hand has room;
        # candidates by the second-hand check's own engine where shipped, else by the presence engine
        two = max_hands > 1
        has_second = two and "presence_second" in engines_pkg.shipped_engines()
        second = _helper_engine("presence_second", backend, warmup) if has_second else None
        loaded += [second] if second is not None else []
        check = PresenceCheck(
            pe,
            doubted_p_hand=DOUBTED_P_HAND if two else None,
            second_p_hand=SECOND_P_HAND if two else None,
            second_engine=second,
        )
    refiner = None
    if centre and pose_e is not None:
        from .hands import centre as centre_mod

        ce = _helper_engine("centre", backend, warmup)
        loaded = [*loaded, ce]  # closed with the pipeline's engines
        refiner = centre_mod.CentreRefiner(
            ce,
            gate_mm=centre_mod.CENTRE_GATE_MM,
            max_towards_camera_mm=centre_mod.CENTRE_MAX_TOWARDS_CAMERA_MM,
            idle_every=centre_mod.CENTRE_IDLE_EVERY,
        )
    stages: list = [PreprocessStage(cube_mm=cube, crop_size=crop_size, presence=check, centre=refiner)]
    for name, cls, e in chosen:
        label = _stage_label(name, cls)
        taken = {s.name for s in stages}
        if label in taken:  # the same engine twice, or a file named like a stage: keep names unique
            label = next(f"{label}_{k}" for k in range(2, 100) if f"{label}_{k}" not in taken)
        opts = stage_options.get(cls.kind, {})
        if cls is fit_cls and pose_e is not None:
            if "alternative" not in opts:
                twin = _twin_engine(pose_e, backend, warmup)
                if twin is not None:
                    loaded = [*loaded, twin]  # closed with the pipeline's engines
                    opts = {**opts, "alternative": twin}
            opts = {"recut_engine": pose_e, **opts}
        stages.append(cls(engine=e, name=label, **opts) if cls.needs_engine else cls(name=label, **opts))
        if warmup and e is not None:
            e.warmup()
    cfg = smoothing if isinstance(smoothing, OneEuroConfig) else None
    stages.append(SmoothStage(cfg, enabled=smoothing is not False))
    unused = set(stage_options) - {type(s).kind for s in stages}
    if unused:
        raise InputError(f"options for stages not in the pipeline: {', '.join(sorted(unused))}")
    stages = order_stages(stages)
    if overlay:
        stages.append(OverlayStage())
    return Pipeline(stages, engines=list(loaded), max_hands=max_hands)


def _twin_engine(pose_e, backend: str, warmup: bool = False):
    """The shipped pose engine's twin read the other way up (engines/flip_canonical.py) for the fit
    stage's second reading of a new hand, when it was derived from this very pose engine; else None."""
    from engines.flip_canonical import twin_of

    name = twin_of(pose_e)
    return None if name is None else _helper_engine(name, backend, warmup)


def _helper_engine(name: str, backend: str, warmup: bool = False):
    """A shipped engine a stage runs beside its own (presence, the pose engine's twin): one thread, and
    ONNX Runtime unless TensorRT was asked for (the torch backend needs a checkpoint none ships with);
    warmed up like the others, so a stream's first new hand does not pay the first call."""
    import engines as engines_pkg

    e = engines_pkg.load_engine(
        name, backend=backend if backend in ("auto", "tensorrt") else "onnxruntime", threads=1
    )
    if warmup:
        e.warmup()
    return e


def _stage_label(name: str, cls: type) -> str:
    """A stage's name in timings and outputs: its registered name, or an engine file's stem."""
    if cls is not EngineStage:
        return cls.kind
    from pathlib import Path

    return Path(str(name)).stem or str(name)


def _own_hook(stage, method: str) -> bool:
    """True when `stage` has its own `method` (not Stage's no-op default), so the pipeline must call it."""
    fn = getattr(type(stage), method, None)
    return callable(fn) and fn is not getattr(Stage, method)


class LogHistogram:
    """Fixed-size running distribution of non-negative milliseconds, for p50/p95/p99 of an endless run.

    Why not a list: a run keeps going for hours, and a list of every frame's time grows ~0.4 kB per frame.
    Bins are log-spaced, `BINS_PER_DECADE` per factor of 10 from `LO_MS` (1 ns) to `HI_MS` (100 s), so a
    percentile is reported as its bin's geometric centre: within 0.6 % of the exact (nearest-rank) value
    for samples in that range, and clamped to the exact min/max seen. Values below `LO_MS` (and 0) fall in
    an underflow bin reported as the min, values above `HI_MS` in an overflow bin reported as the max; NaN
    is counted apart (`nan`) and never enters a percentile. 1 602 int64 counters: 13 kB per series."""

    LO_MS = 1e-6
    HI_MS = 1e5
    BINS_PER_DECADE = 200
    __slots__ = ("counts", "n", "nan", "total", "min", "max")

    _N_INNER = int(round(np.log10(HI_MS / LO_MS) * BINS_PER_DECADE))

    def __init__(self) -> None:
        self.counts = np.zeros(self._N_INNER + 2, np.int64)  # [underflow, inner..., overflow]
        self.n = 0
        self.nan = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, value_ms: float) -> None:
        v = float(value_ms)
        if v != v:
            self.nan += 1
            return
        self.n += 1
        self.total += v
        self.min = min(self.min, v)
        self.max = max(self.max, v)
        self.counts[self._bin(v)] += 1

    def _bin(self, v: float) -> int:
        if v < self.LO_MS:
            return 0
        if v >= self.HI_MS:
            return self._N_INNER + 1
        return 1 + min(int(math.log10(v / self.LO_MS) * self.BINS_PER_DECADE), self._N_INNER - 1)

    def __len__(self) -> int:
        return self.n

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def percentiles(self, qs: Sequence[float] = (50, 95, 99)) -> list[float]:
        """Nearest-rank percentiles (q in 0-100) as bin centres, clamped to [min, max]; NaN when empty."""
        if not self.n:
            return [float("nan")] * len(qs)
        cum = np.cumsum(self.counts)
        out = []
        for q in qs:
            rank = max(1, int(np.ceil(q / 100.0 * self.n)))
            b = int(np.searchsorted(cum, rank))
            if b == 0:
                v = self.min
            elif b == self._N_INNER + 1:
                v = self.max
            else:
                v = self.LO_MS * 10 ** ((b - 1 + 0.5) / self.BINS_PER_DECADE)
            out.append(float(min(max(v, self.min), self.max)))
        return out

    def median(self) -> float:
        return self.percentiles((50,))[0]


@dataclass
class RunStats:
    """What a run did, for the one-line summary. Per-stage and latency distributions are LogHistograms
    (fixed size whatever the run's length); `samples`, when a caller asks run_stream for them (benchmarks
    of a bounded number of frames), also keeps every frame's values by series name ("latency", stages,
    "sinks"). `pacing` is the source's lag report for paced sources (live generator, real-time replay,
    camera), else None."""

    frames: int = 0
    hands: int = 0
    dropped: int = 0
    errors: int = 0
    unreadable: int = 0  # frames the source could not read (each still gave one "no hand" result)
    wall_s: float = 0.0
    latency_ms: LogHistogram = field(default_factory=LogHistogram)
    stage_ms: dict[str, LogHistogram] = field(default_factory=dict)
    total_ms: LogHistogram = field(default_factory=LogHistogram)
    stopped_by_user: bool = False
    samples: dict[str, list[float]] | None = None
    pacing: Lag | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def record(self, result: FrameResult, sinks_ms: float | None = None, readable: bool = True) -> None:
        """Count one frame's result (and the sinks' time for it, when there are sinks). An unreadable frame
        is counted, but its timings (no stage ran on it) stay out of the distributions."""
        self.frames += 1
        self.hands += bool(result.hand_found)
        self.errors += bool(result.error)
        if not readable:
            self.unreadable += 1
            return
        values = dict(result.stage_ms)
        self.total_ms.add(sum(values.values()))  # the pipeline's own stages, sinks excluded
        if sinks_ms is not None:
            values["sinks"] = sinks_ms
        values["latency"] = result.latency_ms
        for k, v in values.items():
            if k == "latency":
                self.latency_ms.add(v)
            else:
                h = self.stage_ms.get(k)
                if h is None:
                    h = self.stage_ms[k] = LogHistogram()
                h.add(v)
            if self.samples is not None:
                self.samples.setdefault(k, []).append(float(v))

    def median_latency_ms(self) -> float:
        return self.latency_ms.median()

    def percentiles(self) -> dict[str, tuple[float, float, float]]:
        """name -> (p50, p95, p99) ms for every stage, their sum and the glass-to-result latency (to the
        bin accuracy LogHistogram states)."""
        series = dict(self.stage_ms)
        if any(k != "sinks" for k in series):
            series["pipeline total"] = self.total_ms
        series["latency"] = self.latency_ms
        out = {}
        for k, h in series.items():
            if len(h):
                a, b, c = h.percentiles((50, 95, 99))
                out[k] = (a, b, c)
        return out

    def table(self) -> str:
        """The percentiles as a small markdown table."""
        rows = ["| stage | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|"]
        rows += [f"| {k} | {a:.2f} | {b:.2f} | {c:.2f} |" for k, (a, b, c) in self.percentiles().items()]
        return "\n".join(rows)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {h.median():.2f}" for k, h in self.stage_ms.items() if len(h))
        mean_ms = float(sum(h.mean for h in self.stage_ms.values() if len(h)))
        capacity = f" (pipeline + sinks alone: {1000.0 / mean_ms:.0f} FPS)" if mean_ms > 0 else ""
        return (
            f"{self.frames} frames"
            + (
                f" ({self.frames - self.unreadable} of {self.frames} frames readable)"
                if self.unreadable
                else ""
            )
            + f", {self.fps:.1f} FPS{capacity}, "
            f"median latency {self.median_latency_ms():.2f} ms, "
            f"hand in {self.hands}/{self.frames}, dropped {self.dropped}"
            + (f", {self.pacing.describe()}" if self.pacing is not None else "")
            + (f", {self.errors} frame errors" if self.errors else "")
            + (f" (median ms: {stages})" if stages else "")
        )


def run_stream(
    source,
    pipeline: Pipeline,
    sinks: Sequence = (),
    max_frames: int | None = None,
    queue_size: int | None = None,
    progress=None,
    keep_samples: bool = False,
) -> RunStats:
    """source -> capture thread -> pipeline -> sinks, until the source ends, `max_frames`, a sink asks to
    stop (window: q/Esc) or Ctrl-C. Always joins the capture thread and closes the sinks. Replay: every
    frame read gives exactly one result to every sink. `keep_samples` also keeps every frame's times in
    `stats.samples` (memory grows with the run: for benchmarks of a bounded length)."""
    from .capture import CaptureThread

    stats = RunStats(samples={} if keep_samples else None)
    cap = CaptureThread(source, capacity=queue_size)
    pipeline.capture = cap
    t0 = time.perf_counter()
    try:
        source.open()  # here, not in the thread: a missing or corrupt input fails before anything starts
        cap.start()
        while max_frames is None or stats.frames < max_frames:
            frame = cap.get()
            if frame is None:
                break
            r = pipeline.process(frame)
            keep_going = True
            t_sink = time.perf_counter_ns()
            for s in sinks:
                if s.write(r, frame) is False:
                    keep_going = False
            stats.record(r, (time.perf_counter_ns() - t_sink) * 1e-6 if sinks else None, frame.readable)
            if progress is not None:
                progress(stats.frames)
            if not keep_going:
                stats.stopped_by_user = True
                break
    finally:
        stats.wall_s = time.perf_counter() - t0
        cap.stop()
        stats.dropped = cap.dropped
        stats.pacing = source_lag(source)
        pipeline.capture = None
        for s in sinks:
            s.close()
    return stats
