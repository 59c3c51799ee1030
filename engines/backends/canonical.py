"""A canonical pose engine on the CPU: its in-plane canonicalization by a compiled kernel, its network by
ONNX Runtime.

A canonical pose engine (train/canonical.py) carries, ahead of its network, the turning of the crop's views
upright (shifted copies, the silhouette's moments, the rotation, a GridSample) and, after it, the turning
of the joints back. In ONNX Runtime on one CPU thread those two parts are ~75 small operations on
(views, S, S) tensors, each paying the runtime's per-operation cost: 0.19 of the shipped engine's 0.64
ms. The same arithmetic in one numba kernel takes a few hundredths of a millisecond, so on the CPU
provider `OrtEngine` runs the graph's network alone (cut out of the graph at the canonical crops and the
canonical joints, engines/canonical_graph.py) between the two kernels here. The engine file stays whole
and self-contained -- other backends and tools read it as it is -- and the split is used only where it
gives the whole graph's joints on a made-up hand at load (`CanonicalSplit.parity`); else the whole graph
runs, as before.

The kernels follow the graph's arithmetic: the views and the rotation in float32 as exported, the
moments in float64 (exact sums of the pixel centres' powers, where the graph rounds in float32: the angle
agrees to ~1e-7 rad), the nearest sample rounded half to even as GridSample does. One difference: where a
silhouette's second moments vanish (an empty crop) the exported atan2 is 0 / 0 and the whole graph's x, y
are NaN (the pose stage then reports no hand); the kernel keeps train/canonical.py's definition, no turn.
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger("handstream.engines")

try:
    import numba

    _JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
    _njit = numba.njit(**_JIT)
except ImportError:  # the whole graph runs (OrtEngine never builds a split without the kernels)
    numba = None

    def _njit(f):
        return f


@_njit
def canonical_views_kernel(crop, shifts, flip):  # pragma: no cover - compiled
    """(S, S) float32 normalized crop, (K, 2) int64 view shifts (dx, dy) px -> the (K, 1, S, S) float32
    canonical views and their (K, 2, 2) float32 rotations, as train/canonical.py's
    `InPlaneCanonical.canonical_views` (`flip`: the other end of the axis, engines/flip_canonical.py)."""
    size = crop.shape[0]
    k_views = shifts.shape[0]
    views = np.empty((k_views, 1, size, size), np.float32)
    rots = np.empty((k_views, 2, 2), np.float32)
    g = np.empty(size)
    for i in range(size):
        g[i] = (i + 0.5) / size * 2.0 - 1.0
    one, fs, half = np.float32(1.0), np.float32(size), np.float32(0.5)
    for k in range(k_views):
        dx, dy = shifts[k, 0], shifts[k, 1]
        # a view's pixel (i, j) is the crop's (i - dy, j - dx); background (1) shifted in
        n0 = sx = sy = sxx = sxy = syy = sxxx = sxxy = sxyy = syyy = 0.0
        for i in range(max(dy, 0), min(size + dy, size)):
            y = g[i]
            for j in range(max(dx, 0), min(size + dx, size)):
                if crop[i - dy, j - dx] < 1.0:
                    x = g[j]
                    xx, yy = x * x, y * y
                    n0 += 1.0
                    sx += x
                    sy += y
                    sxx += xx
                    sxy += x * y
                    syy += yy
                    sxxx += xx * x
                    sxxy += xx * y
                    sxyy += x * yy
                    syyy += yy * y
        n = max(n0, 1.0)
        mx, my = sx / n, sy / n
        mu20, mu02, mu11 = sxx - mx * sx, syy - my * sy, sxy - mx * sy
        theta = 0.5 * math.atan2(2.0 * mu11, mu20 - mu02)
        c, s = math.cos(theta), math.sin(theta)
        kk, cc, ss = -(c * mx + s * my), c * c, s * s
        skew = (
            c * cc * sxxx
            + 3.0 * cc * s * sxxy
            + 3.0 * c * ss * sxyy
            + s * ss * syyy
            + 3.0 * kk * (cc * sxx + 2.0 * c * s * sxy + ss * syy)
            + 3.0 * kk * kk * (c * sx + s * sy)
            + kk * kk * kk * n0
        )
        angle = theta + math.pi if (skew < 0.0) != flip else theta
        phi = np.float32(math.pi / 2 - angle)
        cp, sp = np.float32(math.cos(phi)), np.float32(math.sin(phi))
        rots[k, 0, 0], rots[k, 0, 1], rots[k, 1, 0], rots[k, 1, 1] = cp, -sp, sp, cp
        # output pixel q samples the view at p = rot^T q (row form q rot), nearest, outside = background
        for i in range(size):
            qy = np.float32(g[i])
            ry_x, ry_y = qy * sp, qy * cp
            for j in range(size):
                qx = np.float32(g[j])
                px = qx * cp + ry_x
                py = qx * -sp + ry_y
                u = np.rint(((px + one) * fs - one) * half)
                v = np.rint(((py + one) * fs - one) * half)
                val = one
                if 0.0 <= u < size and 0.0 <= v < size:
                    si, sj = int(v) - dy, int(u) - dx
                    if 0 <= si < size and 0 <= sj < size:
                        val = (crop[si, sj] - one) + one  # the graph samples (crop - 1) and adds 1
                views[k, 0, i, j] = val
    return views, rots


@_njit
def turn_back_kernel(y, rots, shifts, size):  # pragma: no cover - compiled
    """The network's (K, J, 3) float32 canonical joints -> (1, 3J) float32: (x, y) turned back by each
    view's rotation (rot^T), each view moved back by its shift (2 / size a pixel), the views averaged."""
    k_views, n_joints = y.shape[0], y.shape[1]
    out = np.zeros((1, 3 * n_joints), np.float32)
    step = np.float32(2.0 / size)
    for j in range(n_joints):
        ax, ay, az = np.float32(0.0), np.float32(0.0), np.float32(0.0)
        for k in range(k_views):
            y0, y1 = y[k, j, 0], y[k, j, 1]
            ax += (y0 * rots[k, 0, 0] + y1 * rots[k, 1, 0]) - np.float32(shifts[k, 0]) * step
            ay += (y0 * rots[k, 0, 1] + y1 * rots[k, 1, 1]) - np.float32(shifts[k, 1]) * step
            az += y[k, j, 2]
        out[0, 3 * j] = ax / np.float32(k_views)
        out[0, 3 * j + 1] = ay / np.float32(k_views)
        out[0, 3 * j + 2] = az / np.float32(k_views)
    return out


