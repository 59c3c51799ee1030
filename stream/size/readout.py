"""A learned reading of the size evidence: the candidates' energies -> the hand's length and palm width.

`read_size` reads the evidence as a likelihood times the population's prior: a hand-designed reading
whose estimates shrink towards the population's mean more than the evidence warrants on some frames and
less on others. This reading starts from it and learns the rest on training subjects: inputs are the
posterior's mean and confidence, the best fit's energy (how well any candidate explains the frame), the
whole evidence grid relative to its minimum (its shape in length and width, log-compressed) and the
best-fitting model's pose (a curled middle finger says little about the length); a small network (or a
linear map: no hidden layer) gives a correction to the posterior mean. A track's reading is the same map
applied to its frames' averaged inputs, as `read_size` reads a track's averaged evidence.

The map ships as a JSON file beside the engines (`engines/default/size_readout.json`) with the candidate
grid and reading settings it was trained with, the inputs' standardisation, its weights and a line saying
how it was made (`handstream train size readout`). Runtime: numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

# the SizeFitConfig fields a readout depends on (its inputs are read with them): it refuses another setting
CONFIG_KEYS = (
    "lengths_mm",
    "width_offsets_mm",
    "w_data",
    "w_silhouette",
    "w_free_space",
    "w_prior",
    "temperature_length",
    "temperature_width",
    "prior_length_mm",
    "prior_length_sd_mm",
    "prior_width_sd_mm",
    "energy_ref_mm2",
    "length_scale",
    "pose_prior_weight",
)
N_POSE = 3  # pose_features: the middle finger's flexion, the four fingers' mean flexion, the fit's RMS (mm)
SHIPPED = "size_readout"  # engines/default/size_readout.json


def pose_features(pose: np.ndarray, data_rms_mm: float) -> np.ndarray:
    """(N_POSE,) what the best-fitting model's pose says about how much of the hand a frame shows: the
    middle finger's flexion (lift + both flexions, rad: the length is the wrist-to-middle-fingertip), the
    mean over the four fingers, and the fit's RMS point distance (mm)."""
    from ..fitting.model import _I_FLEX1, _I_FLEX2, _I_LIFT

    p = np.asarray(pose, np.float64)
    flex = p[_I_LIFT] + p[_I_FLEX1] + p[_I_FLEX2]  # thumb, index, middle, ring, little
    return np.array([flex[2], flex[1:].mean(), float(data_rms_mm)])


def readout_inputs(
    evidence_mean: np.ndarray, log_best_energy: float, pose_mean: np.ndarray, cfg
) -> tuple[np.ndarray, np.ndarray, float]:
    """(inputs (4 + nL nW + N_POSE,), the posterior's (length, width), its confidence) of a frame's
    evidence or a track's average: the posterior's mean and confidence (`read_size`), the mean log of the
    best candidate's raw energy (mm^2), log(1 + the evidence over its minimum - 1) per candidate, and the
    mean pose_features."""
    from .measure import read_size

    e = np.asarray(evidence_mean, np.float64)
    base, conf = read_size(e, cfg)
    rel = np.log(e / max(float(np.nanmin(e)), 1e-9))  # log1p(e / min - 1)
    x = np.concatenate([base, [conf, float(log_best_energy)], rel.ravel(), np.asarray(pose_mean, np.float64)])
    return x, base, conf


def config_dict(cfg) -> dict:
    """The reading settings of a SizeFitConfig that a readout's inputs depend on, JSON-ready."""
    out = {}
    for k in CONFIG_KEYS:
        v = getattr(cfg, k)
        out[k] = [float(a) for a in v] if isinstance(v, tuple) else float(v)
    return out


