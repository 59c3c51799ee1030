"""A dataset held as arrays of one length (one row per example), kept as one .npz with an array per field.

The crop sets of the small engines' recipes (centre, presence, handedness, size) are dataclasses of such
arrays; this base gives each the same length, save, load, concatenation and row selection, so that a new
field is one line of its dataclass and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ArraySet:
    """Base of a dataclass whose fields are arrays with the same first dimension. `compressed`: whether
    `save` compresses (the crop sets that are regenerated in minutes are saved uncompressed, faster)."""

    compressed = True

    def __len__(self) -> int:
        return len(getattr(self, next(iter(self.__dataclass_fields__))))

    def save(self, path: str | Path) -> None:
        arrays = {k: getattr(self, k) for k in self.__dataclass_fields__}
        (np.savez_compressed if self.compressed else np.savez)(path, **arrays)

    @classmethod
    def load(cls, path: str | Path):
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})

    @classmethod
    def concat(cls, sets: list):
        """Several sets as one, in order."""
        return cls(**{k: np.concatenate([getattr(s, k) for s in sets]) for k in cls.__dataclass_fields__})

    def take(self, idx: np.ndarray):
        """The rows `idx` (indices or a boolean mask) as a new set."""
        return type(self)(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})
