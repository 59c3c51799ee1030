"""Centre-refinement crops: the pose engine's crop as the runtime cuts it, with the offset to the hand's centre.

The preprocess stage (tracking and the presence check on, the centre engine off) runs over generator
sequences; for every frame whose first hand lies near a generator hand, its crop is kept (resized to 64 px,
as `stream.hands.centre` feeds the engine) with the target: the offset from the crop's centre to the mean
point of that hand's visible pixels, pushed 10 mm back as the segmenter pushes its own centre, over half the
cube. A crop whose offset is over `max_offset_mm` is on another object (nothing a refinement could mend)
and is left out. With `--jitter-mm`, each frame also gives a crop cut around the centre moved at random
(normal, that many mm a coordinate), as DeepPrior++ trains its refinement: the network then also sees
crops already near the hand, which is where a moved centre's next frame puts it.

    python -m train.centre.data --kinds egocentric,desk,frontal --seeds 31001,31002 --out crops.npz
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from train.arrays import ArraySet

KINDS = ("frontal", "egocentric", "desk")
PUSH_BACK_MM = 10.0  # as the segmenter's centre (stream/preprocess/segment: the CoM pushed back)


@dataclass(eq=False)
class CentreCrops(ArraySet):
    """depth (N, 64, 64) float16 normalized crops; offset_mm (N, 3) float32 from the crop's centre to the
    hand's; half_cube_mm (N,) float32, half the crop's cube (the network's target is their ratio); kind (N,) int8 index into KINDS; jittered (N,) uint8 (1: cut around a randomly moved centre);
    on_hand (N,) uint8 (1: the runtime's centre was on the hand, by train.eval_synthetic.on_hand)."""

    depth: np.ndarray
    offset_mm: np.ndarray
    half_cube_mm: np.ndarray
    kind: np.ndarray
    jittered: np.ndarray
    on_hand: np.ndarray

    @property
    def target(self) -> np.ndarray:
        """What the network regresses: the offset over half the cube, (N, 3) float32."""
        return (self.offset_mm / self.half_cube_mm[:, None]).astype(np.float32)


def hand_centre_mm(mask: np.ndarray, depth_mm: np.ndarray, intr) -> np.ndarray | None:
    """The mean camera point of the mask's measured pixels, pushed `PUSH_BACK_MM` back along its ray."""
    ys, xs = np.nonzero(mask & (depth_mm > 0))
    if len(ys) == 0:
        return None
    z = depth_mm[ys, xs].astype(np.float64)
    c = np.array([((xs - intr.cx) * z / intr.fx).mean(), ((ys - intr.cy) * z / intr.fy).mean(), z.mean()])
    return c * (c[2] + PUSH_BACK_MM) / c[2]


def collect(
    kinds: list[str],
    seeds: list[int],
    frames: int = 300,
    jitter_mm: float = 0.0,
    max_offset_mm: float = 150.0,
    camera: str = "d435_320x240",
) -> CentreCrops:
    """Crops and targets from `frames` generator frames of every kind and seed (sequences as
    `handstream eval synthetic` draws them)."""
    import cv2

    from stream.frames import KNOWN_CAMERAS, RGBDFrame
    from stream.hands.centre import CENTRE_INPUT_PX
    from stream.pipeline import build_pipeline
    from stream.preprocess import crop_cube
    from stream.stages import FrameState
    from train.eval_segmentation import _Alone
    from train.eval_synthetic import SEQUENCE_LENGTH, on_hand, scene_frames, truth_hands

    intr0 = KNOWN_CAMERAS[camera]
    alone = _Alone(intr0)
    pipe = build_pipeline(overlay=False, warmup=False, centre=False)
    pre = pipe.stages[0]
    rng = np.random.default_rng(sum(seeds) + 7)
    depth, offset, half, kind_i, jit, ok = [], [], [], [], [], []

    def keep(crop, off, k, j, good) -> None:
        x = cv2.resize(crop.depth.astype(np.float32), (CENTRE_INPUT_PX,) * 2, interpolation=cv2.INTER_NEAREST)
        depth.append(x.astype(np.float16))
        offset.append(off.astype(np.float32))
        half.append(crop.cube_mm / 2.0)
        kind_i.append(k)
        jit.append(j)
        ok.append(good)

    try:
        for kind in kinds:
            for seed in seeds:
                for new_seq, s in scene_frames(kind, frames, seed, camera, False, SEQUENCE_LENGTH):
                    if new_seq:
                        pre.reset()
                    f = s.frame
                    st = FrameState(
                        RGBDFrame(index=0, timestamp_ms=0.0, depth_mm=f.depth_mm, intrinsics=f.intrinsics)
                    )
                    pre.run(st)
                    if st.detection is None or st.crop is None:
                        continue
                    com = np.asarray(st.detection.com_xyz_mm, np.float64)
                    best = None
                    for t in truth_hands(s, alone):
                        c = hand_centre_mm(t.mask, f.depth_mm, f.intrinsics) if t.visible else None
                        if c is not None and (best is None or np.linalg.norm(c - com) < best[0]):
                            best = (float(np.linalg.norm(c - com)), c, t)
                    if best is None or best[0] > max_offset_mm:
                        continue
                    _, c, t = best
                    k = KINDS.index(kind)
                    keep(st.crop, c - com, k, 0, bool(on_hand(com, t, f.intrinsics)))
                    if jitter_mm > 0:
                        com_j = com + rng.normal(0.0, jitter_mm, 3)
                        cj = crop_cube(
                            f.depth_mm, f.intrinsics, com_j, pre.cube_mm, pre.crop_size, st.detection.mask
                        )
                        if np.any(cj.depth < 1.0):
                            keep(cj, c - com_j, k, 1, bool(on_hand(com_j, t, f.intrinsics)))
    finally:
        pipe.close()
    return CentreCrops(
        np.stack(depth) if depth else np.zeros((0, CENTRE_INPUT_PX, CENTRE_INPUT_PX), np.float16),
        np.array(offset, np.float32).reshape(-1, 3),
        np.array(half, np.float32),
        np.array(kind_i, np.int8),
        np.array(jit, np.uint8),
        np.array(ok, np.uint8),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--kinds", default=",".join(KINDS), help=f"scene kinds, comma-separated ({', '.join(KINDS)})"
    )
    ap.add_argument("--seeds", required=True, help="generator seeds, comma-separated (apart from test seeds)")
    ap.add_argument("--frames", type=int, default=300, help="frames per kind and seed")
    ap.add_argument("--jitter-mm", type=float, default=0.0, help="also a crop around a randomly moved centre")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown scene kind {bad[0]!r}; one of {', '.join(KINDS)}")
    crops = collect(kinds, [int(s) for s in a.seeds.split(",")], a.frames, a.jitter_mm)
    crops.save(a.out)
    print(f"{a.out}: {len(crops)} crops ({int(crops.jittered.sum())} jittered)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
