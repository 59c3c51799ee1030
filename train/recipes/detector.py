"""`handstream train detector`: train the tiny hand detector (train/detector.py) on synthetic full frames and
export it as the shipped `detector` engine (engines/default/detector.onnx + .json, task "detect-hand"), or
under another `--name`: `detector_close`, the rescue detector fine-tuned mostly on close-range scenes.

    nice -n 5 handstream train detector frames=6000 minutes=15 [--out engines/default]

Defaults in configs/detector.yaml; a `key=value` word or a `--flag` overrides them.

Data (generated once, cached under data/detector/, git-ignored): stream.synth frames with body, forearm,
distractors and occluders from four cameras (D435 at 320x240 and 640x480, SR300 640x480, NYU's Kinect
640x480), `two_hand_share` (25 %) of them with two hands (both hands labelled), and the hand pushed partly or
wholly out of the picture in 15 % (so the presence score learns "no hand" from frames with an arm but no
hand, not only from empty ones). Seeds: `train_seed` (TRAIN_SEED) + camera index for training, VAL_SEED for validation -- both disjoint from the seeds
`handstream eval segmentation` and the tests use (0-99). With `close_share` > 0 that share of each camera's
frames are close-range scenes (stream/synth/scenes.py: half egocentric, half desk; hands at 200-500 mm,
often holding an object, table clutter behind), seeds + CLOSE_SEED_OFFSET (+ 100 for desk): a detector that
saw only frontal scenes put a real egocentric hand on a bottle 900 mm away.

`--extra-data SET.npz` adds a frame set cached by another `--data-only` run (other `--train-seed`, another mix)
to the training frames. Each epoch writes runs/epoch-NNN.pt (export one with `--init it --minutes 0`, to
judge checkpoints through the whole pipeline) and runs/resume.pt (`--resume` goes on after a stop).

`--distill-mask W` (with `--init`) adds W x the BCE of the mask logits against a frozen copy of the starting
model's mask probabilities on every batch, so that a fine-tune for new hands (second hands, close range)
keeps the masks it started with. Measured (BENCHMARKS.md, "Close-range and hand-object scenes"): it keeps
the segmentation IoU, but the frontal pose losses of such fine-tunes come mostly from a few frames where
the first hand chosen is another object, which holding the masks does not prevent.

`--widen-deep N` (with `--init`) grows the starting model's context to N channels before training, with the
same outputs at the first step (train.detector.widen_context): room for new scenes without starting over.

`--init ENGINE.onnx` fine-tunes an exported engine (the shipped one: its training checkpoint is not kept):
the folded convolutions are loaded with identity BatchNorms that stay frozen
(train.detector.load_folded_onnx), and the statistics are not recomputed after training, nor when one of
its checkpoints (marked `batchnorm_frozen`) is exported.

Targets per frame, at 1/4 of the 160x120 input (stream/preprocess/detect.py's detector_input):
- heatmap: a Gaussian (sigma 1 cell) at each hand's palm centre = mean of the wrist and the four finger MCPs,
  for hands at least 40 % visible (visibility as train/eval_segmentation.py defines it: visible pixels /
  pixels of the same hand rendered alone by a padded camera, here at the input's 160x120 resolution);
  around hands 15-40 % visible the loss is switched off (weight 0): neither a miss nor a false detection;
- mask: the fraction of each output cell covered by measured hand pixels (all hands, forearm excluded);
- depth (the default; --no-depth-head for the two-output detector): the mean depth (m) of the hand's measured pixels, in the
  cells within DEPTH_RADIUS_CELLS of the palm of hands at least 40 % visible (elsewhere unsupervised). The
  runtime snaps it to the nearest measured surface near the peak: the hand, not the occluder before it.
With `--hard-negative-weight K` the heatmap loss counts K times on cells covered by objects (the held one
included) and forearms, in proportion to the share they cover: the wrong choices at close range are mostly
the held object. Measured at K = 4: 1-1.5 points fewer wrong objects at close range, more missed hands and
fewer pairs found, so it is off by default.
Loss: CenterNet focal loss on the heatmap + BCE + dice on the mask + DEPTH_WEIGHT x L1 on the depth. AdamW, cosine learning rate, horizontal
flips and sensor-like pixel drop-outs; one torch thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.geometry import xyz_to_uvd
from stream.preprocess.detect import DETECTOR_TASK, detector_input, input_geometry
from train.eval_segmentation import PALM_JOINTS, _Alone

from . import register, single_process
from .options import parse_recipe_args

INPUT_WH = (160, 120)
STRIDE = 4
DEPTH_SCALE_MM = 1000.0
DEPTH_CLIP_M = 3.0
SIGMA_CELLS = 1.0
POS_VISIBILITY = 0.4
IGNORE_VISIBILITY = 0.15
TRAIN_SEED = 1000
VAL_SEED = 500
DATA_VERSION = 3  # v2: per-hand visible depth (info[..., 4]) and OCCLUDER_PROB occluders; v3: `hard` cells
# camera, share of frames, hand distance range (mm)
CAMERAS = (
    ("d435_320x240", 0.35, (300.0, 700.0)),
    ("d435_640x480", 0.30, (300.0, 700.0)),
    ("sr300_640x480", 0.15, (300.0, 900.0)),
    ("nyu", 0.20, (350.0, 1000.0)),
)
TWO_HAND_SHARE = 0.25
DEPTH_RADIUS_CELLS = 2.0
DEPTH_WEIGHT = 5.0
OUT_OF_VIEW_PROB = 0.15
# the segmenter took the occluder in front of the hand for it in ~4 % of the pose test frames (before the
# detector saw occluders); the pose scenes have occluders in 30 % of the frames, the detector sees them in half
OCCLUDER_PROB = 0.5
CLOSE_SEED_OFFSET = 100
DETECTOR_PARITY_ATOL = 1e-3  # max |PyTorch - ONNX Runtime| over the three outputs (see export below)


def _synth_class():
    from stream.synth import HandSynthesizer

    class OutOfViewSynthesizer(HandSynthesizer):
        """The generator with the hand sometimes pushed partly or wholly out of the picture (the arm
        still reaching in): frames without a visible hand, for a calibrated presence score."""

        def _random_state(self, rng, shape, *args, **kwargs):
            st = super()._random_state(rng, shape, *args, **kwargs)
            if rng.random() >= OUT_OF_VIEW_PROB:
                return st
            intr = self.config.camera
            z = float(st.center_mm[2])
            u = float(st.center_mm[0] * intr.fx / z + intr.cx)
            v = float(st.center_mm[1] * intr.fy / z + intr.cy)
            if rng.random() < 0.5:
                u = intr.width * (rng.uniform(-0.35, 0.02) if rng.random() < 0.5 else rng.uniform(0.98, 1.35))
            else:
                v = intr.height * (
                    rng.uniform(-0.35, 0.02) if rng.random() < 0.5 else rng.uniform(0.98, 1.35)
                )
            c = np.array([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z])
            return replace(st, center_mm=c)

    return OutOfViewSynthesizer


def _gaussian(h: np.ndarray, cu: float, cv: float, sigma: float) -> None:
    hh, ww = h.shape
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float32)
    g = np.exp(-((xs - cu) ** 2 + (ys - cv) ** 2) / (2 * sigma**2))
    iu, iv = int(round(cu)), int(round(cv))
    if 0 <= iu < ww and 0 <= iv < hh:
        g[iv, iu] = 1.0  # the peak cell is exactly 1 (the focal loss's positive)
    np.maximum(h, g, out=h)


def frame_targets(s, cam, alone) -> tuple[np.ndarray, ...]:
    """One generator sample -> (input x, heatmap, loss weight, mask fraction, per-hand info): a heatmap peak
    and mask on *every* hand of the frame (the first and the second of a two-hand frame alike), and nothing
    on what is not a hand: a held object, the forearms, the sleeve, the table's objects are background, so
    the detector learns to score them low (see the module docstring for each target). `alone` counts each
    hand's pixels rendered by itself at the input's resolution (its visibility)."""
    geo = input_geometry((cam.width, cam.height), INPUT_WH, STRIDE)
    oh, ow = INPUT_WH[1] // STRIDE, INPUT_WH[0] // STRIDE
    w = np.ones((oh, ow), np.uint8)
    # per hand: cell u, v, visibility, present, mean depth of its measured pixels (m; 0 = none measured)
    info = np.zeros((2, 5), np.float32)
    d = s.frame.depth_mm
    geoms = [s.frame.meta["hand_geometry"], *s.frame.meta["other_hand_geometries"]]
    hands = [(s.mask, s.joints_xyz_mm)] + [(o.mask, o.joints_xyz_mm) for o in s.other_hands]
    x, _ = detector_input(d, INPUT_WH, DEPTH_SCALE_MM, DEPTH_CLIP_M, stride=STRIDE)
    allmask = np.zeros(d.shape, np.float32)
    hm = np.zeros((oh, ow), np.float32)
    for j, ((m, joints), g) in enumerate(zip(hands, geoms)):
        n_alone, _ = alone.counts(g)
        m_small = cv2.resize(m.view(np.uint8), INPUT_WH, interpolation=cv2.INTER_NEAREST)
        vis = min(1.0, float(m_small.sum()) / max(n_alone, 1))
        palm = np.asarray(joints, np.float64)[list(PALM_JOINTS)].mean(axis=0)
        u, v, _ = xyz_to_uvd(palm, cam)
        cu, cv_ = geo.frame_to_cell(u, v)
        meas = m & (d > 0)
        z_m = float(d[meas].mean()) / DEPTH_SCALE_MM if meas.any() else 0.0
        info[j] = (cu, cv_, vis, 1.0, z_m)
        allmask[meas] = 1.0
        if vis >= POS_VISIBILITY:
            _gaussian(hm, cu, cv_, SIGMA_CELLS)
        elif vis >= IGNORE_VISIBILITY:
            ys, xs = np.mgrid[0:oh, 0:ow]
            w[(xs - cu) ** 2 + (ys - cv_) ** 2 <= 9.0] = 0
    mk = np.round(cv2.resize(allmask, (ow, oh), interpolation=cv2.INTER_AREA) * 255).astype(np.uint8)
    return x, hm, w, mk, info, hard_cells(s, (ow, oh))


def hard_cells(s, out_wh: tuple[int, int]) -> np.ndarray:
    """The fraction (0-255) of each output cell showing what the detector mistakes for a hand: objects (the
    held one included) and forearms (`--hard-negative-weight` weighs the heatmap loss there up). Measured
    close-range errors are mostly these (BENCHMARKS.md, "Close-range and hand-object scenes")."""
    from stream.synth.scene import M_ARM, M_ARM2, M_OBJECT

    if s.material is None:
        return np.zeros(out_wh[::-1], np.uint8)
    m = s.material
    hard = ((m >= M_OBJECT) | (m == M_ARM) | (m == M_ARM2)) & (s.frame.depth_mm > 0)
    small = cv2.resize(hard.astype(np.float32), out_wh, interpolation=cv2.INTER_AREA)
    return np.round(small * 255).astype(np.uint8)


def make_frames(
    n: int, seed: int, camera: str, dist_mm, two_hands_share: float, scene_kind: str = "frontal"
) -> dict[str, np.ndarray]:
    """n frames of one camera and scene kind -> network inputs and targets (see the module docstring)."""
    from stream.synth import SceneConfig

    cls = _synth_class()
    cam = KNOWN_CAMERAS[camera]
    scene = SceneConfig(
        camera=cam, color=False, hand_distance_mm=dist_mm, occluder_prob=OCCLUDER_PROB, scene_kind=scene_kind
    )
    one = cls(scene, seed)
    two = cls(replace(scene, two_hands=True), seed + 50)
    small = cam.scaled(*INPUT_WH) if cam.width * 3 == cam.height * 4 else None
    if small is None:
        raise InputError(f"{camera}: training cameras must be 4:3")
    alone = _Alone(small)
    oh, ow = INPUT_WH[1] // STRIDE, INPUT_WH[0] // STRIDE
    X = np.zeros((n, INPUT_WH[1], INPUT_WH[0]), np.float16)
    HM = np.zeros((n, oh, ow), np.float16)
    W = np.ones((n, oh, ow), np.uint8)
    MK = np.zeros((n, oh, ow), np.uint8)
    HARD = np.zeros((n, oh, ow), np.uint8)
    info = np.zeros((n, 2, 5), np.float32)
    rng_mix = np.random.default_rng([seed, 7])
    for k in range(n):
        pair = rng_mix.random() < two_hands_share
        syn = two if pair else one
        X[k], HM[k], W[k], MK[k], info[k], HARD[k] = frame_targets(syn.sample_at(k), cam, alone)
    return {"x": X, "heat": HM, "weight": W, "mask": MK, "info": info, "hard": HARD}


def dataset(
    n: int,
    seed: int,
    data_dir: Path,
    label: str,
    close_share: float = 0.0,
    two_hand_share: float = TWO_HAND_SHARE,
) -> dict[str, np.ndarray]:
    """The camera mix of CAMERAS (close_share of each camera's frames close-range scenes, two_hand_share of
    every kind's frames with a second hand), cached as data_dir/label-vV-n-seed[-closeS][-twoT].npz."""
    tag = f"-close{close_share:g}" if close_share > 0 else ""
    tag += f"-two{two_hand_share:g}" if two_hand_share != TWO_HAND_SHARE else ""
    path = data_dir / f"{label}-v{DATA_VERSION}-{n}-{seed}{tag}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    parts = []
    t0 = time.perf_counter()
    for i, (cam, share, dist) in enumerate(CAMERAS):
        m = int(round(n * share))
        m_close = int(round(m * close_share))
        runs = [("frontal", m - m_close, seed + i)]
        runs += [("egocentric", m_close // 2, seed + CLOSE_SEED_OFFSET + i)]
        runs += [("desk", m_close - m_close // 2, seed + 2 * CLOSE_SEED_OFFSET + i)]
        for kind, count, kseed in runs:
            if count > 0:
                parts.append(make_frames(count, kseed, cam, dist, two_hand_share, kind))
                print(f"{label}: {cam} {kind} {count} frames ({time.perf_counter() - t0:.0f} s)", flush=True)
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    data_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def _batch(data, idx, rng, augment: bool, hard_weight: float = 1.0):
    import torch

    x = data["x"][idx].astype(np.float32)
    hm = data["heat"][idx].astype(np.float32)
    w = data["weight"][idx].astype(np.float32)
    if hard_weight != 1.0:
        w *= 1.0 + (hard_weight - 1.0) * (data["hard"][idx].astype(np.float32) / 255.0)
    mk = data["mask"][idx].astype(np.float32) / 255.0
    dz, dw = _depth_target(data["info"][idx], hm.shape[1:])
    if augment:
        flip = rng.random(len(idx)) < 0.5
        for a in (x, hm, w, mk, dz, dw):
            a[flip] = a[flip, :, ::-1]
        # sensor-like drop-outs: a few random pixels and one random hole per frame lose their depth
        drop = rng.random(x.shape) < rng.uniform(0.0, 0.04, (len(idx), 1, 1))
        x[drop] = 0.0
    t = [torch.from_numpy(np.ascontiguousarray(a)[:, None]) for a in (x, hm, w, mk, dz, dw)]
    return t


def _depth_target(info: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(target depth m, weight) maps: each hand >= POS_VISIBILITY visible with measured pixels sets its depth
    within DEPTH_RADIUS_CELLS of its palm cell (the nearer hand wins where two overlap)."""
    n = len(info)
    ys, xs = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    dz = np.zeros((n, *hw), np.float32)
    dw = np.zeros((n, *hw), np.float32)
    for j in np.argsort(-info[:, :, 4], axis=1).T:  # farther hand first, the nearer one overwrites
        h = info[np.arange(n), j]
        ok = (h[:, 3] > 0) & (h[:, 2] >= POS_VISIBILITY) & (h[:, 4] > 0)
        near = (xs - h[:, 0, None, None]) ** 2 + (ys - h[:, 1, None, None]) ** 2 <= DEPTH_RADIUS_CELLS**2
        near &= ok[:, None, None]
        dz[near] = np.broadcast_to(h[:, 4, None, None], near.shape)[near]
        dw[near] = 1.0
    return dz, dw


def _peak_metrics(model, data, batch: int = 128) -> dict:
    """Validation: a hand >= 50 % visible counts found when a heatmap peak >= 0.5 lies within 2 cells of
    its palm; false = peaks >= 0.5 near no hand (>= 15 % visible). With the depth head: the median and
    p90 absolute error (mm) of the predicted depth at the palm cell of those hands."""
    import torch

    from stream.preprocess.detect import find_peaks

    model.eval()
    found = total = false = 0
    derr: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(data["x"]), batch):
            x = torch.from_numpy(data["x"][i : i + batch].astype(np.float32))[:, None]
            outs = model(x)
            heat = outs[0]
            if len(outs) > 2:
                for dmap, inf in zip(outs[2][:, 0].numpy(), data["info"][i : i + batch]):
                    for h in inf:
                        if h[3] > 0 and h[2] >= 0.5 and h[4] > 0:
                            iu = min(max(int(round(h[0])), 0), dmap.shape[1] - 1)
                            iv = min(max(int(round(h[1])), 0), dmap.shape[0] - 1)
                            derr.append(abs(float(dmap[iv, iu]) - float(h[4])) * 1000.0)
            for hmap, inf in zip(heat[:, 0].numpy(), data["info"][i : i + batch]):
                peaks = find_peaks(hmap, 0.5, 4)
                hands = [h for h in inf if h[3] > 0]
                for h in hands:
                    if h[2] >= 0.5:
                        total += 1
                        found += any(math.hypot(p[0] - h[0], p[1] - h[1]) <= 2.0 for p in peaks)
                for p in peaks:
                    near = any(
                        h[2] >= IGNORE_VISIBILITY and math.hypot(p[0] - h[0], p[1] - h[1]) <= 2.5
                        for h in hands
                    )
                    false += not near
    model.train()
    res = {"found": found / max(total, 1), "false_per_frame": false / len(data["x"])}
    if derr:
        res["depth_err_mm_p50"] = float(np.median(derr))
        res["depth_err_mm_p90"] = float(np.percentile(derr, 90))
    return res


def mask_teacher(model, init: Path | None, fmt):
    """A frozen copy of the model as `--init` gave it (before any step): the masks a fine-tune is held to."""
    import copy

    if init is None:
        raise InputError("--distill-mask needs --init (the model whose masks to keep)")
    teacher = copy.deepcopy(model).to(memory_format=fmt)
    teacher.eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    return teacher


def distill_loss(student_mask_logits, teacher, x):
    """BCE of the student's mask logits against the teacher's mask probabilities on the same batch."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        target = torch.sigmoid(teacher(x)[1])
    return F.binary_cross_entropy_with_logits(student_mask_logits, target)


def _save_epoch(model, opt, rng, a, row: dict, history: list, prior_minutes: float, frozen_bn: bool) -> None:
    """After each epoch: the weights as runs/epoch-NNN.pt (an --init for export: `--minutes 0`, so each one
    can be judged) and everything --resume needs in runs/resume.pt (a long run on a shared machine may be
    stopped)."""
    import torch

    state = {k: v.contiguous() for k, v in model.state_dict().items()}  # NCHW whatever it trains in
    kwargs = {"width": a.width, "deep": a.deep, "depth_head": a.depth_head}
    ck = {"state_dict": state, "kwargs": kwargs, "minutes": prior_minutes + row["s"] / 60.0}
    torch.save({**ck, "batchnorm_frozen": frozen_bn}, a.runs / f"epoch-{row['epoch']:03d}.pt")
    resume = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": rng.bit_generator.state,
        "step": row["step"],
        "epoch": row["epoch"],
        "history": history,
        "prior_minutes": prior_minutes,
        "elapsed_s": float(row["s"]),
    }
    torch.save(resume, a.runs / "resume.tmp")
    (a.runs / "resume.tmp").replace(a.runs / "resume.pt")


@register(
    "detector", "the tiny hand detector on synthetic frames, exported as the `detector` engine (or --name)"
)
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="handstream train detector",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--frames", type=int)
    p.add_argument("--val-frames", type=int)
    p.add_argument("--minutes", type=float, help="training wall-clock budget (0 with --init: export only)")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--width", type=int)
    p.add_argument("--deep", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="train in PyTorch's default NCHW memory (NHWC, the default, made a batch-32 step 1.3-1.6x faster)",
    )
    p.add_argument(
        "--no-depth-head", dest="depth_head", action="store_false", help="the v1 two-output detector"
    )
    p.add_argument("--data-dir", type=Path, help="where the generated frames are cached")
    p.add_argument("--runs", type=Path, help="the run's checkpoint and history")
    p.add_argument("--out", type=Path, help="where the engine is exported")
    p.add_argument(
        "--name",
        help="the exported engine's name (NAME.onnx + NAME.json): detector, or detector_close for the "
        "close-range rescue detector (SegmenterConfig.rescue_detector_engine)",
    )
    p.add_argument("--data-only", action="store_true", help="generate (cache) the data and stop")
    p.add_argument(
        "--init",
        type=Path,
        help="start from this checkpoint (runs/detector/last.pt) or exported engine (.onnx), not scratch",
    )
    p.add_argument(
        "--close-share",
        type=float,
        help="share of each camera's frames from close-range (egocentric and desk) scenes",
    )
    p.add_argument(
        "--val-close-share",
        type=float,
        help="close-range share of the validation frames (default: --close-share's)",
    )
    p.add_argument(
        "--two-hand-share", type=float, help="share of each kind's frames with a second hand (both labelled)"
    )
    p.add_argument(
        "--train-seed",
        type=int,
        help="first seed of the training frames (a second set of frames for --extra-data needs another one)",
    )
    p.add_argument(
        "--extra-data",
        type=Path,
        action="append",
        default=[],
        help="a cached frame set (.npz written by --data-only) added to the training frames; repeatable",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --runs from its last epoch (resume.pt): same budget, schedule and data",
    )
    p.add_argument(
        "--distill-mask",
        type=float,
        help="with --init: also pull the mask logits towards the starting model's own on every batch, with "
        "this weight (0: off), so a fine-tune that learns new hands keeps the masks it started with",
    )
    p.add_argument(
        "--hard-negative-weight",
        type=float,
        help="weight of the heatmap loss on cells showing objects or forearms (1: as every cell)",
    )
    p.add_argument(
        "--widen-deep",
        type=int,
        help="with --init: grow the context to this many channels, keeping the model's function "
        "(train.detector.widen_context; 0: keep the width)",
    )
    p.add_argument(
        "--bn-batches",
        type=int,
        help="after training, recompute BatchNorm statistics over this many augmented training batches "
        "(-1, the default: one pass over the training frames; 0: keep the running averages)",
    )
    a = parse_recipe_args(p, list(argv or []), "detector", repo_paths=("data_dir", "runs", "out"))
    single_process("detector", "a 15-minute CPU model: one process is enough")

    for key in ("close_share", "two_hand_share", "val_close_share"):
        if getattr(a, key) is not None and not 0.0 <= getattr(a, key) <= 1.0:
            raise InputError(f"{key} must lie in [0, 1], got {getattr(a, key)}")
    if a.hard_negative_weight < 1.0:
        raise InputError(f"hard_negative_weight must be >= 1, got {a.hard_negative_weight}")
    if a.train_seed in range(VAL_SEED - 10, VAL_SEED + 2 * CLOSE_SEED_OFFSET + 10):
        raise InputError(f"train_seed {a.train_seed} overlaps the validation seeds ({VAL_SEED}..)")
    val_close = a.close_share if a.val_close_share is None else a.val_close_share
    val = dataset(a.val_frames, VAL_SEED, a.data_dir, "val", val_close)
    train = dataset(a.frames, a.train_seed, a.data_dir, "train", a.close_share, a.two_hand_share)
    for path in a.extra_data:
        if not path.is_file():
            raise InputError(f"--extra-data {path}: no such file")
        with np.load(path) as z:
            if sorted(z.files) != sorted(train):
                raise InputError(
                    f"--extra-data {path}: not a detector frame set of data version {DATA_VERSION} "
                    f"(it holds {', '.join(z.files)}; generate it again with --data-only)"
                )
            train = {k: np.concatenate([train[k], z[k]]) for k in train}
    if a.data_only:
        return 0

    import torch

    from engines.export import export_onnx
    from train.detector import (
        create_detector,
        depth_loss,
        focal_heatmap_loss,
        freeze_batchnorm,
        load_folded_onnx,
        mask_loss,
        widen_context,
    )
    from train.trainer import recompute_bn_stats

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_detector(width=a.width, deep=a.deep, depth_head=a.depth_head)
    prior_minutes = 0.0
    frozen_bn = False
    if a.init and a.init.suffix == ".onnx":
        meta = json.loads(a.init.with_suffix(".json").read_text())
        kw = meta["training"]["model_kwargs"]
        a.width, a.deep, a.depth_head = kw["width"], kw["deep"], kw.get("depth_head", a.depth_head)
        model = create_detector(width=a.width, deep=a.deep, depth_head=a.depth_head)
        load_folded_onnx(model, a.init)
        prior_minutes = float(meta["training"].get("minutes_before", 0.0)) + float(
            meta["training"]["minutes"]
        )
        frozen_bn, a.bn_batches = True, 0
    elif a.init:
        ck = torch.load(a.init, map_location="cpu")
        a.width, a.deep = ck["kwargs"]["width"], ck["kwargs"]["deep"]
        model = create_detector(width=a.width, deep=a.deep, depth_head=a.depth_head)
        model.load_two_channel(ck["state_dict"])  # a v1 checkpoint gets a fresh depth channel
        prior_minutes = float(ck.get("minutes", 0.0))
        if ck.get("batchnorm_frozen"):  # a fine-tune of an exported engine: its BatchNorms stay the identity
            frozen_bn, a.bn_batches = True, 0
    if a.widen_deep:
        if not a.init:
            raise InputError("--widen-deep needs --init (the model to grow)")
        if a.widen_deep < a.deep:
            raise InputError(f"--widen-deep {a.widen_deep}: fewer channels than the model's {a.deep}")
        model, a.deep = widen_context(model, a.widen_deep), a.widen_deep
    # NHWC weights and batches: oneDNN skips its reorders (train.trainer.TrainConfig.channels_last); the
    # model goes back to NCHW before it is saved and exported
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if frozen_bn:
        freeze_batchnorm(model)
    teacher = mask_teacher(model, a.init, fmt) if a.distill_mask else None
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    n = len(train["x"])
    budget_s = a.minutes * 60.0
    t0 = time.perf_counter()
    step = 0
    epoch = 0
    history = []
    a.runs.mkdir(parents=True, exist_ok=True)
    if a.resume:
        state_path = a.runs / "resume.pt"
        if not state_path.is_file():
            raise InputError(f"--resume: {state_path} does not exist (no epoch of this run finished)")
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["state_dict"])
        opt.load_state_dict(st["optimizer"])
        rng.bit_generator.state = st["rng"]
        step, epoch, history, prior_minutes = st["step"], st["epoch"], st["history"], st["prior_minutes"]
        t0 -= st["elapsed_s"]
        print(f"resumed at epoch {epoch}, {st['elapsed_s']:.0f} s of {budget_s:.0f} s", flush=True)
    while time.perf_counter() - t0 < budget_s:
        perm = rng.permutation(n)
        losses = []
        for i in range(0, n - a.batch + 1, a.batch):
            frac = min(1.0, (time.perf_counter() - t0) / budget_s)
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * frac)) + 1e-5
            x, hm, w, mk, dz, dw = _batch(train, perm[i : i + a.batch], rng, True, a.hard_negative_weight)
            x = x.contiguous(memory_format=fmt)
            outs = model(x)
            loss = focal_heatmap_loss(outs[0], hm, w) + mask_loss(outs[1], mk)
            if teacher is not None:
                loss = loss + a.distill_mask * distill_loss(outs[1], teacher, x)
            if a.depth_head:
                loss = loss + DEPTH_WEIGHT * depth_loss(outs[2], dz, dw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if frac >= 1.0:
                break
        epoch += 1
        m = _peak_metrics(model, val)
        if frozen_bn:
            freeze_batchnorm(model)
        row = {
            "epoch": epoch,
            "step": step,
            "s": round(time.perf_counter() - t0),
            "loss": float(np.mean(losses)),
            **m,
        }
        history.append(row)
        print(json.dumps(row), flush=True)
        _save_epoch(model, opt, rng, a, row, history, prior_minutes, frozen_bn)
    bn_seen = 0
    if a.bn_batches:
        # precise BN (train.trainer.recompute_bn_stats): the per-epoch rows above use the running averages
        # of the last ~10 batches and swing by several points of "found" for that alone
        k = n // a.batch if a.bn_batches < 0 else a.bn_batches
        # k batches of a shuffled order, repeated cyclically when k asks for more than one pass
        order = np.resize(rng.permutation(n), (k, a.batch))
        batches = (_batch(train, idx, rng, True)[0].contiguous(memory_format=fmt) for idx in order)
        bn_seen = recompute_bn_stats(model, batches)
        print(f"BatchNorm statistics recomputed over {bn_seen} training batches", flush=True)
    model = model.to(memory_format=torch.contiguous_format)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "kwargs": {"width": a.width, "deep": a.deep, "depth_head": a.depth_head},
            "minutes": prior_minutes + a.minutes,
            "batchnorm_frozen": frozen_bn,
        },
        a.runs / "last.pt",
    )
    final = _peak_metrics(model, val)
    parity = val["x"][:8].astype(np.float32)[:, None]
    path = export_onnx(
        model,
        a.out,
        a.name,
        (1, 1, INPUT_WH[1], INPUT_WH[0]),
        {
            "version": "1.0.0",
            "task": DETECTOR_TASK,
            "preprocessing": {
                "crop_size": None,
                "input": "depth",
                "input_width": INPUT_WH[0],
                "input_height": INPUT_WH[1],
                "output_stride": STRIDE,
                "depth_scale_mm": DEPTH_SCALE_MM,
                "depth_clip_m": DEPTH_CLIP_M,
                "resize": "cv2.INTER_NEAREST, aspect kept, letterbox top-left, padding = 0 (missing)",
                "heatmap": f"palm centre (mean of joints {list(PALM_JOINTS)}), Gaussian sigma {SIGMA_CELLS} cell",
                "mask": "logits of visible hand pixels (forearm excluded)",
                **(
                    {"depth": "metres: mean depth of the hand's measured pixels, valid near a palm peak"}
                    if a.depth_head
                    else {}
                ),
            },
            "training": {
                "model": "train.detector.HandDetectorNet",
                "model_kwargs": {"width": a.width, "deep": a.deep, "depth_head": a.depth_head},
                "occluder_prob": OCCLUDER_PROB,
                "script": "handstream train detector",
                "frames": n,
                "close_share": a.close_share,
                "two_hand_share": a.two_hand_share,
                "hard_negative_weight": a.hard_negative_weight,
                "extra_data": [p.name for p in a.extra_data],
                "cameras": [c[0] for c in CAMERAS],
                "seeds": {"train": a.train_seed, "val": VAL_SEED},
                "minutes": a.minutes,
                "continued_from": str(a.init) if a.init else None,
                "minutes_before": float(prior_minutes),
                "bn_stats_batches": bn_seen,
                "batchnorm_frozen": frozen_bn,
                "lr": a.lr,
                "epochs": epoch,
                "steps": step,
                "batch": a.batch,
                "threads": a.threads,
            },
            "metrics": {
                "trained": True,
                "val_frames": len(val["x"]),
                **{f"val_{k}": round(v, 4) for k, v in final.items()},
            },
        },
        parity_inputs=parity,
        output_names=("heatmap", "mask", "depth") if a.depth_head else ("heatmap", "mask"),
        # the mask logits reach +-30 after long training: float32 rounding then differs by ~2e-4 between
        # PyTorch and ONNX Runtime (1e-5 relative; heatmap and depth agree to ~3e-6), and the segmenter
        # only compares them with -2. The pose engines keep the default 1e-4.
        atol=DETECTOR_PARITY_ATOL,
    )
    (a.runs / "history.json").write_text(json.dumps(history, indent=1))
    print(f"exported {path} ({path.stat().st_size / 1024:.0f} kB); val {final}")
    return 0