@dataclass(frozen=True)
class SizeReadout:
    """The learned map: standardised inputs -> (tanh hidden layer, if any) -> correction (mm) to the
    posterior's (length, width). `config`: the reading settings it was trained with (config_dict)."""

    config: dict
    in_mean: np.ndarray
    in_scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (W (n_in, n_out), b (n_out,)); tanh between
    out_mean: np.ndarray
    out_scale: np.ndarray
    made: str = ""

    def correction(self, x: np.ndarray) -> np.ndarray:
        """(..., 2) mm added to the posterior's (length, width) for inputs (..., F)."""
        h = (np.asarray(x, np.float64) - self.in_mean) / self.in_scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.tanh(h)
        return h * self.out_scale + self.out_mean

    def read(
        self, evidence_mean: np.ndarray, log_best_energy: float, pose_mean: np.ndarray, cfg
    ) -> tuple[np.ndarray, float]:
        """((length, width) mm, confidence) of a frame's or a track's averaged inputs; the confidence is
        the posterior's (`read_size`): the share of the population's variance the evidence removed."""
        x, base, conf = readout_inputs(evidence_mean, log_best_energy, pose_mean, cfg)
        return base + self.correction(x), conf

    def check(self, cfg) -> None:
        """InputError unless `cfg` reads the evidence as the readout was trained to."""
        want = config_dict(cfg)
        diff = [k for k in CONFIG_KEYS if not _same(want[k], self.config.get(k, np.nan))]
        if diff:
            raise InputError(
                f"the size readout was trained with other size_fit settings ({', '.join(diff)}); "
                "pass readout=None for the posterior mean"
            )

    def to_json(self) -> dict:
        return {
            "kind": "hand_size_readout",
            "made": self.made,
            "config": self.config,
            "in_mean": self.in_mean.tolist(),
            "in_scale": self.in_scale.tolist(),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
            "out_mean": self.out_mean.tolist(),
            "out_scale": self.out_scale.tolist(),
        }

    def save(self, path: str | Path) -> Path:
        """One key a line (the weights' arrays each on one line), so that `made` and `config` read."""
        p = Path(path)
        doc = self.to_json()
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()]
        p.write_text("{\n" + ",\n".join(lines) + "\n}\n")
        return p

    @classmethod
    def from_json(cls, doc: dict) -> SizeReadout:
        layers = tuple(
            (np.asarray(layer["weight"], np.float64), np.asarray(layer["bias"], np.float64))
            for layer in doc["layers"]
        )
        out = cls(
            config=dict(doc["config"]),
            in_mean=np.asarray(doc["in_mean"], np.float64),
            in_scale=np.asarray(doc["in_scale"], np.float64),
            layers=layers,
            out_mean=np.asarray(doc["out_mean"], np.float64),
            out_scale=np.asarray(doc["out_scale"], np.float64),
            made=str(doc.get("made", "")),
        )
        n = len(out.in_mean)
        dims = [n] + [w.shape[1] for w, _ in layers]
        ok = (
            doc.get("kind") == "hand_size_readout"
            and out.in_scale.shape == (n,)
            and all(w.shape == (a, b.shape[0]) for (w, b), a in zip(layers, dims[:-1]))
            and dims[-1] == 2
            and out.out_mean.shape == out.out_scale.shape == (2,)
        )
        if not ok:
            raise ValueError("not a hand-size readout (shapes do not chain to 2 outputs)")
        return out


def _same(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=0.0))


def readout_path(name_or_path: str | Path) -> Path:
    """A readout file: a path, or a shipped name (engines/default/NAME.json)."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    from engines.registry import DEFAULT_DIR

    return DEFAULT_DIR / f"{p.name}.json"


def load_readout(name_or_path: str | Path = SHIPPED, cfg=None) -> SizeReadout:
    """The readout in a file (or shipped under a name), checked against `cfg`'s settings when given;
    InputError with one line when it is missing, unreadable or trained for other settings."""
    p = readout_path(name_or_path)
    try:
        out = SizeReadout.from_json(json.loads(p.read_text()))
    except FileNotFoundError:
        raise InputError(f"no size readout at {p}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the size readout {p}: {exc}") from None
    if cfg is not None:
        out.check(cfg)
    return out
