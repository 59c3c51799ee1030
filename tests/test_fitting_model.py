"""The hand model's construction (stream/fitting/model.py): `build_model` attaches every cone end at once;
the straightforward construction, one end at a time, is kept here as its reference (it shares with
`build_model` only what that change left alone: the on-bone test and the final assembly)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.fitting.model import _MOVING, N_POSE, HandModel, _assemble, _on_bone, build_model, default_shape
from stream.synth.hand import hand_joints_local


def reference_model(shape, spacing: float = 1.5) -> HandModel:
    """build_model as first written: each cone end attached on its own, each sphere row appended, the
    coinciding spheres found by np.unique."""
    geom = hand_joints_local(shape, np.zeros(N_POSE))
    rest = geom.joints.copy()
    bones = np.stack(
        [np.linalg.norm(rest[_MOVING[:, k]] - rest[_MOVING[:, k] - 1], axis=1) for k in range(3)], 1
    )
    anchors: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    radii: list[float] = []

    def attach(p: np.ndarray, part: int) -> np.ndarray:
        w = np.zeros(21 + 16)
        d = np.linalg.norm(rest - p, axis=1)
        j = int(np.argmin(d))
        if d[j] < 1e-6:
            w[j] = 1.0
            return w
        if part >= 1 and _on_bone(rest, p, part, w):
            return w
        for i, q in enumerate(anchors):
            if np.linalg.norm(q - p) < 1e-6:
                w[21 + i] = 1.0
                return w
        anchors.append(p.copy())
        w[21 + len(anchors) - 1] = 1.0
        return w

    for a, b, ra, rb, part in zip(geom.cone_a, geom.cone_b, geom.radius_a, geom.radius_b, geom.part):
        wa, wb = attach(a, int(part)), attach(b, int(part))
        length = float(np.linalg.norm(b - a))
        n = max(2, int(np.ceil(length / (spacing * min(ra, rb))))) + 1
        for t in np.linspace(0.0, 1.0, n):
            rows.append((1.0 - t) * wa + t * wb)
            radii.append((1.0 - t) * ra + t * rb)
    n_anchor = len(anchors)
    w = np.stack(rows)[:, : 21 + n_anchor]
    key = np.round(np.concatenate([w, np.array(radii)[:, None]], 1), 6)
    _, keep = np.unique(key, axis=0, return_index=True)
    keep = np.sort(keep)
    return _assemble(shape, rest, bones, anchors, w[keep], np.array(radii)[keep])


FIELDS = [f for f in HandModel.__dataclass_fields__ if f != "shape"]


@pytest.mark.parametrize("spacing", [1.5, 0.7])
def test_build_model_is_the_one_end_at_a_time_construction_bit_for_bit(spacing):
    """Over the sizes the fit stage builds (length 100-240 mm, width 45-115 mm, on and off its 2 mm grid)
    and a finer sphere spacing: every array of the model is the reference's, value for value."""
    for length in np.arange(100.0, 241.0, 17.0):
        for width in np.arange(45.0, 116.0, 9.5):
            shape = default_shape(float(length), float(width))
            got, ref = build_model(shape, spacing), reference_model(shape, spacing)
            for name in FIELDS:
                a, b = getattr(got, name), getattr(ref, name)
                assert a.dtype == b.dtype and a.shape == b.shape, (name, length, width)
                np.testing.assert_array_equal(a, b, err_msg=f"{name} at {length} x {width} mm")
    assert len(got.anchors) > 0 and len(got.radii) > 50  # anchors and many spheres were compared
