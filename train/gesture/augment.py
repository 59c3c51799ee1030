"""Training augmentations that imitate another capture system's hand model (numpy, no torch).

Skeletons from elsewhere (MediaPipe, another pose engine) put their joints on another hand model: MCPs
further along the fingers, fingertips nearer or further than the nail tip, other bone proportions, and
angles that are off by tens of degrees finger by finger. Each sample here gets, on its canonical joints
(stream.gestures.canonical_joints):

- bone length ratios, one per phalanx type (proximal, middle, distal) per sample, uniform in `bone_ratio`;
- the MCP moved along its finger towards the PIP by a fraction uniform in `mcp_shift` (one per sample for
  the four fingers: a hand model's convention is systematic), the fingertip along the last bone likewise;
- per-finger flexion noise: each finger joint bent towards or away from the palm by N(0, `angle_deg`);

and is then canonicalised again (moving the MCPs moves the frame). Every setting at zero leaves a sample as
it was, which is what the shipped training did before these existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.gestures.canonical import canonical_joints

# each chain from the wrist: wrist, then its four joints (thumb, index, middle, ring, pinky)
CHAINS = np.array(
    [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16], [0, 17, 18, 19, 20]]
)


@dataclass(frozen=True)
class HandModelAugment:
    bone_ratio: tuple[float, float] = (1.0, 1.0)
    mcp_shift: tuple[float, float] = (0.0, 0.0)
    tip_scale: tuple[float, float] = (1.0, 1.0)
    angle_deg: float = 0.0

    @property
    def active(self) -> bool:
        return (
            self.bone_ratio != (1.0, 1.0)
            or self.mcp_shift != (0.0, 0.0)
            or self.tip_scale != (1.0, 1.0)
            or self.angle_deg > 0
        )


def _rotate_towards_palm(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Vectors v (N, K, 3) turned by `angle` (N, 1) radians about the axis v x z (Rodrigues), which bends a
    bone pointing along the finger towards the canonical palm side (+z) or away from it."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(v[:, :1], z)  # the joint's own bone gives the axis for everything after it
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return v * c + np.cross(axis, v) * s + axis * (axis * v).sum(-1, keepdims=True) * (1.0 - c)


def augment_hand_model(canonical: np.ndarray, rng: np.random.Generator, aug: HandModelAugment) -> np.ndarray:
    """(N, 21, 3) canonical joints as another hand model might place them; canonical again (float32)."""
    if not aug.active:
        return canonical
    c = np.asarray(canonical, np.float64)
    n = len(c)
    bones = np.diff(c[:, CHAINS], axis=2)  # (N, 5, 4, 3): palm bone, proximal, middle, distal
    fingers = slice(1, 5)
    # the MCP slides along the proximal phalanx: the palm bone grows by that much, the phalanx shrinks
    t = rng.uniform(*aug.mcp_shift, size=(n, 1, 1))
    shift = bones[:, fingers, 1] * t
    bones[:, fingers, 0] += shift
    bones[:, fingers, 1] -= shift
    bones[:, :, 1:] *= rng.uniform(*aug.bone_ratio, size=(n, 1, 3, 1))
    bones[:, :, 3] *= rng.uniform(*aug.tip_scale, size=(n, 1, 1))
    if aug.angle_deg > 0:
        for k in (1, 2, 3):  # bend at the MCP, PIP and DIP of every chain, each finger by its own angle
            for f in range(5):
                a = np.radians(rng.normal(0.0, aug.angle_deg, size=(n, 1)))
                bones[:, f, k:] = _rotate_towards_palm(bones[:, f, k:], a)
    out = c.copy()
    out[:, CHAINS[:, 1:]] = np.cumsum(bones, axis=2)
    return canonical_joints(out)
