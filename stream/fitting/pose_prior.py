"""A prior over the hand model's 20 joint angles: which poses hands take, as a mixture of Gaussians.

The depth cannot see a finger hidden behind the palm or another finger, and there the fit's other terms
say little: only the prior towards the pose engine's joints decides, and where the engine is wrong the fit
follows it. Model-based trackers answer with a data-driven pose prior (Tagliasacchi et al. 2015, "pose space
prior"; Tkach et al. 2016): fingers flex together, a hidden finger is more likely curled like its
neighbours than bent on its own. This one is a mixture of K Gaussians over the angles (weights `weights`,
means `means_rad`, covariances `covariances_rad2`; K = 1 is one Gaussian). Its energy is the mixture's
negative log-likelihood with the sum replaced by its largest term, as SMPLify (Bogo et al. 2016) does for
its body-pose mixture:

    E = w^2 min_k [ (theta - mean_k)^T P_k (theta - mean_k) + c_k ],    P_k = (covariance_k + s^2 I)^-1
    c_k = log det(covariance_k + s^2 I) - 2 log weight_k,  less the smallest of them (so E >= 0)

so at every step the fit is pulled towards the one kind of hand shape its pose is nearest (a fist, a
point, a grip), not towards the average of all of them, which is no shape a hand takes. The chosen
component's quadratic joins the fit's other terms as 20 residual rows `w L_k^T (theta - mean_k)` (P_k =
L_k L_k^T); the choice is made again wherever the energy is evaluated, so the energies the fit compares are
all the same function. The isotropic `s` (`shrink_deg`, a few degrees) keeps every precision bounded in
directions the training poses never moved.

It is learned from joint angles (train/fitting_prior.py: the generator's hands on training seeds, recovered
from their true joints by inverse kinematics) and shipped as JSON beside the engines
(`engines/default/pose_prior_mixture.json`, the fit stage's; `pose_prior.json`, one Gaussian, the hand-size
measurement's, whose readout was learned on fits with it). A prior learned from generated poses knows the
generator's repertoire of hand shapes: on real hands it is only as good as that repertoire is wide; the
shrink and a handful of broad components (not one template per gesture) keep it from snapping a real hand
to a generated one. Runtime: numpy only.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

SHIPPED = "pose_prior"  # engines/default/pose_prior.json: one Gaussian (the hand-size measurement's)
SHIPPED_MIXTURE = "pose_prior_mixture"  # engines/default/pose_prior_mixture.json: the fit stage's
N_ANGLES = 20


@dataclass(frozen=True, eq=False)
class PosePrior:
    """weights (K,), means (K, 20) rad, covariances (K, 20, 20) rad^2 of the training poses' mixture;
    `shrink_deg` the isotropic sd added to every covariance."""

    weights: np.ndarray
    means_rad: np.ndarray
    covariances_rad2: np.ndarray
    shrink_deg: float
    made: str = ""

    @property
    def components(self) -> int:
        return len(self.weights)

    @property
    def precisions(self) -> np.ndarray:
        """(K, 20, 20) the inverses of the shrunk covariances."""
        return np.linalg.inv(self._shrunk())

    def _shrunk(self) -> np.ndarray:
        return self.covariances_rad2 + np.radians(self.shrink_deg) ** 2 * np.eye(N_ANGLES)

    def weighted(self, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(means (K, 20), w^2 precisions (K, 20, 20), their roots w L_k^T (K, 20, 20), w^2 c_k (K,)): each
        component's energy matrix, the rows that give it in a least-squares system (root^T root = w^2
        precision) and its constant (0 for the likeliest; all 0 for one Gaussian)."""
        prec = self.precisions
        prec = 0.5 * (prec + np.swapaxes(prec, 1, 2))
        root = np.swapaxes(np.linalg.cholesky(prec), 1, 2)
        logdet = np.linalg.slogdet(self._shrunk())[1]
        const = logdet - 2.0 * np.log(self.weights)
        w2 = float(weight) ** 2
        return self.means_rad, w2 * prec, float(weight) * root, w2 * (const - const.min())

    def component_energies(self, pose_rad: np.ndarray, weight: float) -> np.ndarray:
        """(K,) w^2 [(theta - mean_k)^T P_k (theta - mean_k) + c_k]: the energy is their smallest."""
        return component_energies(self.weighted(weight), pose_rad)

    def energy(self, pose_rad: np.ndarray, weight: float) -> float:
        """w^2 min_k [(theta - mean_k)^T P_k (theta - mean_k) + c_k]."""
        return float(self.component_energies(pose_rad, weight).min())

    def to_json(self) -> dict:
        return {
            "kind": "hand_pose_prior",
            "made": self.made,
            "shrink_deg": float(self.shrink_deg),
            "weights": self.weights.tolist(),
            "means_rad": self.means_rad.tolist(),
            "covariances_rad2": self.covariances_rad2.tolist(),
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
        """A mixture's file, or one Gaussian's (`mean_rad`, `covariance_rad2`: K = 1)."""
        if "mean_rad" in doc:
            means = np.asarray(doc["mean_rad"], np.float64)[None]
            covs = np.asarray(doc["covariance_rad2"], np.float64)[None]
            weights = np.ones(1)
        else:
            means = np.asarray(doc["means_rad"], np.float64)
            covs = np.asarray(doc["covariances_rad2"], np.float64)
            weights = np.asarray(doc["weights"], np.float64)
        shrink = float(doc["shrink_deg"])
        k = len(weights)
        if (
            doc.get("kind") != "hand_pose_prior"
            or k < 1
            or weights.shape != (k,)
            or means.shape != (k, N_ANGLES)
            or covs.shape != (k, N_ANGLES, N_ANGLES)
        ):
            raise ValueError("not a hand pose prior (K weights, K x 20 means, K 20 x 20 covariances)")
        if not (
            np.isfinite(means).all()
            and np.isfinite(covs).all()
            and np.all(weights > 0)
            and shrink > 0
            and np.allclose(covs, np.swapaxes(covs, 1, 2))
        ):
            raise ValueError(
                "a pose prior needs positive weights, finite symmetric covariances, shrink_deg > 0"
            )
        return cls(weights / weights.sum(), means, covs, shrink, str(doc.get("made", "")))


def component_energies(weighted: tuple, pose_rad: np.ndarray) -> np.ndarray:
    """(K,) each component's energy at a pose, from `PosePrior.weighted`'s (means, w^2 precisions, roots,
    w^2 constants) (the fit keeps them computed once per prior and weight)."""
    means, prec, _, const = weighted
    d = np.asarray(pose_rad, np.float64) - means
    return (np.matmul(prec, d[:, :, None])[:, :, 0] * d).sum(1) + const  # einsum's parsing costs more


def fit_pose_prior(
    poses_rad: np.ndarray, shrink_deg: float = 5.0, made: str = "", components: int = 1, seed: int = 0
) -> PosePrior:
    """The Gaussian (components = 1) or the mixture of `components` Gaussians of (N, 20) joint angles (N > 20
    a component). A mixture is fitted by expectation-maximisation (scikit-learn's GaussianMixture, a training
    dependency, imported only here) with the shrink added to every covariance as it fits, and stored
    without it (the prior adds it back)."""
    p = np.asarray(poses_rad, np.float64)
    k = int(components)
    if k < 1 or p.ndim != 2 or p.shape[1] != N_ANGLES or len(p) <= N_ANGLES * k:
        raise ValueError(
            f"need (N > {N_ANGLES} x components, {N_ANGLES}) angles and components >= 1, got {p.shape}"
        )
    if k == 1:
        return PosePrior(np.ones(1), p.mean(0)[None], np.cov(p.T)[None], float(shrink_deg), made)
    from sklearn.mixture import GaussianMixture

    reg = float(np.radians(shrink_deg) ** 2)
    gm = GaussianMixture(k, covariance_type="full", reg_covar=reg, n_init=3, max_iter=500, random_state=seed)
    gm.fit(p)
    covs = gm.covariances_ - reg * np.eye(N_ANGLES)
    return PosePrior(
        gm.weights_.copy(), gm.means_.copy(), 0.5 * (covs + np.swapaxes(covs, 1, 2)), float(shrink_deg), made
    )


def shipped_pose_prior(name: str = SHIPPED) -> PosePrior:
    """A shipped prior (engines/default/NAME.json), read once a process (configs that name it share one
    object)."""
    return _shipped(name)


def load_pose_prior(name_or_path: str | Path = SHIPPED) -> PosePrior:
    """The prior in a file, or shipped under a name (`shipped_pose_prior`); InputError with one line when
    it is missing or unreadable."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return _read(p)
    return _shipped(p.name)


@functools.cache
def _shipped(name: str) -> PosePrior:
    from engines.registry import DEFAULT_DIR

    return _read(DEFAULT_DIR / f"{name}.json")


def _read(p: Path) -> PosePrior:
    try:
        return PosePrior.from_json(json.loads(p.read_text()))
    except FileNotFoundError:
        raise InputError(f"no pose prior at {p}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the pose prior {p}: {exc}") from None
