"""Hand-size data from the generator, seen through the runtime's own preprocessing and pose engine.

Every frame goes through the stream's PreprocessStage (our segmentation and the metric cube crop, sized as the pose engine's manifest says) and
PoseStage (the shipped pose engine), exactly as `handstream run` sees it, so the networks learn from the
crops they will get and the linear baseline from the skeleton the runtime predicts. Subjects draw their hands
from ANSUR II (SceneConfig(anthropometry="ansur")), adults only, and are the grouping unit of every split:
training subjects are offset by TRAIN_SUBJECT_OFFSET, far from the ids 0..n_subjects-1 that `handstream
synth` test sets use, so a default test set holds only unseen hands.

Static sequences (a hand held still with small tremor and drift, fresh sensor noise every frame) measure
the seed's temporal stability: the spread of the predictions over a sequence whose truth never changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream.errors import InputError
from train.arrays import ArraySet

TRAIN_SUBJECT_OFFSET = 10_000
STATIC_FPS = 30.0


@dataclass
class SizeArrays(ArraySet):
    """Crops and labels of a size dataset. `crop`: (N, S, S) float32 normalized depth (1 = background);
    `size_mm`: (N, 2) length, width; `subject`, `sequence` (-1 for independent frames), `frame`;
    `features`: (N, F) geometric features for the linear baseline (train.size.features); `found`: the
    segmenter found a hand (frames without one have a blank crop and are left out of training)."""

    crop: np.ndarray
    size_mm: np.ndarray
    subject: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    features: np.ndarray
    found: np.ndarray


def size_scene(n_subjects: int = 400):
    """The study's scene: the default D435 320x240 scene (body, forearm, distractors), ANSUR hands, no
    colour (the depth crop is the input)."""
    from train.data import default_scene

    return replace(default_scene(), anthropometry="ansur", n_subjects=int(n_subjects), color=False)


class CropMaker:
    """The runtime's preprocess + pose stages, run on one frame at a time (no smoothing: frames of a
    dataset are independent or start their own sequence)."""

    def __init__(self) -> None:
        import engines
        from stream.stages import PoseStage, PreprocessStage

        pose = engines.load_engine("pose", backend="onnxruntime", threads=1)
        pre = pose.manifest.preprocessing
        self.crop_size = int(pre.get("crop_size") or 96)
        self.cube_mm = float(pre.get("cube_mm") or 250.0)
        self.pre = PreprocessStage(cube_mm=self.cube_mm, crop_size=self.crop_size)
        self.pose = PoseStage(pose)

    def reset(self) -> None:
        self.pre.reset()

    def __call__(self, frame) -> tuple[np.ndarray, np.ndarray, bool]:
        """(crop (S, S), features (F,), found) of one frame."""
        from stream.stages import FrameState

        from .features import geometric_features

        st = FrameState(frame)
        self.pre.run(st)
        if st.crop is None:
            blank = np.ones((self.crop_size, self.crop_size), np.float32)
            return blank, np.full(len(FEATURE_NAMES_), np.nan, np.float32), False
        self.pose.run(st)
        return st.crop.depth.astype(np.float32), geometric_features(st.crop, st.joints_raw_mm), True


def _feature_names() -> tuple[str, ...]:
    from .features import FEATURE_NAMES

    return FEATURE_NAMES


FEATURE_NAMES_ = _feature_names()


def _pack(rows: list[tuple]) -> SizeArrays:
    crop, feat, found, size, subj, seq, fr = zip(*rows)
    return SizeArrays(
        np.stack(crop).astype(np.float32),
        np.stack(size).astype(np.float32),
        np.array(subj, np.int64),
        np.array(seq, np.int64),
        np.array(fr, np.int64),
        np.stack(feat).astype(np.float32),
        np.array(found, bool),
    )


def independent_frames(n_frames: int, seed: int, n_subjects: int, subject_offset: int, start: int = 0):
    """Independent generator frames (SynthSample) with ANSUR subjects offset by `subject_offset`."""
    from train.data import subject_synthesizer

    synth = subject_synthesizer(size_scene(n_subjects), seed, subject_offset)
    for k in range(start, start + n_frames):
        yield synth.sample_at(k)


def static_sequence(synth, index: int, n_frames: int, subject: int, tremor_mm: float = 1.5):
    """A hand held still for `n_frames`: one random pose and scene, a slow drift and tremor of a few mm and
    a degree or two, fresh sensor noise every frame. Uses the generator's own state and render steps (it has
    no still-hand mode)."""
    from stream.synth.hand import hand_shape

    cfg = synth.config
    rng = np.random.default_rng([synth.seed, 7, int(index)])
    shape = hand_shape(subject, cfg.child_fraction, cfg.anthropometry)
    state = synth._random_state(rng, shape)
    ctx = synth._context(rng, shape, state, None)
    drift = rng.normal(0.0, 0.3, 3)  # mm per frame
    for i in range(n_frames):
        c = state.center_mm + drift * i + rng.normal(0.0, tremor_mm, 3)
        st = replace(
            state,
            center_mm=c,
            roll_deg=state.roll_deg + float(rng.normal(0.0, 1.5)),
            wrist_flex_deg=state.wrist_flex_deg + float(rng.normal(0.0, 1.0)),
            pose_deg=state.pose_deg + rng.normal(0.0, 1.0, state.pose_deg.shape),
        )
        frame_rng = np.random.default_rng([synth.seed, 8, int(index), i])
        yield synth._render(
            frame_rng,
            shape,
            st,
            ctx,
            None,
            sequence=int(index),
            frame_index=i,
            timestamp_ms=1000.0 * i / STATIC_FPS,
        )


def build_frames(samples, maker: CropMaker, progress: str = "") -> SizeArrays:
    """Run the maker over SynthSamples (resetting its tracking at every new sequence)."""
    rows = []
    last_seq = None
    it = samples
    if progress:
        from tqdm import tqdm

        it = tqdm(samples, desc=progress, unit="frame", disable=None)
    for s in it:
        if s.sequence < 0 or s.sequence != last_seq:
            maker.reset()
        last_seq = s.sequence
        crop, feat, found = maker(s.frame)
        rows.append((crop, feat, found, s.hand_size_mm, s.subject, s.sequence, s.frame_index))
    if not rows:
        raise InputError("no frames to build a size dataset from")
    return _pack(rows)


def build_static(n_sequences: int, frames: int, seed: int, n_subjects: int, maker: CropMaker) -> SizeArrays:
    """`n_sequences` static sequences of held-out subjects 0..n_subjects-1."""
    from stream.synth import HandSynthesizer

    synth = HandSynthesizer(size_scene(n_subjects), seed)

    def gen():
        for s in range(n_sequences):
            yield from static_sequence(synth, s, frames, subject=s % n_subjects)

    return build_frames(gen(), maker)


def from_synth_dir(directory: str | Path, maker: CropMaker, limit: int = 0) -> SizeArrays:
    """A `handstream synth` dataset (its hand sizes, subjects and sequences) through the runtime's stages."""
    from stream.frames import RGBDFrame
    from stream.synth.dataset import load_dataset
    from train.data import _synth_intrinsics

    meta, a = load_dataset(directory)
    if "hand_size_mm" not in a or "subject" not in a:
        raise InputError(f"{directory}: the dataset carries no hand size or subject")
    intr = _synth_intrinsics(meta)
    n = len(a["depth_mm"]) if not limit else min(limit, len(a["depth_mm"]))
    rows = []
    last_seq = None
    for i in range(n):
        seq = int(a["sequence"][i])
        if seq < 0 or seq != last_seq:
            maker.reset()
        last_seq = seq
        frame = RGBDFrame(
            index=i, timestamp_ms=0.0, depth_mm=a["depth_mm"][i], intrinsics=intr, source="synth"
        )
        crop, feat, found = maker(frame)
        rows.append((crop, feat, found, a["hand_size_mm"][i], a["subject"][i], seq, a["frame"][i]))
    return _pack(rows)


