"""Pose datasets behind one interface: every source yields labelled depth frames (`LabelledFrame`), which
`make_crops` turns into normalized cube crops + normalized joints exactly as the pipeline does
(stream.preprocess), held in memory as `PoseArrays` and served to torch by `CropDataset`.

Sources:
- synthetic: a `handstream synth` dataset directory (stream.synth.load_dataset) or frames generated in
  memory by stream.synth.HandSynthesizer;
- NYU raw layout: `depth_1_0000001.png` ... + `joint_data.mat` (needs scipy), frontal camera (kinect 1),
  36 -> 14 joints (train.nyu.NYU_36_TO_14);
- a generic folder of 16-bit depth PNGs + `labels.txt` ("FILE x0 y0 z0 x1 ..." camera mm, y down) +
  `camera.json` (intrinsics as stream.frames.CameraIntrinsics.to_dict, or {"name": "d435_320x240"}).

Centre of the cube: `centre="segment"` runs our HandSegmenter (what the pipeline does; frames where it finds
nothing fall back to the mask centre), `"mask"` = 3-D mean of the ground-truth hand mask pixels, `"joints"`
= mean of the joints. `jitter_mm` adds a uniform random offset per axis (re-cutting the crop: exact labels),
and `crops_per_frame` > 1 cuts several jittered crops of each frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.errors import InputError
from stream.frames import CameraIntrinsics, camera


@dataclass(frozen=True, eq=False)
class LabelledFrame:
    """One depth frame with 3-D joints in camera mm (y down) and optionally the hand mask."""

    depth_mm: np.ndarray
    intrinsics: CameraIntrinsics
    joints_xyz_mm: np.ndarray  # (J, 3)
    mask: np.ndarray | None = None


@dataclass(eq=False)
class PoseArrays:
    """Crops and labels in memory. depth (N, S, S) float32 in [-1, 1]; joints (N, J, 3) float32 normalized;
    com_xyz_mm (N, 3) the cube centres used; joints_mm (N, J, 3) the ground truth in camera mm."""

    depth: np.ndarray
    joints: np.ndarray
    com_xyz_mm: np.ndarray
    joints_mm: np.ndarray
    cube_mm: float
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.depth)

    def subset(self, idx: np.ndarray) -> PoseArrays:
        return PoseArrays(
            self.depth[idx],
            self.joints[idx],
            self.com_xyz_mm[idx],
            self.joints_mm[idx],
            self.cube_mm,
            dict(self.meta),
        )

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            depth=self.depth.astype(np.float16),  # crops are coarse depth; half precision halves the file
            joints=self.joints,
            com_xyz_mm=self.com_xyz_mm,
            joints_mm=self.joints_mm,
            cube_mm=np.float64(self.cube_mm),
            meta=np.array(json.dumps(self.meta)),
        )

    @classmethod
    def load(cls, path: str | Path) -> PoseArrays:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"no such crop file: {p}")
        z = np.load(p)
        return cls(
            z["depth"].astype(np.float32),
            z["joints"].astype(np.float32),
            z["com_xyz_mm"],
            z["joints_mm"],
            float(z["cube_mm"]),
            json.loads(str(z["meta"])),
        )

    @staticmethod
    def concat(parts: list[PoseArrays]) -> PoseArrays:
        if not parts:
            raise InputError("no crops to concatenate")
        return PoseArrays(
            np.concatenate([p.depth for p in parts]),
            np.concatenate([p.joints for p in parts]),
            np.concatenate([p.com_xyz_mm for p in parts]),
            np.concatenate([p.joints_mm for p in parts]),
            parts[0].cube_mm,
            dict(parts[0].meta),
        )


# ------------------------------------------------------------------------------------------ centres
def mask_centre(frame: LabelledFrame) -> np.ndarray | None:
    """3-D mean of the valid depth pixels inside the ground-truth hand mask."""
    from stream.geometry import depth_to_points

    if frame.mask is None:
        return None
    pts = depth_to_points(frame.depth_mm, frame.intrinsics, frame.mask)
    return pts.mean(axis=0).astype(np.float64) if len(pts) else None


def frame_centre(
    frame: LabelledFrame, centre: str, segmenter=None, max_dev_mm: float = 60.0
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(com_xyz_mm, mask to crop with, found_by_segmenter) for one frame.

    With "segment", a segmenter centre more than `max_dev_mm` from the ground-truth mask centre (it found
    something else, or cut the hand badly) is not used for training: the mask centre and mask replace it."""
    if centre == "segment":
        seg = segmenter.segment(frame.depth_mm, frame.intrinsics)
        gt = mask_centre(frame)
        if seg.found:
            com = np.asarray(seg.best.com_xyz_mm, dtype=np.float64)
            if gt is None or np.linalg.norm(com - gt) <= max_dev_mm:
                return com, seg.best.mask, True
        if gt is None:
            gt = np.asarray(frame.joints_xyz_mm, dtype=np.float64).mean(axis=0)
        return gt, frame.mask, False
    if centre == "mask":
        com = mask_centre(frame)
        if com is not None:
            return com, frame.mask, False
    if centre in ("mask", "joints"):
        return np.asarray(frame.joints_xyz_mm, dtype=np.float64).mean(axis=0), frame.mask, False
    raise InputError(f"centre must be 'segment', 'mask' or 'joints', got {centre!r}")


