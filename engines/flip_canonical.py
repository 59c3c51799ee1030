"""A pose engine's twin that reads the hand the other way up: the sign of its canonical angle flipped.

The shipped pose engine turns each crop so that its silhouette's major axis points one way
(train/canonical.py: the axis from image moments, pointing towards the side with the positive third
moment) before its network sees it. For a compact silhouette -- a fist, a hand seen end-on -- the third
moment is near zero and the choice of end can go either way; the network then reads the hand upside down
and the skeleton is tens of millimetres off. This twin is the same graph with the two ends swapped: on a
new track the fit stage fits the model from both engines' joints and keeps the fit of lower energy
(stream/fitting/stage.py; BENCHMARKS.md, "Model fitting").

    python -m engines.flip_canonical --src engines/default/pose.onnx --out engines/default

The graph is changed in one place, found by its structure, not its name: the Where that picks `angle + pi`
where the third moment is negative and `angle` elsewhere gets its two branches swapped.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from stream.errors import InputError

from .manifest import load_manifest, manifest_path_for, save_manifest, sha256_file

NAME = "pose_flipped"


def _angle_sign_where(graph) -> object:
    """The one Where node choosing between `a + pi` and `a` on a Less (the third moment's sign), in the
    engine's own orientation (`angle + pi` its second input)."""
    from .backends.canonical import angle_choice

    choice = angle_choice(graph)
    if choice is None:
        raise InputError("expected one canonical-angle sign choice in the graph, found none")
    if choice[1]:
        raise InputError("this graph's canonical angle is already flipped (a twin, not an engine)")
    return choice[0]


def flip_canonical(src: str | Path, out_dir: str | Path) -> Path:
    """Write NAME.onnx and its manifest into `out_dir`: `src`'s graph with the angle's ends swapped."""
    import onnx

    src = Path(src)
    model = onnx.load(str(src))
    where = _angle_sign_where(model.graph)
    where.input[1], where.input[2] = where.input[2], where.input[1]
    onnx.checker.check_model(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{NAME}.onnx"
    onnx.save(model, str(onnx_path))
    m = load_manifest(manifest_path_for(src))
    training = {
        **m.training,
        "derived_from": {"engine": m.name, "onnx_sha256": m.onnx_sha256},
        "variant": "the canonical angle's sign flipped (engines/flip_canonical.py); same weights",
    }
    m = replace(m, name=NAME, training=training, created="").with_onnx(onnx_path)
    save_manifest(m, manifest_path_for(onnx_path))
    return onnx_path


def twin_of(pose_engine) -> str | None:
    """NAME when the shipped twin was derived from `pose_engine`'s ONNX bytes, else None."""
    from .registry import DEFAULT_DIR

    path = DEFAULT_DIR / f"{NAME}.json"
    if not path.is_file():
        return None
    derived = load_manifest(path).training.get("derived_from") or {}
    sha = getattr(getattr(pose_engine, "manifest", None), "onnx_sha256", "")
    return NAME if sha and derived.get("onnx_sha256") == sha else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="engines/default/pose.onnx")
    ap.add_argument("--out", default="engines/default")
    a = ap.parse_args(argv)
    path = flip_canonical(a.src, a.out)
    print(f"wrote {path} ({sha256_file(path)[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
