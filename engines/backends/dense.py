"""A numpy executor for small dense graphs (multi-layer perceptrons), beside ONNX Runtime.

Why: for a network of three dense layers on 60 numbers (the gesture embedding, 0.1 M parameters) the work is
~0.1 M multiply-adds, a few microseconds, while ONNX Runtime's fixed cost per `run` call (feeds, output
allocation, the executor) is 20-40 us -- most of a 0.1 ms per-hand budget. So for graphs of exactly this
shape the per-frame path runs the same weights with three numpy matrix-vector products instead.

What it accepts (anything else gives None, and the caller keeps the ONNX Runtime engine):
    [Slice on the last axis] -> [Reshape to (1, -1)] -> (Gemm [-> BatchNormalization] [-> Relu])+
    [-> ReduceL2 -> Clip -> Expand -> Div, i.e. L2 normalisation of the output]
BatchNormalization is folded into the Gemm before it (inference statistics). `compile_dense` checks the
result against the ONNX Runtime engine on random inputs (atol 1e-5) before handing it out, so a graph it
misreads is refused, never run wrong. Reading the ONNX file needs the `onnx` package (a runtime dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARITY_ATOL = 1e-5


@dataclass(frozen=True)
class DenseLayer:
    weight: np.ndarray  # (out, in) float32, BatchNormalization folded in; row-major, so `weight.dot(h)` is
    # one BLAS matrix-vector product (about half the time of `h @ weight.T` on numpy's matmul path)
    bias: np.ndarray  # (out,) float32
    relu: bool


@dataclass(frozen=True)
class DenseNet:
    """The compiled graph: which input values feed it, its layers, whether the output is L2-normalised."""

    input_shape: tuple[int, ...]
    take: np.ndarray | None  # flat indices of the input the first layer reads (a Slice), None = all
    layers: tuple[DenseLayer, ...]
    l2_normalize: bool
    eps: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(input_shape) -> (1, out) float32, the same numbers as the graph to ~1e-6."""
        h = x.reshape(-1)
        if self.take is not None:
            h = h[self.take]
        for layer in self.layers:
            h = layer.weight.dot(h)
            h += layer.bias
            if layer.relu:
                np.maximum(h, 0.0, out=h)
        if self.l2_normalize:
            h /= max(math.sqrt(float(h.dot(h))), self.eps)
        return h[None]


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _parse(path: Path) -> DenseNet | None:
    """The graph as a DenseNet, or None when it is not of the accepted shape."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        return None
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    init.update(consts)
    nodes = [n for n in g.node if n.op_type != "Constant"]
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    if not dims or any(d <= 0 for d in dims):
        return None
    shape = tuple(int(d) for d in dims)
    flat = np.arange(int(np.prod(shape))).reshape(shape)
    take = None
    layers: list[DenseLayer] = []
    i = 0
    if i < len(nodes) and nodes[i].op_type == "Slice":
        n = nodes[i]
        starts, ends = init[n.input[1]], init[n.input[2]]
        axes = init[n.input[3]] if len(n.input) > 3 else np.arange(len(starts))
        steps = init[n.input[4]] if len(n.input) > 4 else np.ones_like(starts)
        sl = [slice(None)] * len(shape)
        for s, e, a, st in zip(starts, ends, axes, steps):
            sl[int(a)] = slice(int(s), int(min(e, shape[int(a)])), int(st))
        flat = flat[tuple(sl)]
        i += 1
    if i < len(nodes) and nodes[i].op_type in ("Reshape", "Flatten"):
        i += 1
    take = flat.reshape(-1).astype(np.int64)
    if len(take) == int(np.prod(shape)) and np.array_equal(take, np.arange(len(take))):
        take = None
    width = int(flat.size)
    while i < len(nodes) and nodes[i].op_type == "Gemm":
        a = _attrs(nodes[i])
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return None
        w = init.get(nodes[i].input[1])
        b = init.get(nodes[i].input[2]) if len(nodes[i].input) > 2 else None
        if w is None:
            return None
        w = w.T if a.get("transB", 0) else w
        if w.shape[0] != width:
            return None
        b = np.zeros(w.shape[1], np.float32) if b is None else b
        i += 1
        if i < len(nodes) and nodes[i].op_type == "BatchNormalization":
            bn = nodes[i]
            gamma, beta, mean, var = (init[k] for k in bn.input[1:5])
            scale = gamma / np.sqrt(var + float(_attrs(bn).get("epsilon", 1e-5)))
            w, b = w * scale, (b - mean) * scale + beta
            i += 1
        relu = i < len(nodes) and nodes[i].op_type == "Relu"
        i += relu
        layers.append(DenseLayer(np.ascontiguousarray(w.T, np.float32), np.asarray(b, np.float32), relu))
        width = w.shape[1]
    if not layers:
        return None
    l2, eps = False, 0.0
    if [n.op_type for n in nodes[i : i + 4]] == ["ReduceL2", "Clip", "Expand", "Div"]:
        clip = nodes[i + 1]
        lo = init.get(clip.input[1]) if len(clip.input) > 1 and clip.input[1] else _attrs(clip).get("min")
        l2, eps, i = True, float(lo if lo is not None else 0.0), i + 4
    if i != len(nodes):
        return None
    return DenseNet(shape, take, tuple(layers), l2, eps)


def compile_dense(engine, seed: int = 0) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy function computing `engine`'s single output, or None when the engine's graph is not a plain
    dense network, `onnx` is missing, or the numbers disagree with the engine on random inputs."""
    path = getattr(engine, "path", None)
    if path is None or Path(path).suffix != ".onnx" or len(engine.output_names) != 1:
        return None
    try:
        net = _parse(Path(path))
    except ImportError:
        return None
    if net is None:
        return None
    rng = np.random.default_rng(seed)
    out = engine.output_names[0]
    for _ in range(4):
        x = rng.normal(size=net.input_shape).astype(np.float32)
        if not np.allclose(net(x), engine.infer(x)[out], atol=PARITY_ATOL, rtol=0.0):
            return None
    return net