def make_crops(
    frames: Iterable[LabelledFrame],
    size: int = 128,
    cube_mm: float = 250.0,
    centre: str = "mask",
    jitter_mm: float = 0.0,
    crops_per_frame: int = 1,
    use_mask: bool = True,
    seed: int = 0,
    progress: bool = False,
    min_visible_px: int = 0,
    max_abs_norm: float = 0.0,
) -> PoseArrays:
    """Cut normalized cube crops (stream.preprocess.crop_cube) and normalize the joints with the same cube.

    Training filters: `min_visible_px` > 0 drops frames whose ground-truth mask has fewer measured pixels
    (the hand is out of view or hidden: nothing to learn from); `max_abs_norm` > 0 drops crops with a joint
    outside that normalized range (a tanh output cannot reach it)."""
    from stream.preprocess import HandSegmenter, crop_cube, normalize_joints

    rng = np.random.default_rng(seed)
    segmenter = HandSegmenter() if centre == "segment" else None
    depth, joints, coms, jmm = [], [], [], []
    found = total = 0
    it = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, desc="crops", unit="frame")
    dropped = 0
    for fr in it:
        total += 1
        if min_visible_px and (fr.mask is None or int((fr.mask & (fr.depth_mm > 0)).sum()) < min_visible_px):
            dropped += 1
            continue
        com, mask, ok = frame_centre(fr, centre, segmenter)
        found += ok
        for _ in range(crops_per_frame):
            c = com + rng.uniform(-jitter_mm, jitter_mm, 3) if jitter_mm > 0 else com
            crop = crop_cube(fr.depth_mm, fr.intrinsics, c, cube_mm, size, mask if use_mask else None)
            jn = normalize_joints(fr.joints_xyz_mm, crop)
            if max_abs_norm and float(np.abs(jn).max()) > max_abs_norm:
                dropped += 1
                continue
            depth.append(crop.depth)
            joints.append(jn)
            coms.append(crop.com_xyz_mm)
            jmm.append(np.asarray(fr.joints_xyz_mm, dtype=np.float64))
    if not depth:
        raise InputError("the dataset yielded no frames")
    meta = {
        "size": size,
        "centre": centre,
        "jitter_mm": jitter_mm,
        "frames": total,
        "use_mask": use_mask,
        "dropped": dropped,
    }
    if centre == "segment":
        meta["segmenter_found"] = found
    return PoseArrays(
        np.stack(depth).astype(np.float32),
        np.stack(joints).astype(np.float32),
        np.stack(coms),
        np.stack(jmm),
        float(cube_mm),
        meta,
    )


# ------------------------------------------------------------------------------------------ sources
def synthetic_dir_frames(data_dir: str | Path, limit: int = 0) -> Iterator[LabelledFrame]:
    """Frames of a `handstream synth` dataset directory."""
    from stream.synth import load_dataset

    meta, arrays = load_dataset(data_dir)
    intr = _synth_intrinsics(meta)
    depth = arrays["depth_mm"]
    joints = arrays["joints_xyz_mm"]
    masks = arrays.get("mask")
    n = len(depth) if not limit else min(limit, len(depth))
    for i in range(n):
        yield LabelledFrame(depth[i], intr, joints[i], None if masks is None else masks[i])


def _synth_intrinsics(meta: dict) -> CameraIntrinsics:
    cam = meta.get("camera") or meta.get("intrinsics")
    if isinstance(cam, dict):
        return CameraIntrinsics.from_dict(cam)
    if isinstance(cam, str):
        return camera(cam)
    raise InputError("synthetic dataset metadata names no camera")


def synthetic_frames(
    n_frames: int, seed: int, config=None, subject_offset: int = 0, start: int = 0
) -> Iterator[LabelledFrame]:
    """Frames generated in memory by stream.synth (default scene: D435 320x240, body, distractors, forearm).

    `subject_offset` shifts the subject ids (stream.synth draws 0..n_subjects-1, as every `handstream synth`
    test set does), so training hands can be disjoint from test hands."""
    synth = subject_synthesizer(config or default_scene(), seed, subject_offset)
    for k in range(start, start + n_frames):
        s = synth.sample_at(k)
        yield LabelledFrame(s.frame.depth_mm, s.frame.intrinsics, s.joints_xyz_mm, s.mask)