def angle_choice(graph) -> tuple[object, bool] | None:
    """(the Where node, flipped) of a canonical graph's choice of the axis's end: the Where on the third
    moment's sign (a Less) between `angle + pi` and `angle`, which picks `angle + pi` as its second input
    (flipped False) or, in the twin of engines/flip_canonical.py, as its third (True); None when the graph
    has no such Where, InputError when it has more than one."""
    from onnx import numpy_helper

    from stream.errors import InputError

    producer = {o: n for n in graph.node for o in n.output}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts.update(
        {
            n.output[0]: numpy_helper.to_array(a.t)
            for n in graph.node
            if n.op_type == "Constant"
            for a in n.attribute
            if a.name == "value"
        }
    )

    def plus_pi(name: str, of: str) -> bool:
        node = producer.get(name)
        if node is None or node.op_type != "Add" or node.input[0] != of:
            return False
        c = consts.get(node.input[1])
        return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - math.pi) < 1e-4

    found = []
    for n in graph.node:
        cond = producer.get(n.input[0]) if n.op_type == "Where" and len(n.input) == 3 else None
        if cond is None or cond.op_type != "Less":
            continue
        if plus_pi(n.input[1], n.input[2]):
            found.append((n, False))
        elif plus_pi(n.input[2], n.input[1]):
            found.append((n, True))
    if len(found) > 1:
        raise InputError(f"expected one canonical-angle sign choice in the graph, found {len(found)}")
    return found[0] if found else None


