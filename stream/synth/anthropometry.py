"""Real adult hand sizes for synthetic subjects, from the ANSUR II anthropometric survey.

Source: the 2012 U.S. Army Anthropometric Survey (ANSUR II) public release (Gordon et al. 2014, "2012
Anthropometric Survey of U.S. Army Personnel: Methods and Summary Statistics", NATICK/TR-15/007): 4082 men
and 1986 women measured with calipers. Its `hand length` is the wrist crease to the tip of the middle finger,
exactly our HandShape.length_mm; its `hand breadth` is the metacarpal breadth across the knuckles (MCP II
to MCP V), which is our palm width across the MCPs (HandShape.width_mm).

We keep a bivariate normal per sex fitted to the survey (means, sample sds, Pearson correlation of length
and breadth), stored here as constants so the package never reads the survey file at run time;
tests/test_anthropometry.py recomputes them from the file when it is present. The survey's population is
adult soldiers aged 17-58 and two thirds men; we draw men and women half and half (a user population, not an
army), and children are not in it (SceneConfig.child_fraction still adds the generator's child hands).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANTHROPOMETRY_MODELS: tuple[str, ...] = ("uniform", "ansur")


@dataclass(frozen=True)
class SexHandStats:
    """A bivariate normal of (hand length, hand breadth) in mm, fitted to one sex of ANSUR II."""

    n: int
    length_mean_mm: float
    length_sd_mm: float
    breadth_mean_mm: float
    breadth_sd_mm: float
    correlation: float

    def covariance(self) -> np.ndarray:
        c = self.correlation * self.length_sd_mm * self.breadth_sd_mm
        return np.array([[self.length_sd_mm**2, c], [c, self.breadth_sd_mm**2]])


# Fitted to ansur2_hands.csv (sample sd, ddof=1); medians 193 / 88 mm (men), 180 / 78 mm (women).
ANSUR_MALE = SexHandStats(4082, 193.278, 9.946, 88.261, 4.388, 0.5817)
ANSUR_FEMALE = SexHandStats(1986, 181.083, 10.056, 78.154, 3.843, 0.5697)
MALE_FRACTION = 0.5  # not the survey's 0.67: see the module docstring
CLIP_SD = 3.5  # draws beyond this many sds are clipped: the tails hold measurement slips, not hands


def ansur_hand_size(subject: int, male_fraction: float = MALE_FRACTION) -> tuple[float, float, bool]:
    """(length mm, breadth mm, male) of a subject id: the same id always gives the same hand, drawn from its
    own generator so that it never shifts the other per-subject draws of hand_shape."""
    rng = np.random.default_rng([0x5EED, int(subject), 0xA2])
    male = bool(rng.random() < male_fraction)
    stats = ANSUR_MALE if male else ANSUR_FEMALE
    z = np.clip(rng.standard_normal(2), -CLIP_SD, CLIP_SD)
    chol = np.linalg.cholesky(stats.covariance())
    length, breadth = np.array([stats.length_mean_mm, stats.breadth_mean_mm]) + chol @ z
    return float(length), float(breadth), male


def fit_sex_stats(length_mm: np.ndarray, breadth_mm: np.ndarray) -> SexHandStats:
    """The bivariate normal of one sex's rows (what the constants above were fitted with)."""
    length = np.asarray(length_mm, np.float64)
    breadth = np.asarray(breadth_mm, np.float64)
    return SexHandStats(
        n=len(length),
        length_mean_mm=float(length.mean()),
        length_sd_mm=float(length.std(ddof=1)),
        breadth_mean_mm=float(breadth.mean()),
        breadth_sd_mm=float(breadth.std(ddof=1)),
        correlation=float(np.corrcoef(length, breadth)[0, 1]),
    )
