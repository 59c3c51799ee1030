"""Camera intrinsics from a small JSON or YAML file (for videos and image folders, which carry none).

    {"fx": 383.4, "fy": 383.4, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480, "depth_unit_mm": 1.0}

librealsense's names `ppx`/`ppy` are accepted for cx/cy. A bare camera name (frames.KNOWN_CAMERAS, e.g.
`nyu`) may stand in place of a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..frames import KNOWN_CAMERAS, CameraIntrinsics


def load_intrinsics(spec: str | Path) -> CameraIntrinsics:
    s = str(spec)
    if s in KNOWN_CAMERAS:
        return KNOWN_CAMERAS[s]
    p = Path(s)
    if not p.is_file():
        raise InputError(
            f"intrinsics file {p} not found (or a camera name: {', '.join(sorted(KNOWN_CAMERAS))})"
        )
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError(
                f"{p.name}: reading YAML needs pyyaml (pip install pyyaml), or use JSON"
            ) from None
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{p.name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(d, dict):
        raise InputError(f"{p.name}: expected a mapping with fx, fy, cx, cy, width, height")
    d = dict(d)
    for a, b in (("ppx", "cx"), ("ppy", "cy")):
        if a in d and b not in d:
            d[b] = d.pop(a)
    d.setdefault("name", p.stem)
    try:
        return CameraIntrinsics.from_dict(d)
    except InputError as exc:
        raise InputError(f"{p.name}: {exc}") from None