def angle_flipped(graph) -> bool | None:
    """Whether the graph takes the axis's other end (`angle_choice`); None when it makes no such choice."""
    choice = angle_choice(graph)
    return None if choice is None else choice[1]


def made_up_hand(size: int) -> np.ndarray:
    """A normalized (S, S) crop with a hand-like silhouette turned off the axes: a palm, four fingers of
    uneven lengths and a thumb, depth varying (parity checks; no frame needed)."""
    g = (np.arange(size) + 0.5) / size * 2 - 1
    gx, gy = np.meshgrid(g, g)
    a = 0.6
    u, v = gx * math.cos(a) + gy * math.sin(a), -gx * math.sin(a) + gy * math.cos(a)
    hand = (u / 0.35) ** 2 + (v / 0.3) ** 2 < 1
    for off, length in ((-0.22, 0.75), (-0.07, 0.85), (0.08, 0.8), (0.22, 0.65)):
        hand |= (np.abs(u - off) < 0.05) & (v < 0) & (v > -length)
    hand |= (np.abs(v - 0.05) < 0.05) & (u > 0.2) & (u < 0.6)
    crop = np.ones((size, size), np.float32)
    crop[hand] = (0.2 * u + 0.1 * v)[hand].astype(np.float32)
    return crop


class CanonicalSplit:
    """A canonical pose engine's network as its own ONNX Runtime session, between the kernels above.
    `build` returns None where the graph is not a canonical pose engine this can split."""

    def __init__(self, session, shifts: np.ndarray, size: int, flip: bool) -> None:
        self.session = session
        self.shifts = shifts
        self.size = int(size)
        self.flip = bool(flip)
        self._in = session.get_inputs()[0].name
        self._out = [session.get_outputs()[0].name]

    @classmethod
    def build(cls, onnx_path, manifest, session_options, providers) -> CanonicalSplit | None:
        import onnx
        import onnxruntime as ort

        from ..canonical_graph import network_cut

        if numba is None:
            return None
        from stream.compiled import announce_compile

        announce_compile(__file__, "pose-engine canonicalization")
        pre = manifest.preprocessing or {}
        kw = (manifest.training or {}).get("model_kwargs") or {}
        size = pre.get("crop_size") or kw.get("input_size")
        model = onnx.load(str(onnx_path))
        try:
            crops, joints = network_cut(model.graph)
        except Exception:  # noqa: BLE001 - not a canonical pose engine: the whole graph runs
            return None
        flip = angle_flipped(model.graph)
        if flip is None or not size:
            return None
        shifts = np.array([[int(dx), int(dy)] for dx, dy in kw.get("test_shifts_px") or ()] or [[0, 0]])
        net = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([crops], [joints])
        batch = net.graph.input[0].type.tensor_type.shape.dim[0].dim_value
        if batch != len(shifts):
            return None  # the manifest's views are not the graph's
        session = ort.InferenceSession(
            net.SerializeToString(), sess_options=session_options, providers=providers
        )
        return cls(session, np.ascontiguousarray(shifts, np.int64), int(size), flip)

    def run(self, x: np.ndarray) -> np.ndarray:
        """(1, 1, S, S) float32 crop -> (1, 3J) float32 joints, as the whole graph gives them."""
        views, rots = canonical_views_kernel(x[0, 0], self.shifts, self.flip)
        y = self.session.run(self._out, {self._in: views})[0]
        return turn_back_kernel(y, rots, self.shifts, self.size)

    def parity(self, whole_session, input_name: str) -> float:
        """max |split - whole graph| of the joints on `made_up_hand` and its mirror image."""
        worst = 0.0
        for crop in (made_up_hand(self.size), made_up_hand(self.size)[:, ::-1]):
            x = np.ascontiguousarray(crop)[None, None]
            whole = whole_session.run(None, {input_name: x})[0]
            worst = max(worst, float(np.max(np.abs(self.run(x) - whole))))
        return worst