def subject_synthesizer(config, seed: int, subject_offset: int = 0):
    """A stream.synth.HandSynthesizer whose independent frames use subjects offset by `subject_offset`.

    stream.synth has no option for that, so this subclass repeats its `sample_at` with the offset (same
    random draws otherwise); with offset 0 it is the stock generator."""
    from stream.synth import HandSynthesizer
    from stream.synth.hand import hand_shape

    if not subject_offset:
        return HandSynthesizer(config, seed)

    class _Offset(HandSynthesizer):
        def sample_at(self, k: int):
            rng = np.random.default_rng([self.seed, 0, int(k)])
            subject = int(rng.integers(self.config.n_subjects)) + subject_offset
            shape = hand_shape(subject, self.config.child_fraction, self.config.anthropometry)
            state = self._random_state(rng, shape)
            states2 = self._second_hand(rng, shape, state) if self.config.two_hands else None
            ctx = self._context(rng, shape, state, states2)
            return self._render(rng, shape, state, ctx, states2, sequence=-1, frame_index=k, timestamp_ms=0.0)

    return _Offset(config, seed)


def default_scene():
    """The scene the shipped model is trained and tested on: a D435 at 320x240 with a body, a forearm and
    distractor objects."""
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import SceneConfig

    return SceneConfig(camera=KNOWN_CAMERAS["d435_320x240"], body=True, distractors=True, forearm=True)


def nyu_raw_frames(root: str | Path, kinect: int = 1, limit: int = 0) -> Iterator[LabelledFrame]:
    """NYU raw layout: ROOT/joint_data.mat (joint_uvd: kinect x frame x 36 x 3) + depth_K_NNNNNNN.png.

    Only the frontal camera (kinect 1) is used, as in the seed (§4.4.1) and the community protocol. Joints
    become the 14 evaluation joints in our camera frame (y down). Needs scipy for the .mat file."""
    from stream.depth_io import read_depth

    from .nyu import NYU_36_TO_14, NYU_CAMERA, nyu_uvd_to_camera

    root = Path(root)
    mat = root / "joint_data.mat"
    if not mat.is_file():
        raise InputError(f"{root}: no joint_data.mat (NYU raw layout expected)")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise InputError("reading NYU's joint_data.mat needs scipy: pip install scipy") from None
    uvd = np.asarray(loadmat(str(mat))["joint_uvd"], dtype=np.float64)
    if uvd.ndim != 4 or uvd.shape[2:] != (36, 3):
        raise InputError(f"{mat}: joint_uvd has shape {uvd.shape}, expected (kinects, frames, 36, 3)")
    uvd = uvd[kinect - 1][:, list(NYU_36_TO_14)]
    n = len(uvd) if not limit else min(limit, len(uvd))
    for i in range(n):
        png = root / f"depth_{kinect}_{i + 1:07d}.png"
        depth = read_depth(png, "nyu")
        yield LabelledFrame(depth, NYU_CAMERA, nyu_uvd_to_camera(uvd[i], NYU_CAMERA))


def folder_frames(root: str | Path, limit: int = 0) -> Iterator[LabelledFrame]:
    """Generic folder: labels.txt ("FILE x0 y0 z0 ..." camera mm, y down), camera.json, 16-bit depth PNGs
    (depth unit from camera.json's depth_unit_mm, default 1 mm)."""
    from stream.depth_io import read_depth

    root = Path(root)
    cam_file, labels = root / "camera.json", root / "labels.txt"
    for f in (cam_file, labels):
        if not f.is_file():
            raise InputError(f"{root}: missing {f.name} (folder layout: labels.txt, camera.json, PNGs)")
    try:
        cam = json.loads(cam_file.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{cam_file}: not JSON ({exc})") from None
    intr = camera(cam["name"]) if set(cam) == {"name"} else CameraIntrinsics.from_dict(cam)
    count = 0
    for ln, line in enumerate(labels.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            vals = np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise InputError(f"{labels}:{ln}: labels must be numbers") from None
        if len(vals) == 0 or len(vals) % 3:
            raise InputError(
                f"{labels}:{ln}: expected FILE then 3 numbers per joint, got {len(vals)} numbers"
            )
        depth = read_depth(root / parts[0], "png16", intr.depth_unit_mm)
        yield LabelledFrame(depth, intr, vals.reshape(-1, 3))
        count += 1
        if limit and count >= limit:
            return


SOURCES = {
    "synthetic": synthetic_dir_frames,
    "nyu": nyu_raw_frames,
    "folder": folder_frames,
}


def load_frames(kind: str, path: str | Path, limit: int = 0) -> Iterator[LabelledFrame]:
    """One interface over the dataset kinds: 'synthetic', 'nyu' (raw layout) or 'folder'."""
    if kind not in SOURCES:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(SOURCES)}")
    return SOURCES[kind](path, limit=limit)


# ------------------------------------------------------------------------------------------ torch side
def torch_dataset(arrays: PoseArrays):
    """A torch Dataset over crops: items (input (1, S, S) float32, target (3J,) float32)."""
    import torch
    from torch.utils.data import TensorDataset

    x = torch.from_numpy(np.ascontiguousarray(arrays.depth[:, None], dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(arrays.joints.reshape(len(arrays), -1), dtype=np.float32))
    return TensorDataset(x, y)
