"""A Gaussian prior over the hand model's 20 joint angles: which poses hands take.

The depth cannot see a finger hidden behind the palm or another finger, and there the fit's other terms
say little: only the prior towards the pose engine's joints decides, and where the engine is wrong the fit
follows it. Model-based trackers answer with a data-driven pose prior (Tagliasacchi et al. 2015, "pose space
prior"; Tkach et al. 2016): fingers flex together, a hidden finger is more likely curled like its
neighbours than bent on its own. This one is a Gaussian over the angles, mean `mean_rad` and covariance
`covariance_rad2`, whose energy

    E = w^2 (theta - mean)^T  precision  (theta - mean),    precision = (covariance + s^2 I)^-1

joins the fit's other terms as 20 residual rows `w L^T (theta - mean)` (precision = L L^T). The isotropic
`s` (`shrink_deg`, a few degrees) keeps the precision bounded in directions the training poses never moved.

It is learned from joint angles (train/fitting_prior.py: the generator's hands on training seeds, recovered
from their true joints by inverse kinematics) and shipped as JSON beside the engines
(`engines/default/pose_prior.json`, with a line saying how it was made). A prior learned from generated
poses knows the generator's repertoire of hand shapes: on real hands it is only as good as that repertoire
is wide, which is why it is a weak Gaussian and not a set of templates. Runtime: numpy only.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

SHIPPED = "pose_prior"  # engines/default/pose_prior.json
N_ANGLES = 20


@dataclass(frozen=True, eq=False)
class PosePrior:
    """mean (20,) rad, covariance (20, 20) rad^2 of the training poses; `shrink_deg` the isotropic sd added."""

    mean_rad: np.ndarray
    covariance_rad2: np.ndarray
    shrink_deg: float
    made: str = ""

    @property
    def precision(self) -> np.ndarray:
        """(20, 20) the inverse of the shrunk covariance."""
        return np.linalg.inv(self.covariance_rad2 + np.radians(self.shrink_deg) ** 2 * np.eye(N_ANGLES))

    def weighted(self, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean (20,), w^2 precision (20, 20), its root w L^T (20, 20)): the energy's matrix and the rows that
        give it in a least-squares system (root^T root = w^2 precision)."""
        prec = self.precision
        prec = 0.5 * (prec + prec.T)
        root = np.linalg.cholesky(prec).T
        w = float(weight)
        return self.mean_rad, w * w * prec, w * root

    def energy(self, pose_rad: np.ndarray, weight: float) -> float:
        """w^2 (theta - mean)^T precision (theta - mean)."""
        d = np.asarray(pose_rad, np.float64) - self.mean_rad
        return float(weight) ** 2 * float(d @ self.precision @ d)

    def to_json(self) -> dict:
        return {
            "kind": "hand_pose_prior",
            "made": self.made,
            "shrink_deg": float(self.shrink_deg),
            "mean_rad": self.mean_rad.tolist(),
            "covariance_rad2": self.covariance_rad2.tolist(),
        }

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        doc = self.to_json()
        p.write_text(
            "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}\n"
        )
        return p

    @classmethod
    def from_json(cls, doc: dict) -> PosePrior:
        mean = np.asarray(doc["mean_rad"], np.float64)
        cov = np.asarray(doc["covariance_rad2"], np.float64)
        shrink = float(doc["shrink_deg"])
        if (
            doc.get("kind") != "hand_pose_prior"
            or mean.shape != (N_ANGLES,)
            or cov.shape != (N_ANGLES, N_ANGLES)
        ):
            raise ValueError("not a hand pose prior (20 angles, a 20 x 20 covariance)")
        if not (
            np.isfinite(mean).all() and np.isfinite(cov).all() and shrink > 0 and np.allclose(cov, cov.T)
        ):
            raise ValueError("a pose prior needs a finite symmetric covariance and shrink_deg > 0")
        return cls(mean, cov, shrink, str(doc.get("made", "")))


def fit_pose_prior(poses_rad: np.ndarray, shrink_deg: float = 5.0, made: str = "") -> PosePrior:
    """The Gaussian of (N, 20) joint angles (N > 20)."""
    p = np.asarray(poses_rad, np.float64)
    if p.ndim != 2 or p.shape[1] != N_ANGLES or len(p) <= N_ANGLES:
        raise ValueError(f"need (N > {N_ANGLES}, {N_ANGLES}) angles, got {p.shape}")
    return PosePrior(p.mean(0), np.cov(p.T), float(shrink_deg), made)


@functools.cache
def shipped_pose_prior() -> PosePrior:
    """The shipped prior, read once a process (configs that default to it share one object)."""
    return load_pose_prior(SHIPPED)


def load_pose_prior(name_or_path: str | Path = SHIPPED) -> PosePrior:
    """The prior in a file, or shipped under a name (engines/default/NAME.json); InputError with one line when
    it is missing or unreadable."""
    p = Path(name_or_path)
    if not (p.suffix == ".json" or p.exists()):
        from engines.registry import DEFAULT_DIR

        p = DEFAULT_DIR / f"{p.name}.json"
    try:
        return PosePrior.from_json(json.loads(p.read_text()))
    except FileNotFoundError:
        raise InputError(f"no pose prior at {p}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the pose prior {p}: {exc}") from None