def sequences(n_sequences: int, frames: int, seed: int, n_subjects: int):
    """Moving generator sequences (gestures change, the hand moves) of subjects 0..n_subjects-1."""
    from stream.synth import HandSynthesizer

    synth = HandSynthesizer(size_scene(n_subjects), seed)
    for _ in range(n_sequences):
        yield from synth.sequence(frames, STATIC_FPS)


def build_study(
    out: str | Path,
    train_frames: int,
    test_frames: int,
    test_sequences: int,
    static: int,
    train_subjects: int = 600,
    test_subjects: int = 100,
    seed: int = 0,
) -> dict[str, Path]:
    """The study's data under `out`: train.npz (independent frames of training subjects), test.npz
    (independent frames of held-out subjects), seq.npz (moving 90-frame sequences of held-out subjects, for
    calibration) and static.npz (30-frame still-hand sequences of held-out subjects, for stability). Each
    part is written once and kept: a rerun resumes with what is missing."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    maker = CropMaker()
    parts = {
        "train": lambda: independent_frames(train_frames, seed + 1, train_subjects, TRAIN_SUBJECT_OFFSET),
        "test": lambda: independent_frames(test_frames, seed + 2, test_subjects, 0),
        "seq": lambda: sequences(test_sequences, 90, seed + 3, test_subjects),
    }
    paths = {}
    for name, gen in parts.items():
        p = paths[name] = out / f"{name}.npz"
        if not p.is_file():
            build_frames(gen(), maker, progress=name).save(p)
    p = paths["static"] = out / "static.npz"
    if not p.is_file():
        build_static(static, 30, seed + 4, test_subjects, maker).save(p)
    return paths
