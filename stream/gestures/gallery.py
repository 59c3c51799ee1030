"""Enrolled gestures and the nearest-class decision, shared by run time and K-shot evaluation.

A gallery file (`.npz`) stores, per enrolled example, the gesture's name and its *canonical joints*
(stream.gestures.canonical), not embeddings: a gallery made today still works after the embedding engine is
retrained, because it is re-embedded when loaded (a few hundred examples take milliseconds).

A query gets the class of its nearest enrolled example (1-NN, Euclidean distance between L2-normalised
embeddings); if that distance exceeds the rejection distance the answer is UNKNOWN, so a gesture nobody
enrolled is not forced onto the closest one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

UNKNOWN = ""  # the label of a rejected query
GALLERY_FORMAT = 1


def nearest(
    gallery: np.ndarray, gallery_sq: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(index (Q,), distance (Q,)) of each query's nearest gallery row, by one matrix product; `gallery_sq`
    holds |g|^2 per row, so a caller that asks every frame (the recogniser) computes it once."""
    d2 = gallery_sq[None, :] - 2.0 * (queries @ gallery.T) + (queries**2).sum(1)[:, None]
    idx = np.argmin(d2, axis=1)
    return idx, np.sqrt(np.maximum(d2[np.arange(len(queries)), idx], 0.0))


def nearest_class(
    gallery_emb: np.ndarray,
    gallery_labels: np.ndarray,
    query_emb: np.ndarray,
    reject_distance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels (Q,), distances (Q,)) of each query's nearest gallery example; labels are UNKNOWN where the
    distance exceeds `reject_distance` (None: never reject)."""
    g = np.asarray(gallery_emb, np.float64)
    q = np.asarray(query_emb, np.float64)
    if g.ndim != 2 or q.ndim != 2 or g.shape[1] != q.shape[1]:
        raise ValueError(f"gallery {g.shape} and queries {q.shape} must be (N, d) with the same d")
    if len(g) == 0:
        raise ValueError("the gallery is empty")
    idx, dist = nearest(g, (g**2).sum(1), q)
    labels = np.asarray(gallery_labels, dtype=object)[idx]
    if reject_distance is not None:
        labels = np.where(dist > reject_distance, UNKNOWN, labels)
    return labels.astype(str), dist


@dataclass
class Gallery:
    """Named gestures, each a few examples of canonical joints (N, 21, 3) in palm-length units."""

    labels: list[str] = field(default_factory=list)
    joints: np.ndarray = field(default_factory=lambda: np.zeros((0, 21, 3), np.float32))

    @property
    def names(self) -> list[str]:
        """Enrolled gesture names, in the order they were first enrolled."""
        return list(dict.fromkeys(self.labels))

    def counts(self) -> dict[str, int]:
        return {n: self.labels.count(n) for n in self.names}

    def add(self, name: str, canonical: np.ndarray) -> None:
        """Enroll examples of `name` (replacing any it had): (K, 21, 3) canonical joints."""
        name = str(name).strip()
        if not name or len(name) > 64 or any(c in name for c in "\n\r\t"):
            raise InputError(f"a gesture name must be 1-64 characters on one line, got {name!r}")
        c = np.asarray(canonical, np.float32)
        if c.ndim != 3 or c.shape[1:] != (21, 3) or len(c) == 0:
            raise InputError(f"enrolling {name!r} needs (K, 21, 3) joints with K >= 1, got {c.shape}")
        if not np.isfinite(c).all():
            raise InputError(f"enrolling {name!r}: the joints hold NaN or inf")
        self.remove(name, missing_ok=True)
        self.labels += [name] * len(c)
        self.joints = np.concatenate([self.joints, c])

    def remove(self, name: str, missing_ok: bool = False) -> None:
        keep = [i for i, n in enumerate(self.labels) if n != name]
        if len(keep) == len(self.labels) and not missing_ok:
            raise InputError(
                f"no gesture named {name!r} in the gallery (enrolled: {', '.join(self.names) or 'none'})"
            )
        self.labels = [self.labels[i] for i in keep]
        self.joints = self.joints[keep]

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file in the same folder, then rename): a failed write keeps the old one."""
        return write_gallery_file(
            path, format=GALLERY_FORMAT, labels=np.array(self.labels, dtype=str), joints=self.joints
        )

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> Gallery:
        path = Path(path)
        if missing_ok and not path.exists():
            return cls()
        _, labels, joints = read_gallery_file(path, "handstream gesture enroll")
        if joints.shape != (len(labels), 21, 3):
            raise InputError(f"{path}: joints {joints.shape} do not match {len(labels)} labels")
        return cls(labels, joints)


def write_gallery_file(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write a gallery's arrays to `path` (.npz) atomically, a temporary file in the same folder then a rename,
    so a failed write keeps the old gallery; static and dynamic galleries differ only in the arrays."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"a gallery is an .npz file, got {path.name}")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a gallery is an ordinary file
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write the gallery {path}: {exc.strerror or exc}") from None
    return path


def read_gallery_file(path: Path, make_with: str) -> tuple[str, list[str], np.ndarray]:
    """(kind, labels, joints) of a gallery file, kind "static" where the file carries no mark (static
    galleries are unmarked); the caller checks the joints' shape. `make_with` is the command that makes
    one, named when the file is missing."""
    if not path.exists():
        raise InputError(f"gallery {path} not found (make one with `{make_with}`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            kind = str(z["kind"]) if "kind" in z.files else "static"
            labels = [str(x) for x in z["labels"]]
            joints = np.asarray(z["joints"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a gesture gallery ({exc})") from None
    return kind, labels, joints
