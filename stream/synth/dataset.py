"""A synthetic dataset on disk: DIR/meta.json plus shards DIR/shard_NNNNN.npz (arrays listed in ARRAYS).

Shards keep memory bounded while writing and let a loader stream; load_dataset concatenates them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..outputs import prepare_folder, writing_failed
from .hand import (
    BONES,
    FINE_TO_COARSE,
    GESTURES_COARSE,
    GESTURES_FINE,
    JOINT_NAMES,
    NYU_FROM_21,
    NYU_JOINT_NAMES,
)
from .scene import GENERATOR_VERSION, HandSynthesizer, SceneConfig, SynthSample
from .scenes import SCENE_KINDS

ARRAYS = (
    "depth_mm",
    "color",
    "mask",
    "joints_xyz_mm",
    "joints_uvd",
    "orientation_deg",
    "hand_size_mm",
    "gesture_fine",
    "gesture_coarse",
    "subject",
    "sequence",
    "frame",
)
# written only for close-range and mixed scene kinds (frontal datasets keep the bytes they always had): what
# each pixel shows (scene.M_* ids), the held object's material id (-1: none) and each frame's kind (an index
# into SCENE_KINDS), for an evaluation that tells a detection on the hand from one on an object
SCENE_ARRAYS = ("material", "held_material", "scene_kind")
SCENE_KIND_IDS = {k: i for i, k in enumerate(SCENE_KINDS)}
SEQUENCE_LENGTH = 90  # frames per sequence when writing sequences (3 s at 30 fps)


def _samples(synth: HandSynthesizer, n_frames: int, sequences: bool, seq_len: int, fps: float):
    if not sequences:
        for _ in range(n_frames):
            yield synth.sample()
        return
    left = n_frames
    while left > 0:
        n = min(seq_len, left)
        yield from synth.sequence(n, fps)
        left -= n


def _pack(batch: list[SynthSample], color: bool, material: bool = False) -> dict[str, np.ndarray]:
    h, w = batch[0].frame.depth_mm.shape
    out = {
        "depth_mm": np.stack([s.frame.depth_mm for s in batch]).astype(np.uint16),
        "color": np.stack([s.frame.color_bgr for s in batch])
        if color
        else np.zeros((len(batch), h, w, 3), np.uint8),
        "mask": np.stack([s.mask for s in batch]).astype(np.uint8),
        "joints_xyz_mm": np.stack([s.joints_xyz_mm for s in batch]).astype(np.float32),
        "joints_uvd": np.stack([s.joints_uvd for s in batch]).astype(np.float32),
        "orientation_deg": np.stack([s.orientation_deg for s in batch]).astype(np.float32),
        "hand_size_mm": np.stack([s.hand_size_mm for s in batch]).astype(np.float32),
        "gesture_fine": np.array([s.gesture_fine for s in batch], np.int64),
        "gesture_coarse": np.array([s.gesture_coarse for s in batch], np.int64),
        "subject": np.array([s.subject for s in batch], np.int64),
        "sequence": np.array([s.sequence for s in batch], np.int64),
        "frame": np.array([s.frame_index for s in batch], np.int64),
    }
    if material:
        out["material"] = np.stack([s.material for s in batch]).astype(np.int16)
        out["held_material"] = np.array([s.frame.meta["held_material"] for s in batch], np.int16)
        out["scene_kind"] = np.array([SCENE_KIND_IDS[s.scene_kind] for s in batch], np.uint8)
    return out


def dataset_meta(config: SceneConfig, seed: int, n_frames: int, sequences: bool, fps: float) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "n_frames": int(n_frames),
        "sequences": bool(sequences),
        "sequence_length": SEQUENCE_LENGTH if sequences else 1,
        "fps": float(fps),
        "scene_kind": config.scene_kind,
        "intrinsics": config.camera.to_dict(),
        "config": config.to_dict(),
        "joint_names": list(JOINT_NAMES),
        "bones": [list(b) for b in BONES],
        "nyu_joint_names": list(NYU_JOINT_NAMES),
        "nyu_from_21": NYU_FROM_21.tolist(),
        "gestures_fine": list(GESTURES_FINE),
        "gestures_coarse": list(GESTURES_COARSE),
        "fine_to_coarse": FINE_TO_COARSE.tolist(),
        "arrays": list(ARRAYS) + (list(SCENE_ARRAYS) if config.scene_kind != "frontal" else []),
        "units": {
            "depth_mm": "uint16 mm, 0 = no measurement",
            "color": "uint8 BGR aligned to depth (zeros when colour is off)",
            "mask": "uint8 1 = visible hand (wrist, palm, fingers; not the forearm)",
            "joints_xyz_mm": "camera frame mm, x right, y down, z forward",
            "joints_uvd": "pixels u, v and depth mm",
            "orientation_deg": "azimuth = atan2(n_x, -n_z), elevation = asin(-n_y) of the palm normal n",
            "hand_size_mm": "hand length (wrist to middle tip), palm width",
            "sequence": "-1 for independent frames",
            "frame": "index within the sequence (running index for independent frames)",
        },
        "shards": [],
    }


def write_dataset(
    out_dir: str | Path,
    n_frames: int,
    seed: int,
    config: SceneConfig | None = None,
    sequences: bool = False,
    shard_size: int = 256,
    fps: float = 30.0,
    progress: bool = True,
) -> Path:
    """Generate n_frames and write DIR/meta.json + DIR/shard_*.npz (compressed). Returns DIR."""
    if n_frames < 1:
        raise InputError(f"--frames must be >= 1, got {n_frames}")
    if shard_size < 1:
        raise InputError(f"shard size must be >= 1, got {shard_size}")
    config = config or SceneConfig()
    out = prepare_folder(out_dir, "dataset folder")
    try:
        for old in out.glob("shard_*.npz"):
            old.unlink()
    except OSError as exc:
        raise InputError(f"cannot replace the dataset in {out}: {exc.strerror}") from None
    synth = HandSynthesizer(config, seed)
    meta = dataset_meta(config, seed, n_frames, sequences, fps)
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (a log or a pipe gets no progress text)
        bar = tqdm(total=n_frames, unit="frame", desc=f"synth {out.name}", disable=None)
    batch: list[SynthSample] = []

    def flush() -> None:
        name = f"shard_{len(meta['shards']):05d}.npz"
        try:
            np.savez_compressed(out / name, **_pack(batch, config.color, config.scene_kind != "frontal"))
        except OSError as exc:
            (out / name).unlink(missing_ok=True)  # no partial shard a loader would trip over
            raise writing_failed(out / name, exc) from None
        meta["shards"].append({"file": name, "n_frames": len(batch)})
        batch.clear()

    try:
        for s in _samples(synth, n_frames, sequences, SEQUENCE_LENGTH, fps):
            batch.append(s)
            if bar is not None:
                bar.update(1)
            if len(batch) == shard_size:
                flush()
        if batch:
            flush()
    finally:
        if bar is not None:
            bar.close()
    try:
        (out / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError as exc:
        raise writing_failed(out / "meta.json", exc) from None
    return out


def load_dataset(directory: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a dataset written by write_dataset, shards concatenated in order."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"{d} is not a synthetic dataset (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        shards = [d / s["file"] for s in meta["shards"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{meta_path} is not a valid dataset description: {exc}") from exc
    names = ARRAYS + (SCENE_ARRAYS if meta.get("scene_kind", "frontal") != "frontal" else ())
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for path in shards:
        if not path.is_file():
            raise InputError(f"dataset shard {path} is missing")
        try:
            with np.load(path) as z:
                for k in names:
                    parts[k].append(z[k])
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"dataset shard {path} is unreadable: {exc}") from exc
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    return meta, arrays
