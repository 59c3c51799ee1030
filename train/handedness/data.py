"""Handedness crops: the pose engine's normalized depth cube around each hand of the generator's two-hand
scenes, labelled left or right.

The generator's first hand is a right hand and its second (`SceneConfig(two_hands=True)`) a left hand, so
both sides come from real geometry, not only from mirroring. Training also mirrors crops horizontally with
the label swapped: a mirrored right hand IS a left hand, up to perspective (the crop's columns are mirrored
about the cube centre's column, while the camera's rays fan out from its own centre; at a 300 mm cube 300+
mm away the difference is a few pixels at the crop's edges). The held-out check uses the generator's own
left hands, unmirrored.

Crops are cut as the pipeline cuts them (stream.preprocess.crop_cube around the 3-D mean of the hand's
measured pixels, masked), with a random offset of the centre, because the runtime's centre comes from the
segmenter and is never exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.arrays import ArraySet

LEFT, RIGHT = 1, 0  # the label: 1 = left hand (the engine's output is P(left))


@dataclass(eq=False)
class HandednessCrops(ArraySet):
    """depth (N, S, S) float16 normalized crops; left (N,) uint8 (1 = left hand); subject (N,) int."""

    depth: np.ndarray
    left: np.ndarray
    subject: np.ndarray

    compressed = False


def scene(two_hands: bool = True):
    """The generator's default scene (body, forearm, distractors) with the second, left hand."""
    from stream.frames import KNOWN_CAMERAS
    from stream.synth import SceneConfig

    return SceneConfig(
        camera=KNOWN_CAMERAS["d435_320x240"], two_hands=two_hands, color=False, body=True, distractors=True
    )


def hand_crop(depth_mm, intr, mask, cube_mm: float, size: int, jitter_mm: float, rng, min_px: int):
    """The normalized crop around one hand's measured pixels, or None when fewer than `min_px` are seen."""
    from stream.geometry import depth_to_points
    from stream.preprocess import crop_cube

    seen = mask & (depth_mm > 0)
    if int(seen.sum()) < min_px:
        return None
    com = depth_to_points(depth_mm, intr, seen).mean(axis=0).astype(np.float64)
    if jitter_mm > 0:
        com = com + rng.uniform(-jitter_mm, jitter_mm, 3)
    return crop_cube(depth_mm, intr, com, cube_mm, size, mask).depth


def make_crops(
    n_frames: int,
    seed: int,
    subject_offset: int = 0,
    cube_mm: float = 300.0,
    size: int = 64,
    jitter_mm: float = 15.0,
    min_px: int = 150,
    progress: bool = False,
) -> HandednessCrops:
    """Crops of both hands of `n_frames` independent two-hand frames (hands with >= `min_px` measured
    pixels). `subject_offset` keeps training subjects apart from the test sets' (which use 0..39)."""
    from train.data import subject_synthesizer

    synth = subject_synthesizer(scene(), seed, subject_offset)
    rng = np.random.default_rng([seed, 77])
    depth, left, subject = [], [], []
    for k in range(n_frames):
        s = synth.sample_at(k)
        f = s.frame
        hands = [(s.mask, RIGHT)] + [(o.mask, LEFT) for o in s.other_hands]
        for mask, side in hands:
            c = hand_crop(f.depth_mm, f.intrinsics, mask, cube_mm, size, jitter_mm, rng, min_px)
            if c is not None:
                depth.append(c.astype(np.float16))
                left.append(side)
                subject.append(s.subject)
        if progress and (k + 1) % 500 == 0:
            print(f"  {k + 1}/{n_frames} frames, {len(left)} crops", flush=True)
    return HandednessCrops(np.stack(depth), np.array(left, np.uint8), np.array(subject, np.int32))


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="write handedness crops (npz) from the generator")
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--subject-offset", type=int, default=1000)
    args = ap.parse_args(argv)
    crops = make_crops(args.frames, args.seed, args.subject_offset, progress=True)
    crops.save(args.out)
    print(f"{len(crops)} crops ({int(crops.left.sum())} left) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
