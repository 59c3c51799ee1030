"""The manifest: what an engine file is, what it expects, and the sha256 that ties it to one ONNX file.

Every engine ships as `NAME.onnx` + `NAME.json` side by side. The runtime reads the manifest to learn the
preprocessing the engine was trained with (crop size, cube size, normalization, joint layout) and refuses
an engine whose manifest does not match its ONNX bytes or what the pipeline feeds it: a wrong engine gives
plausible-looking garbage, so it must fail loudly and early instead.

Pure standard library + numpy-free: importing this never pulls in torch, onnx or onnxruntime.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from stream.errors import InputError

MANIFEST_FORMAT = 1
_FLAT_LIST = re.compile(r"\[\s*((?:-?[\w.+\-]+|\"[\w.\-]*\")(?:,\s*(?:-?[\w.+\-]+|\"[\w.\-]*\"))*)\s*\]")
DTYPES = ("float32", "float16", "int64", "int32", "uint8")
INPUT_KINDS = ("depth", "rgb", "rgbd", "joints")
JOINT_LAYOUTS = ("mediapipe21", "nyu14")
JOINT_COUNTS = {"mediapipe21": 21, "nyu14": 14}
# Keys `check_expected` understands: what the pipeline can tell about the tensors it will feed.
EXPECT_KEYS = ("crop_size", "input_channels", "num_joints", "input", "joint_layout", "cube_mm", "task")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor. A str dimension is symbolic (e.g. "batch" for a dynamic batch)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.name:
            raise InputError("a tensor spec needs a name")
        if self.dtype not in DTYPES:
            raise InputError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(d if isinstance(d, str) else int(d) for d in self.shape))

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def matches(self, shape: tuple[int, ...]) -> bool:
        """True when a concrete array shape fits this spec (symbolic dims accept any size)."""
        return len(shape) == len(self.shape) and all(
            isinstance(d, str) or d == s for d, s in zip(self.shape, shape)
        )

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        try:
            return cls(str(d["name"]), tuple(d["shape"]), str(d.get("dtype", "float32")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"bad tensor spec {d!r}: {exc}") from None


@dataclass(frozen=True)
class Manifest:
    """Describes one engine. `preprocessing` keys: crop_size, cube_mm, input ("depth"|"rgb"|"rgbd"),
    depth_normalization, joint_layout ("mediapipe21"|"nyu14"), num_joints, rgb_mean, rgb_std.
    `training` keys: model (name for train.models.create_model), model_kwargs, checkpoint, data, ...
    `export` records how the ONNX was made (opset, simplified, parity_max_abs_diff, torch version)."""

    name: str
    version: str
    task: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocessing: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    onnx_sha256: str = ""
    created: str = ""
    export: dict = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    def __post_init__(self) -> None:
        if not self.name:
            raise InputError("manifest has no name")
        if not self.inputs or not self.outputs:
            raise InputError(f"manifest {self.name!r} must list at least one input and one output")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        pre = self.preprocessing
        if pre.get("input") is not None and pre["input"] not in INPUT_KINDS:
            raise InputError(f"manifest {self.name!r}: input {pre['input']!r} is not one of {INPUT_KINDS}")
        layout = pre.get("joint_layout")
        if layout is not None and layout not in JOINT_LAYOUTS:
            raise InputError(f"manifest {self.name!r}: joint_layout {layout!r} is not one of {JOINT_LAYOUTS}")

    # -- convenience views used by the runtime -------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def crop_size(self) -> int | None:
        return self.preprocessing.get("crop_size")

    @property
    def num_joints(self) -> int | None:
        return self.preprocessing.get("num_joints")

    @property
    def model(self) -> str | None:
        """The train/ model name this engine was exported from (for the PyTorch reference backend)."""
        return self.training.get("model")

    # -- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False)
        # one line per flat list of numbers/short names (shapes, mean/std): easier to read and diff
        return (
            _FLAT_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
            + "\n"
        )

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        if not isinstance(d, dict):
            raise InputError("a manifest must be a JSON object")
        missing = {"name", "inputs", "outputs"} - set(d)
        if missing:
            raise InputError(f"manifest is missing {sorted(missing)}")
        fmt = int(d.get("format", MANIFEST_FORMAT))
        if fmt > MANIFEST_FORMAT:
            raise InputError(
                f"manifest format {fmt} is newer than this handstream understands ({MANIFEST_FORMAT}); upgrade"
            )
        return cls(
            name=str(d["name"]),
            version=str(d.get("version", "0")),
            task=str(d.get("task", "pose")),
            inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            preprocessing=dict(d.get("preprocessing") or {}),
            training=dict(d.get("training") or {}),
            metrics=dict(d.get("metrics") or {}),
            onnx_sha256=str(d.get("onnx_sha256", "")),
            created=str(d.get("created", "")),
            export=dict(d.get("export") or {}),
            format=fmt,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest is not valid JSON: {exc}") from None

    def with_onnx(self, onnx_path: str | Path) -> Manifest:
        """This manifest bound to an ONNX file: its sha256 filled in, `created` stamped if empty."""
        created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return replace(self, onnx_sha256=sha256_file(onnx_path), created=created)


# -- files ------------------------------------------------------------------------------------------------
def manifest_path_for(onnx_path: str | Path) -> Path:
    """The manifest that belongs to an ONNX file: same folder, same stem, `.json`."""
    return Path(onnx_path).with_suffix(".json")


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_bytes):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest JSON (or, given an .onnx path, the manifest beside it)."""
    path = Path(path)
    if path.suffix == ".onnx":
        path = manifest_path_for(path)
    if not path.is_file():
        raise InputError(f"manifest {path} not found (every engine needs its .json beside the .onnx)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest {path}: {exc}") from None
    try:
        return Manifest.from_json(text)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def save_manifest(manifest: Manifest, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix == ".onnx":
        path = manifest_path_for(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


# -- checks -----------------------------------------------------------------------------------------------
def validate(manifest: Manifest, onnx_path: str | Path) -> None:
    """Refuse an ONNX file whose bytes are not the ones the manifest describes (sha256 mismatch)."""
    if not manifest.onnx_sha256:
        raise InputError(f"manifest {manifest.name!r} has no onnx_sha256; re-export the engine")
    actual = sha256_file(onnx_path)
    if actual != manifest.onnx_sha256:
        raise InputError(
            f"engine {Path(onnx_path).name} does not match its manifest (sha256 {actual[:12]}… != "
            f"{manifest.onnx_sha256[:12]}…): the ONNX was replaced or edited; re-export it with `handstream export`"
        )


def expected_from_manifest(manifest: Manifest) -> dict[str, Any]:
    """What a manifest says about each EXPECT_KEYS key (None where it says nothing)."""
    pre = manifest.preprocessing
    first = manifest.inputs[0].shape
    channels = first[1] if len(first) == 4 and isinstance(first[1], int) else None
    crop = pre.get("crop_size")
    if crop is None and len(first) == 4 and isinstance(first[-1], int):
        crop = first[-1]
    return {
        "crop_size": crop,
        "input_channels": channels,
        "num_joints": pre.get("num_joints"),
        "input": pre.get("input"),
        "joint_layout": pre.get("joint_layout"),
        "cube_mm": pre.get("cube_mm"),
        "task": manifest.task,
    }


def check_expected(manifest: Manifest, expect: dict | None) -> None:
    """Refuse an engine whose manifest contradicts what the pipeline will feed it / read from it.

    `expect` keys (all optional): crop_size, input_channels, num_joints, input, joint_layout, cube_mm, task.
    A key the manifest is silent about is not an error; a contradiction is a one-line InputError.
    """
    if not expect:
        return
    unknown = set(expect) - set(EXPECT_KEYS)
    if unknown:
        raise InputError(f"unknown expectation(s) {sorted(unknown)}; known: {', '.join(EXPECT_KEYS)}")
    have = expected_from_manifest(manifest)
    bad = []
    for key, want in expect.items():
        got = have[key]
        if want is None or got is None:
            continue
        same = abs(float(got) - float(want)) < 1e-6 if key == "cube_mm" else got == want
        if not same:
            bad.append(f"{key}={got!r} (pipeline feeds {want!r})")
    if bad:
        raise InputError(
            f"engine {manifest.name!r} does not fit this pipeline: manifest has {'; '.join(bad)}"
        )


DEPTH_NORMALIZATION = (
    "com_cube_clip_-1_1"  # (d - d_com) / (cube_mm / 2), clipped; no depth -> 1 (seed 003 eq. 4.6)
)
IMAGENET_MEAN_STD = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # RGB channels of rgb/rgbd engines


def pose_preprocessing(
    crop_size: int,
    num_joints: int,
    cube_mm: float,
    input_kind: str = "depth",
    joint_layout: str | None = None,
) -> dict:
    """The manifest's `preprocessing` section of a pose engine (joint layout inferred from J if not given)."""
    if joint_layout is None:
        joint_layout = {v: k for k, v in JOINT_COUNTS.items()}.get(int(num_joints))
    return {
        "crop_size": int(crop_size),
        "cube_mm": float(cube_mm),
        "input": input_kind,
        "depth_normalization": DEPTH_NORMALIZATION,
        "joint_layout": joint_layout,
        "num_joints": int(num_joints),
        "rgb_mean": list(IMAGENET_MEAN_STD[0]),
        "rgb_std": list(IMAGENET_MEAN_STD[1]),
    }


def pose_manifest(
    name: str,
    *,
    crop_size: int,
    num_joints: int,
    input_channels: int = 1,
    cube_mm: float = 250.0,
    input_kind: str = "depth",
    joint_layout: str | None = None,
    version: str = "0.1.0",
    dynamic_batch: bool = False,
    **sections: dict,
) -> Manifest:
    """A manifest for a pose engine following the project convention: input "input" (1, C, S, S) float32
    in [-1, 1], output "joints" (1, 3*J) float32 normalized cube coordinates (row-major (J, 3))."""
    batch: int | str = "batch" if dynamic_batch else 1
    pre = pose_preprocessing(crop_size, num_joints, cube_mm, input_kind, joint_layout)
    pre.update(sections.pop("preprocessing", {}) or {})
    return Manifest(
        name=name,
        version=version,
        task="pose",
        inputs=(TensorSpec("input", (batch, input_channels, crop_size, crop_size)),),
        outputs=(TensorSpec("joints", (batch, 3 * num_joints)),),
        preprocessing=pre,
        training=dict(sections.pop("training", {}) or {}),
        metrics=dict(sections.pop("metrics", {}) or {}),
        export=dict(sections.pop("export", {}) or {}),
    )
