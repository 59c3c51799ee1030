"""Engines that turn their crop upright in the graph, on the CPU: the turning by a compiled kernel, the rest
by ONNX Runtime.

The pose engine (train/canonical.py), the presence engine and the handedness engine each carry, ahead of
their network, the in-plane canonicalization of their views of the crop: the silhouette's image moments,
the angle of its major axis and the end it points to, the rotation, a GridSample. In ONNX Runtime on one CPU
thread that is some 70 small operations on (views, S, S) tensors, each paying the runtime's per-operation
cost: 0.19 of the pose engine's 0.64 ms, 0.13 of the presence engine's 0.22, 0.55 of the handedness
engine's 1.00 (its six views). The same arithmetic in one numba kernel takes a few hundredths of a
millisecond, so on the CPU provider `OrtEngine` splits such a graph where it turns: ONNX Runtime builds the
views (shifted, mirrored copies: whatever the graph does), the kernel here turns each upright, and ONNX
Runtime runs the rest -- the network and what follows it, such as the pose engine's turning of the joints
back by the same rotations. The engine file stays whole and self-contained -- other backends and tools read
it as it is -- and the split is used only where it gives the whole graph's outputs on a made-up hand at load
(`CanonicalSplit.parity`); else the whole graph runs, as before.

The kernel follows the graph's arithmetic: the rotation and the sampling in float32 as exported, the moments
in float64 (exact sums of the pixel centres' powers, where the graph rounds in float32: the angle agrees to
~1e-7 rad), the nearest sample rounded half to even as GridSample does. One difference: where a silhouette's
second moments vanish (an empty crop) the exported atan2 is 0 / 0 and the whole graph's outputs are NaN (the
pose stage then reports no hand); the kernel keeps train/canonical.py's definition, no turn.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

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
def canonical_views_kernel(views, flip):  # pragma: no cover - compiled
    """(K, S, S) float32 normalized views -> each turned upright, (K, 1, S, S) float32, and the (K, 2, 2)
    float32 rotations, as train/canonical.py's `rotate_crops(views, rotation_matrices(pi / 2 -
    principal_angle(views)))` (`flip`: the other end of the axis, engines/flip_canonical.py)."""
    k_views, size = views.shape[0], views.shape[1]
    out = np.empty((k_views, 1, size, size), np.float32)
    rots = np.empty((k_views, 2, 2), np.float32)
    g = np.empty(size)
    for i in range(size):
        g[i] = (i + 0.5) / size * 2.0 - 1.0
    gf = g.astype(np.float32)
    one, fs, half = np.float32(1.0), np.float32(size), np.float32(0.5)
    for k in range(k_views):
        n0 = sx = sy = sxx = sxy = syy = sxxx = sxxy = sxyy = syyy = 0.0
        for i in range(size):
            y = g[i]
            for j in range(size):
                if views[k, i, j] < 1.0:
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
        msp, zero = -sp, np.float32(0.0)
        for i in range(size):
            qy = gf[i]
            ry_x, ry_y = qy * sp, qy * cp
            for j in range(size):
                qx = gf[j]
                u = np.rint(((qx * cp + ry_x + one) * fs - one) * half)
                v = np.rint(((qx * msp + ry_y + one) * fs - one) * half)
                val = one
                if u >= zero and u < fs and v >= zero and v < fs:
                    val = (views[k, int(v), int(u)] - one) + one  # the graph samples (view - 1) and adds 1
                out[k, 0, i, j] = val
    return out, rots


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


def graph_turn(graph) -> tuple[str, str, str, bool] | None:
    """(views, turned views, rotation, whether anything after the turn reads the rotation) of a graph that
    turns its crop's views upright once, found by its structure: the one GridSample reads `views - 1` and
    is followed by `+ 1`, and its grid is a matrix product of the rotation (through any Reshape). None for
    any other graph."""
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    consts = {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    samplers = [n for n in graph.node if n.op_type == "GridSample"]
    if len(samplers) != 1:
        return None
    gs = samplers[0]
    sub = producer.get(gs.input[0])
    after = [n for n in users.get(gs.output[0], []) if n.op_type == "Add"]
    if sub is None or sub.op_type != "Sub" or sub.input[1] not in consts or len(after) != 1:
        return None
    node = producer.get(gs.input[1])
    while node is not None and node.op_type == "Reshape":
        node = producer.get(node.input[0])
    if node is None or node.op_type != "MatMul":
        return None
    grid_chain = {id(node)}
    rot = ([i for i in node.input if i not in consts] or [""])[0]
    while rot in producer and producer[rot].op_type == "Reshape":
        grid_chain.add(id(producer[rot]))
        rot = producer[rot].input[0]
    if not rot:
        return None
    read_after = any(id(n) not in grid_chain for n in users.get(rot, []))
    return sub.input[0], after[0].output[0], rot, read_after


# graphs larger than this are not read to look for a turn: the split pays where a small network's cost is
# comparable to the turn's per-operation overhead (the shipped engines are 0.3-1 MB), and reading a large
# graph a second time at load costs seconds (a 600 MB Depth-Net: 3 s)
MAX_SPLIT_BYTES = 16 << 20


class CanonicalSplit:
    """An engine's graph in two ONNX Runtime sessions around `canonical_views_kernel`: the views (None
    where the graph turns its input itself), then everything after the turn. `build` returns None where the
    graph is not one this can split."""

    def __init__(self, views, rest, views_name: str, flip: bool, turned_name: str, rot_name: str | None):
        self.views = views
        self.rest = rest
        self.flip = bool(flip)
        self._views_out = [views_name]
        self._turned, self._rot = turned_name, rot_name
        self._in = views.get_inputs()[0].name if views is not None else ""
        self._outs = [o.name for o in rest.get_outputs()]

    @classmethod
    def build(cls, onnx_path, session_options, providers) -> CanonicalSplit | None:
        import onnx
        import onnxruntime as ort

        if numba is None or Path(onnx_path).stat().st_size > MAX_SPLIT_BYTES:
            return None
        model = onnx.load(str(onnx_path))
        if len(model.graph.input) != 1:
            return None
        turn, choice = graph_turn(model.graph), angle_choice(model.graph)
        if turn is None or choice is None:
            return None
        from stream.compiled import announce_compile

        announce_compile(__file__, "canonical-crop")
        views_name, turned, rot, read_after = turn
        shaped = onnx.shape_inference.infer_shapes(model)
        outputs = [o.name for o in model.graph.output]
        inp = model.graph.input[0].name

        def session(inputs: list[str], outs: list[str]):
            part = onnx.utils.Extractor(shaped).extract_model(inputs, outs)
            return ort.InferenceSession(
                part.SerializeToString(), sess_options=session_options, providers=providers
            )

        views = None if views_name == inp else session([inp], [views_name])
        rest = session([turned, rot] if read_after else [turned], outputs)
        return cls(views, rest, views_name, choice[1], turned, rot if read_after else None)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The whole graph's outputs, by name, for its input `x`."""
        v = x if self.views is None else self.views.run(self._views_out, {self._in: x})[0]
        turned, rots = canonical_views_kernel(np.ascontiguousarray(v[:, 0]), self.flip)
        feeds = {self._turned: turned}
        if self._rot is not None:
            feeds[self._rot] = rots
        return dict(zip(self._outs, self.rest.run(self._outs, feeds)))

    def parity(self, whole_session) -> float:
        """max |split - whole graph| over the outputs on `made_up_hand` and its mirror image."""
        name = whole_session.get_inputs()[0].name
        shape = whole_session.get_inputs()[0].shape
        size = int(shape[-1])
        worst = 0.0
        for crop in (made_up_hand(size), made_up_hand(size)[:, ::-1]):
            x = np.ascontiguousarray(crop).reshape(1, 1, size, size)
            whole = whole_session.run(self._outs, {name: x})
            split = self.run(x)
            for name_out, b in zip(self._outs, whole, strict=True):
                worst = max(worst, float(np.max(np.abs(np.asarray(split[name_out], np.float64) - b))))
        return worst
