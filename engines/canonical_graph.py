"""Re-export a pose engine's in-plane canonicalization with train/canonical.py's current code, the network
between it untouched.

A canonical pose engine (train/canonical.py's `InPlaneCanonical`) is three parts in one graph: the views of
the crop turned upright (shifted copies, image moments, the rotation, GridSample), the network, and the
joints turned back and averaged over the views. The first part used to be three dozen small operations on
(views, S, S) tensors and a batched matrix product, 0.24 of the shipped engine's 0.70 ms on this CPU; the
same arithmetic as moments from one matrix product costs a fraction of that (BENCHMARKS.md, "The pose
engine's canonicalization on the CPU"). A shipped engine whose checkpoint is not at hand gets the new form
here: its network is cut out of the graph at the canonical crops and the canonical joints (found by the
graph's structure: the GridSample's output + 1, and the (views, J, 3) tensor turned back by the same
rotation), and the two other parts are exported afresh from `InPlaneCanonical` with the engine's own view
shifts and crop size. The engine must give the same joints as before on real crops (checked before writing).

    python -m engines.canonical_graph --src engines/default/pose.onnx --out engines/default/pose.onnx
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from stream.errors import InputError

from .export import _simplify
from .manifest import load_manifest, manifest_path_for, save_manifest, sha256_file


def network_cut(graph) -> tuple[str, str]:
    """(canonical crops, canonical joints): the tensors between which a canonical pose engine's network
    lies. The crops are where the graph has turned its views upright (backends/canonical.py's `graph_turn`);
    the joints are what the same rotation turns back: the data input of the Slice feeding a MatMul by it."""
    from .backends.canonical import graph_turn

    turn = graph_turn(graph)
    if turn is None:
        raise InputError("not a canonical engine: no GridSample turning `crops - 1` by a rotation's grid")
    _, crops, rot, read_after = turn
    producer = {o: n for n in graph.node for o in n.output}

    def turns_back(n) -> bool:
        sl = producer.get(n.input[0])
        return n.op_type == "MatMul" and rot in n.input and sl is not None and sl.op_type == "Slice"

    turns = [n for n in graph.node if turns_back(n)] if read_after else []
    if len(turns) != 1:
        raise InputError(
            f"expected one MatMul turning a Slice of the joints back by the rotation, found {len(turns)}"
        )
    return crops, producer[turns[0].input[0]].input[0]


def _export(module, args: tuple, path: Path, inputs: list[str], outputs: list[str], opset: int) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (engines/export.py)
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _renamed(graph, prefix: str, keep: dict[str, str]) -> tuple[list, list]:
    """`graph`'s nodes and initializers with every tensor name prefixed, except those in `keep` (old ->
    new name)."""
    import onnx

    def name(t: str) -> str:
        return t if not t else keep.get(t, prefix + t)

    nodes = []
    for n in graph.node:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = prefix + n.name
        m.input[:] = [name(i) for i in n.input]
        m.output[:] = [name(o) for o in n.output]
        nodes.append(m)
    inits = []
    for t in graph.initializer:
        u = onnx.TensorProto()
        u.CopyFrom(t)
        u.name = name(t.name)
        inits.append(u)
    return nodes, inits


def respin(model, shifts: tuple[tuple[int, int], ...], size: int):
    """`model` (onnx.ModelProto of a canonical pose engine) with its canonicalization and its turning back
    exported afresh from train/canonical.py; the network's nodes and weights are kept as they are."""
    import onnx
    import onnx.utils
    import torch

    from train.canonical import InPlaneCanonical

    graph = model.graph
    crops, joints = network_cut(graph)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    (inp,), (out,) = graph.input, graph.output
    canon = InPlaneCanonical(torch.nn.Identity(), shifts).eval()
    views = len(shifts) or 1

    class Views(torch.nn.Module):
        def forward(self, x):
            return canon.canonical_views(x)

    class Back(torch.nn.Module):
        def forward(self, y, rot):
            return canon.from_views(y, rot, size)

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        src = t / "src.onnx"
        onnx.save(model, str(src))
        onnx.utils.extract_model(str(src), str(t / "net.onnx"), [crops], [joints])
        net = onnx.load(str(t / "net.onnx"))
        j = int(net.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
        x = torch.ones(1, 1, size, size)
        _export(Views(), (x,), t / "views.onnx", [inp.name], ["crops", "rot"], opset)
        y, rot = torch.zeros(views, j, 3), torch.eye(2).expand(views, 2, 2).contiguous()
        _export(Back(), (y, rot), t / "back.onnx", ["y", "rot"], [out.name], opset)
        for part in ("views", "back"):  # constant shapes folded, as every export here (engines/export.py)
            _simplify(t / f"{part}.onnx", t / f"{part}_slim.onnx")
        pre, post = (onnx.load(str(t / f"{p}_slim.onnx")).graph for p in ("views", "back"))
    pre_nodes, pre_inits = _renamed(
        pre, "canonical/", {inp.name: inp.name, "crops": crops, "rot": "canonical/rot"}
    )
    post_nodes, post_inits = _renamed(
        post, "turn_back/", {"y": joints, "rot": "canonical/rot", out.name: out.name}
    )
    new = onnx.helper.make_graph(
        pre_nodes + list(net.graph.node) + post_nodes,
        graph.name,
        [inp],
        [out],
        pre_inits + list(net.graph.initializer) + post_inits,
    )
    result = onnx.helper.make_model(new, opset_imports=list(model.opset_import), producer_name="handstream")
    result.ir_version = model.ir_version
    onnx.checker.check_model(result, full_check=True)
    return result


def parity(a: Path, b: Path, crops: np.ndarray) -> float:
    """max |a - b| of two engines' joints over `crops` (N, 1, S, S), one at a time as the runtime runs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sa, sb = (ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for p in (a, b))
    name = sa.get_inputs()[0].name
    worst = 0.0
    for c in crops:
        ya, yb = sa.run(None, {name: c[None]})[0], sb.run(None, {name: c[None]})[0]
        worst = max(worst, float(np.abs(ya - yb).max()))
    return worst


def real_crops(size: int, frames: int = 60, seed: int = 0) -> np.ndarray:
    """(N, 1, S, S) crops as the pipeline cuts them: the generator's frames through the segmenter."""
    from stream.preprocess import HandSegmenter, crop_cube
    from stream.sources.synthetic import SyntheticSource

    seg, out = HandSegmenter(), []
    for f in SyntheticSource(n_frames=frames, seed=seed, cam="d435_640x480"):
        r = seg.segment(f.depth_mm, f.intrinsics)
        if r.found:
            out.append(crop_cube(f.depth_mm, f.intrinsics, r.best.com_xyz_mm, 300.0, size, r.best.mask).depth)
    return np.stack(out)[:, None].astype(np.float32)


def respin_engine(src: str | Path, out: str | Path, atol: float = 1e-4) -> tuple[Path, float]:
    """Write `out` (.onnx + manifest) from the engine `src`; (path, parity with `src` on real crops)."""
    import onnx

    src, out = Path(src), Path(out)
    m = load_manifest(manifest_path_for(src))
    kw = m.training.get("model_kwargs") or {}
    shifts = tuple((int(dx), int(dy)) for dx, dy in kw.get("test_shifts_px") or ())
    size = int(m.preprocessing.get("crop_size") or kw.get("input_size"))
    model = respin(onnx.load(str(src)), shifts, size)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_path = Path(tmp) / out.name
        onnx.save(model, str(tmp_path))
        diff = parity(src, tmp_path, real_crops(size))
        if not diff <= atol:
            raise InputError(f"the respun engine's joints differ from {src.name}'s by {diff:.3g} > {atol:g}")
        tmp_path.replace(out)
    training = {
        **m.training,
        "canonicalization": {
            "respun_from_onnx_sha256": m.onnx_sha256,
            "by": "engines/canonical_graph.py (train/canonical.py's moments form; same network weights)",
            "parity_max_abs_diff": diff,
        },
    }
    save_manifest(replace(m, training=training).with_onnx(out), manifest_path_for(out))
    return out, diff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="engines/default/pose.onnx")
    ap.add_argument("--out", default="engines/default/pose.onnx")
    a = ap.parse_args(argv)
    path, diff = respin_engine(a.src, a.out)
    print(f"wrote {path} ({sha256_file(path)[:12]}), joints within {diff:.2g} of the engine before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
