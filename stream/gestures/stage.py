"""The gesture stage: the smoothed skeleton -> the enrolled gesture it shows (or none), every frame.

Reads `joints_mm` (after smoothing), writes `gesture` and `gesture_distance` into the frame's fields and
its JSON-lines record, and draws the name beside the wrist. The gallery defaults to the one shipped beside
the engine (`NAME_gallery.npz`: every built-in gesture), so `--models pose,gesture` names gestures out of the
box; `--gestures G.npz` (handstream run) swaps in a user's own. The rejection distance comes from the
engine's manifest, where the recipe chose it on classes the embedding never saw.
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..stage_registry import register_stage
from ..stages import FrameState, Stage
from .gallery import Gallery
from .recognizer import GestureRecognizer


def default_gallery_path(engine) -> Path | None:
    """The gallery shipped beside an engine file (`gesture.onnx` -> `gesture_gallery.npz`), if any."""
    path = getattr(engine, "path", None)
    if path is None:
        return None
    p = Path(path).with_name(f"{Path(path).stem}_gallery.npz")
    return p if p.is_file() else None


def stage_gallery(
    engine, gallery: str | Path | Gallery | None, cls: type[Gallery], what: str, option: str
) -> tuple[str | Path | Gallery, Gallery]:
    """(where it came from, the gallery) a stage names from: the one given, a file loaded as `cls`, or the
    one shipped beside the engine. Static and dynamic stages differ only in the class, the engine's name in
    the message (`what`) and the run option (`option`) that swaps in a user's own."""
    if gallery is None:
        gallery = default_gallery_path(engine)
        if gallery is None:
            raise InputError(f"the {what} engine has no gallery beside it; pass one ({option} G.npz)")
    return gallery, gallery if isinstance(gallery, cls) else cls.load(gallery)


def stage_reject_distance(engine, reject_distance: float | None, what: str) -> float:
    """The rejection distance given, else the one the recipe wrote into the engine's manifest (chosen on
    classes the embedding never saw); a stage cannot reject without one."""
    if reject_distance is None:
        reject_distance = (getattr(engine.manifest, "metrics", {}) or {}).get("reject_distance")
    if reject_distance is None:
        raise InputError(f"the {what} engine's manifest has no reject_distance; pass one")
    return float(reject_distance)


@register_stage("gesture", tasks=("gesture_embedding",))
class GestureStage(Stage):
    """Names the gesture of the smoothed skeleton from a gallery of enrolled ones (1-NN with rejection,
    voted over the last frames)."""

    reads = ("joints_mm",)
    writes = ("gesture", "gesture_distance")
    engine = "gesture"
    needs_engine = True

    def __init__(
        self,
        engine,
        name: str = "gesture",
        gallery: str | Path | Gallery | None = None,
        window: int = 5,
        reject_distance: float | None = None,
    ) -> None:
        super().__init__(engine, name)
        gallery, g = stage_gallery(engine, gallery, Gallery, "gesture", "--gestures")
        if not g.labels:
            raise InputError(f"the gesture gallery {gallery} is empty")
        reject_distance = stage_reject_distance(engine, reject_distance, "gesture")
        if int(window) < 1:
            raise InputError(f"the gesture vote window must be >= 1, got {window}")
        self.recognizer = GestureRecognizer(engine, g, float(reject_distance), window=int(window))

    def reset(self) -> None:
        self.recognizer.reset()

    def fork(self) -> Stage:
        """Another hand's copy: its own recognizer (votes), sharing the engine and the gallery's table."""
        twin = copy.copy(self)
        twin.recognizer = copy.copy(self.recognizer)
        twin.reset()
        return twin

    def run(self, st: FrameState) -> None:
        name, dist = self.recognizer(st.joints_mm)
        st.fields["gesture"] = name
        st.fields["gesture_distance"] = dist

    def record_fields(self, st: FrameState) -> dict:
        d = st.fields.get("gesture_distance")
        return {"gesture": st.fields.get("gesture"), "gesture_distance": None if d is None else round(d, 4)}

    def draw(self, image: np.ndarray, st: FrameState) -> None:
        name = st.fields.get("gesture")
        if not name or st.joints_uvd is None:
            return
        u, v = st.joints_uvd[0, :2]
        if not (np.isfinite(u) and np.isfinite(v)):
            return
        org = (int(np.clip(u, 0, image.shape[1] - 1)), int(np.clip(v + 18, 12, image.shape[0] - 4)))
        cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (80, 255, 255), 1, cv2.LINE_AA)
