"""The fit's pose priors (stream/fitting/pose_prior.py) learned from the generator's hands on training seeds.

The angles are recovered from each sample's true joints by the fit's own inverse kinematics (exact to about
a millimetre on generator hands: the model has the generator's kinematics), so the prior lives in the
fit's parameters. Half the samples come from the frontal scene the pose engine is trained on, half from the
mixed scenes (frontal, egocentric, desk; hands holding objects), so the grips of close-range scenes are in
it too. Seeds from 1000 are the pose engine's training seeds; the tuning (77, 78) and test (4242) seeds are
never drawn.

    # the fit stage's mixture of 8 Gaussians and the size measurement's one Gaussian, ~2 min of one core each
    python -m train.fitting_prior --components 8 --out engines/default/pose_prior_mixture.json
    python -m train.fitting_prior --out engines/default/pose_prior.json

Eight components were chosen on the fit's tuning frames (seeds 77, 78) against 1, 4 and 16, and against
20 000 poses (BENCHMARKS.md, "Model fitting").
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def training_poses(frames: int, seed: int) -> np.ndarray:
    """(N, 20) joint angles of `frames` generator samples: frames // 2 frontal (seed), the rest mixed scenes
    (seed + 1), each hand's angles by inverse kinematics of its true joints at its own size."""
    from stream.fitting.ik import inverse_kinematics
    from stream.fitting.model import build_model, default_shape
    from stream.synth import HandSynthesizer
    from train.data import default_scene

    models: dict[tuple[int, int], object] = {}
    out = []
    scenes = (
        (default_scene(), seed, frames // 2),
        (replace(default_scene(), scene_kind="mixed"), seed + 1, frames - frames // 2),
    )
    for scene, s, n in scenes:
        synth = HandSynthesizer(scene, s)
        for k in range(n):
            sample = synth.sample_at(k)
            key = tuple(int(v) for v in np.rint(np.asarray(sample.hand_size_mm, np.float64) / 2.0))
            if key not in models:
                models[key] = build_model(default_shape(2.0 * key[0], 2.0 * key[1]))
            out.append(inverse_kinematics(models[key], np.asarray(sample.joints_xyz_mm, np.float64))[2])
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    from stream.fitting.pose_prior import fit_pose_prior

    p = argparse.ArgumentParser(prog="python -m train.fitting_prior", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the prior's JSON file")
    p.add_argument("--frames", type=int, default=6000)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--shrink-deg", type=float, default=5.0, help="isotropic sd added to every covariance")
    p.add_argument("--components", type=int, default=1, help="Gaussians in the mixture (1: one Gaussian)")
    p.add_argument("--em-seed", type=int, default=0, help="the mixture's expectation-maximisation starts")
    a = p.parse_args(argv)
    t0 = time.time()
    poses = training_poses(a.frames, a.seed)
    made = (
        f"python -m train.fitting_prior --frames {a.frames} --seed {a.seed} --shrink-deg {a.shrink_deg}"
        + (f" --components {a.components} --em-seed {a.em_seed}" if a.components > 1 else "")
        + " "
        f"(train/fitting_prior.py): {len(poses)} generator hands, half frontal (seed {a.seed}), half mixed "
        f"scenes (seed {a.seed + 1}), angles by inverse kinematics of the true joints"
    )
    prior = fit_pose_prior(poses, a.shrink_deg, made, components=a.components, seed=a.em_seed)
    prior.save(a.out)
    sd = np.degrees(np.sqrt(np.diagonal(prior.covariances_rad2, axis1=1, axis2=2)))
    print(
        f"{a.out}: {len(poses)} poses, {prior.components} components (weights "
        f"{', '.join(f'{w:.2f}' for w in prior.weights)}) in {time.time() - t0:.0f} s; "
        f"angle sd {sd.min():.1f}-{sd.max():.1f} deg"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
