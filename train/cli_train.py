"""`handstream train RECIPE ...`: routes to the training recipe registered under RECIPE (train/recipes/).

    handstream train pose --config FILE [--resume] [key=value ...]   # one run from a config (any model)
    handstream train pose gen|train|test|...                          # the default pose model in stages
    handstream train detector [key=value ...]                         # the hand detector engine
    handstream train search --config FILE [--storage URL --study-name NAME]

A run config is YAML or JSON with the fields of train.trainer.TrainConfig. `data` (and optionally
`val_data`) say where crops come from:

    data: {kind: synthetic, path: data/synth_train, limit: 0,            # a `handstream synth` directory
           size: 128, cube_mm: 250, centre: mask, jitter_mm: 10, crops_per_frame: 2}
    data: {kind: generate, frames: 5000, seed: 1000, subject_offset: 1000, ...}   # stream.synth in memory
    data: {kind: nyu, path: NYU/train}        # raw NYU layout (joint_data.mat + depth PNGs), 14 joints
    data: {kind: folder, path: DIR}           # labels.txt + camera.json + 16-bit PNGs
    data: {kind: crops, path: data/x.npz}     # crops saved by PoseArrays.save

Without `val_data` a uniform random `val_fraction` (25 %) of the training crops is held out (seed §4.4.3).
Every recipe that trains runs under `torchrun` as well (train/trainer.py: DDP).
"""

from __future__ import annotations

import sys

from stream.errors import InputError

CROP_KEYS = (
    "size",
    "cube_mm",
    "centre",
    "jitter_mm",
    "crops_per_frame",
    "use_mask",
    "seed",
    "min_visible_px",
    "max_abs_norm",
)


def build_arrays(spec: dict):
    """Crops (train.data.PoseArrays) for one `data` mapping of a config."""
    from .data import PoseArrays, load_frames, make_crops, synthetic_frames

    if not isinstance(spec, dict) or "kind" not in spec:
        raise InputError(
            "config `data` must be a mapping with a `kind` (synthetic, generate, nyu, folder, crops)"
        )
    kind = spec["kind"]
    if kind == "crops":
        return PoseArrays.load(spec["path"])
    if kind == "generate":
        frames = synthetic_frames(
            int(spec.get("frames", 1000)),
            int(spec.get("seed", 1000)),
            subject_offset=int(spec.get("subject_offset", 1000)),
        )
    else:
        if "path" not in spec:
            raise InputError(f"data kind {kind!r} needs a `path`")
        frames = load_frames(kind, spec["path"], int(spec.get("limit", 0)))
    kw = {k: spec[k] for k in CROP_KEYS if k in spec}
    return make_crops(frames, progress=True, **kw)


def main(argv: list[str] | None = None) -> int:
    from .recipes import get_recipe, usage

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    return int(get_recipe(argv[0]).main(argv[1:]) or 0)
