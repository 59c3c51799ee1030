"""In-plane canonicalization (train/canonical.py): the angle follows the hand, the canonical crop does not
depend on how the hand was rotated, and predictions are rotated back exactly."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from train.canonical import (  # noqa: E402
    InPlaneCanonical,
    principal_angle,
    rotate_crops,
    rotation_matrices,
    shift_average,
    shift_crops,
)
from train.models import create_model  # noqa: E402


def _hand_like(size: int = 32) -> torch.Tensor:
    """An asymmetric silhouette: a long bar (palm + fingers) with a blob at one end (the wrist side is
    thinner), background 1, foreground depth varying so values are not all equal."""
    x = torch.ones(1, 1, size, size)
    x[0, 0, 6:26, 14:18] = 0.1  # vertical bar, rows 6..25
    x[0, 0, 18:26, 11:21] = -0.2  # wide blob at the bottom end
    return x


def _rot90(x: torch.Tensor) -> torch.Tensor:
    """Exact 90-degree rotation of the crop content by rotation_matrices(pi/2) (a pixel permutation)."""
    return rotate_crops(x, rotation_matrices(torch.tensor([math.pi / 2])))


def test_principal_angle_follows_the_hand() -> None:
    """A vertical silhouette has a vertical axis; flipping it upside down flips the chosen direction (the
    third moment settles the 180-degree ambiguity)."""
    x = _hand_like()
    a = float(principal_angle(x)[0])
    assert abs(abs(math.sin(a)) - 1.0) < 1e-3  # the axis is vertical
    flipped = torch.flip(x, dims=[2])
    b = float(principal_angle(flipped)[0])
    assert abs(math.sin(a) + math.sin(b)) < 1e-3  # the direction flips with the hand


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_canonical_crop_is_invariant_to_exact_rotations(turns: int) -> None:
    x = _hand_like()
    r = x
    for _ in range(turns):
        r = _rot90(r)
    assert not torch.equal(r, x)

    def canon(t: torch.Tensor) -> torch.Tensor:
        return rotate_crops(t, rotation_matrices(math.pi / 2 - principal_angle(t)))

    same = (canon(r) == canon(x)).float().mean()
    assert same > 0.99


class _Const(torch.nn.Module):
    """A 'net' whose prediction is fixed in the canonical frame: isolates the rotate-back step."""

    def __init__(self, joints: torch.Tensor) -> None:
        super().__init__()
        self.joints = joints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.joints.reshape(1, -1).expand(x.shape[0], -1)


def test_predictions_rotate_back_with_the_input() -> None:
    gen = torch.Generator().manual_seed(0)
    j = torch.rand(5, 3, generator=gen) * 2 - 1
    model = InPlaneCanonical(_Const(j))
    x = _hand_like()
    p0 = model(x).view(-1, 3)
    p1 = model(_rot90(x)).view(-1, 3)
    rot = rotation_matrices(torch.tensor([math.pi / 2]))[0]
    torch.testing.assert_close(p1[:, :2], p0[:, :2] @ rot.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(p1[:, 2], p0[:, 2])  # depth untouched


def test_registered_canonical_model_is_equivariant_end_to_end() -> None:
    torch.manual_seed(0)
    m = create_model("compact_s_canon", num_joints=4, input_size=32, fc_width=16).eval()
    x = _hand_like()
    with torch.no_grad():
        p0 = m(x).view(-1, 3)
        p1 = m(_rot90(x)).view(-1, 3)
    rot = rotation_matrices(torch.tensor([math.pi / 2]))[0]
    torch.testing.assert_close(p1[:, :2], p0[:, :2] @ rot.T, atol=1e-4, rtol=0)


def test_empty_crop_is_handled() -> None:
    m = create_model("compact_s_canon", num_joints=2, input_size=32, fc_width=8).eval()
    with torch.no_grad():
        out = m(torch.ones(2, 1, 32, 32))
    assert out.shape == (2, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["compact_l_canon", "compact_l_dense_canon"])
def test_canonical_models_keep_every_tensor_on_the_input_device(name: str) -> None:
    """The pixel grids are made on the input's device: a grid left on the CPU beside a CUDA batch fails on a
    GPU. No GPU here, so the `meta` device stands in -- any CPU tensor mixed into the graph raises there too."""
    x = torch.rand(2, 1, 64, 64, device="meta")
    assert principal_angle(x).device.type == "meta"
    y = create_model(name, input_size=64).to("meta")(x)
    assert y.shape == (2, 63) and y.device.type == "meta"


# ------------------------------------------------------------------------------- shifted test-time views
def _centroid_joint(x: torch.Tensor) -> torch.Tensor:
    """A perfectly shift-equivariant 'pose net': one joint at the foreground's centroid (normalized x, y)
    and its mean depth."""
    s = x.shape[-1]
    m = (x[:, 0] < 1).to(x.dtype)
    g = (torch.arange(s, dtype=x.dtype) + 0.5) / s * 2 - 1
    n = m.sum((1, 2))
    cx = (m * g.view(1, 1, s)).sum((1, 2)) / n
    cy = (m * g.view(1, s, 1)).sum((1, 2)) / n
    cz = (m * x[:, 0]).sum((1, 2)) / n
    return torch.stack([cx, cy, cz], -1)


def test_shift_crops_moves_the_content_and_fills_background() -> None:
    x = torch.ones(1, 1, 8, 8)
    x[0, 0, 3, 4] = 0.25
    y = shift_crops(x, 2, -1)  # two pixels right, one up
    assert y.shape == x.shape
    assert float(y[0, 0, 2, 6]) == 0.25 and int((y < 1).sum()) == 1
    x[0, 0, 0, 0] = 0.5  # a pixel shifted out of the crop is gone, background comes in
    z = shift_crops(x, -1, 0)
    assert float(z[0, 0, 3, 3]) == 0.25 and float(z[0, 0, 3, 7]) == 1.0 and int((z < 1).sum()) == 1
    assert shift_crops(x, 0, 0) is x


def test_shift_average_undoes_each_shift() -> None:
    """For a shift-equivariant predictor every view gives the same joint once moved back: the average
    equals the plain prediction (a wrong sign or scale in the correction would move it by 2/S per pixel)."""
    x = _hand_like()
    plain = _centroid_joint(x)
    for shifts in (((1, 1), (-1, -1)), ((2, 0), (0, -3), (1, 2))):
        torch.testing.assert_close(shift_average(_centroid_joint, x, shifts), plain, atol=1e-6, rtol=0)
    # ... and it really averages: a non-equivariant predictor (a constant) gets the mean correction
    const = lambda t: torch.zeros(t.shape[0], 3)  # noqa: E731
    out = shift_average(const, x, ((2, 0), (0, 0)))
    torch.testing.assert_close(out, torch.tensor([[-1.0 * 2 / 32, 0.0, 0.0]]))


def test_canonical_test_shifts_only_in_eval_mode() -> None:
    torch.manual_seed(0)
    shifts = ((1, 1), (2, 0))  # not symmetric: an untrained net barely moves, the corrections must show
    plain = create_model("compact_s_canon", num_joints=3, input_size=32, fc_width=16)
    views = create_model("compact_s_canon", num_joints=3, input_size=32, fc_width=16, test_shifts_px=shifts)
    views.load_state_dict(plain.state_dict())  # the option adds no parameters
    x = torch.cat([_hand_like(), _rot90(_hand_like())])
    plain.train(), views.train()
    torch.testing.assert_close(views(x), plain(x))  # training sees single crops
    plain.eval(), views.eval()
    with torch.no_grad():
        expect = torch.stack([plain(shift_crops(x, dx, dy)).view(2, -1, 3) - torch.tensor([dx, dy, 0.0]) * 2 / 32
                              for dx, dy in shifts]).mean(0).reshape(2, -1)  # fmt: skip
        got = views(x)
        assert not torch.allclose(got, plain(x), atol=1e-4)
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=0)
