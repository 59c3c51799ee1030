"""The chosen hands at full resolution: mask, centre of mass, palm, and whether the mask is the hand at all.

Classic candidates are refined inside their ROI only: the upsampled low-resolution mask, dilated by one
low-res pixel, intersected with the hand's depth range (`refine_candidate`).

Learned peaks (`learned_hand`): the detector's mask logits come at 1/16 of the frame's area (40x30 for 4:3
frames); the mask is the predicted mask, upsampled bilinearly inside the cube-sized ROI around the peak only,
AND the pixels within +- known_cube_mm / 2 of the peak's depth, then grown by up to `mask_grow_mm` into the
depth-continuous surface around it (`grow_mask`: the coarse map misses thin fingers). A held bottle, cup or
box in the same depth band, which the coarse mask also covers, can then be left out
(`pieces.drop_object_pieces`, off by default).

Forearms (`cut_arm`): at close range the forearm reaches towards the camera inside the peak's depth band
and the detector's mask covers it; a mask with a broad band far past the peak in one direction, nearer the
camera, is cut across that direction about a wrist from the peak, so the centre stays on the hand.

Both: the centre of mass is the mean 3-D point of the mask, pushed `com_depth_offset_mm` back along its ray
(the camera sees the front surface; the hand's centre lies about half its thickness behind); the pose
model's training crops are centred the same way. `palm_uvd` (largest inscribed disc) is a
finger-independent anchor reported beside it.

Occluders (`look_behind`): an occluder in front of the hand (box, cup, ball) lies under the same coarse
heatmap peak and predicted mask as the hand. When the hand is mostly hidden, even the predicted hand depth
can be the occluder's: a chosen mask as convex as a ball or a box (`occluder_solidity`) makes the segmenter
look for the hand again behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...compiled import announce_compile, not_compiled
from ...frames import CameraIntrinsics
from ...geometry import uvd_to_xyz, xyz_to_uvd
from .config import HandDetection, SegmenterConfig
from .measure import com_from_moments, mask_bbox, palm_centre, quantile, robust_range
from .pieces import drop_object_pieces
from .scoring import Candidate

if TYPE_CHECKING:
    from ..detect import DetectorOutput

__all__ = [
    "compile_arm_kernels",
    "cut_arm",
    "far_side_numpy",
    "grow_mask",
    "learned_hand",
    "look_behind",
    "refine_candidate",
    "solidity",
    "split_at_peaks",
]

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def refine_candidate(
    cfg: SegmenterConfig, c: Candidate, depth: np.ndarray, intr: CameraIntrinsics, s: int, o: int
) -> HandDetection:
    """Full-resolution mask inside the candidate's ROI, centre of mass from its 3-D points."""
    H, W = depth.shape
    y0l, y1l = int(c.ys.min()) - 1, int(c.ys.max()) + 2
    x0l, x1l = int(c.xs.min()) - 1, int(c.xs.max()) + 2
    low = np.zeros((y1l - y0l, x1l - x0l), dtype=np.uint8)
    low[c.ys - y0l, c.xs - x0l] = 1
    low = cv2.dilate(low, np.ones((3, 3), np.uint8))
    up = cv2.resize(low, (low.shape[1] * s, low.shape[0] * s), interpolation=cv2.INTER_NEAREST)
    # full-res coordinates of the upsampled block: low pixel i covers full pixels i*s+o-s//2 ...
    fy0, fx0 = y0l * s + o - s // 2, x0l * s + o - s // 2
    fy1, fx1 = fy0 + up.shape[0], fx0 + up.shape[1]
    cy0, cx0, cy1, cx1 = max(fy0, 0), max(fx0, 0), min(fy1, H), min(fx1, W)
    up = up[cy0 - fy0 : cy1 - fy0, cx0 - fx0 : cx1 - fx0]
    roi = depth[cy0:cy1, cx0:cx1]
    zlo, zhi = robust_range(c.zs, 0.01)
    zlo -= cfg.mask_depth_margin_mm
    zhi += cfg.mask_depth_margin_mm
    with np.errstate(invalid="ignore"):
        m = (up > 0) & (roi >= zlo) & (roi <= zhi)
    mask = np.zeros((H, W), dtype=bool)
    mask[cy0:cy1, cx0:cx1] = m
    n_px = cv2.countNonZero(m.view(np.uint8))
    if n_px == 0:  # cannot happen with valid low-res pixels, but stay total
        com_xyz = c.com_xyz.copy()
    else:
        # sums of d, u*d, v*d over the mask from image moments of the masked depth (no index arrays)
        mom = cv2.moments(np.where(m, roi, 0).astype(np.float32))
        com_xyz = com_from_moments(mom, n_px, cx0, cy0, intr, 0.0)
        if com_xyz is None:
            com_xyz = c.com_xyz.copy()
    # push the surface centroid back along its viewing ray to the inside of the hand
    com_xyz *= (com_xyz[2] + cfg.com_depth_offset_mm) / com_xyz[2]
    com_uvd = xyz_to_uvd(com_xyz, intr)
    palm_uvd = palm_centre(m, roi, cx0, cy0, cfg.com_depth_offset_mm)
    return HandDetection(
        mask=mask,
        com_uvd=com_uvd,
        com_xyz_mm=com_xyz,
        bbox_xywh=mask_bbox(mask, (cx0, cy0, cx1, cy1)),
        confidence=float(np.clip(c.score, 0.0, 1.0)),
        length_mm=c.length_mm,
        forearm_cut=c.cut,
        palm_uvd=palm_uvd,
        palm_xyz_mm=None if palm_uvd is None else uvd_to_xyz(palm_uvd, intr),
    )


def learned_hand(
    cfg: SegmenterConfig,
    depth: np.ndarray,
    intr: CameraIntrinsics,
    out: DetectorOutput,
    score: float,
    c_xyz: np.ndarray,
    taken: list[HandDetection],
    others_uv: list[tuple[float, float]] | None = None,
    grow_mm: float | None = None,
) -> HandDetection | None:
    """Full-resolution mask inside the cube-sized ROI around a peak, and its centre of mass.

    `others_uv`: frame pixels of the frame's other hand peaks. The cube around one hand often holds the
    other hand of the pair, and the detector's mask covers it too: a piece of the mask that holds another
    peak and not this one is that hand's, and is left out (`split_at_peaks`). `grow_mm`: how far the mask
    grows (default `mask_grow_mm`)."""
    H, W = depth.shape
    half = cfg.known_cube_mm / 2.0
    z = float(c_xyz[2])
    x0 = max(int(np.floor(intr.fx * (c_xyz[0] - half) / z + intr.cx)), 0)
    x1 = min(int(np.ceil(intr.fx * (c_xyz[0] + half) / z + intr.cx)) + 1, W)
    y0 = max(int(np.floor(intr.fy * (c_xyz[1] - half) / z + intr.cy)), 0)
    y1 = min(int(np.ceil(intr.fy * (c_xyz[1] + half) / z + intr.cy)) + 1, H)
    if x1 <= x0 or y1 <= y0:
        return None
    roi = depth[y0:y1, x0:x1]
    # OpenCV on the ROI only (0/255 uint8 masks): a few times cheaper than the numpy expression
    # (logits > t) & (roi > z - half) & (roi < z + half) & (roi <= max_valid), same pixels
    if roi.dtype == np.uint16:
        lo_i = int(np.floor(z - half)) + 1  # integer depths: d > a  <=>  d >= floor(a) + 1
        hi_i = min(int(np.ceil(z + half)) - 1, int(np.floor(cfg.max_valid_depth_mm)))
        m8 = cv2.inRange(roi, lo_i, hi_i)
    else:
        with np.errstate(invalid="ignore"):
            m8 = ((roi > z - half) & (roi < z + half) & (roi <= cfg.max_valid_depth_mm)).view(np.uint8)
    # everything below works inside the bounding box of the in-range pixels only (the mask lies there)
    rx, ry, rw, rh = cv2.boundingRect(m8)
    if rw < 2 or rh < 2:  # a line of pixels is no hand; and OpenCV's bindings read a 1x1 array as a scalar
        return None
    ox0, oy0, ox1, oy1 = x0, y0, x1, y1  # the cube-sized ROI (the palm's border rule below)
    x0, y0, x1, y1 = ox0 + rx, oy0 + ry, ox0 + rx + rw, oy0 + ry + rh
    roi = depth[y0:y1, x0:x1]
    m8 = m8[ry : ry + rh, rx : rx + rw]
    vals = roi if roi.dtype == np.uint16 else roi.astype(np.float32)
    # ROI pixel (i, j) -> mask cell coordinates, bilinear (cv2 maps destination to source)
    geo = out.geometry
    k = geo.scale / geo.stride
    warp = np.array([[k, 0.0, (x0 + 0.5) * k - 0.5], [0.0, k, (y0 + 0.5) * k - 0.5]], dtype=np.float64)
    logits = cv2.warpAffine(
        out.mask_logits,
        warp,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    band8 = m8
    m8 = cv2.bitwise_and(m8, cv2.compare(logits, cfg.mask_logit_threshold, cv2.CMP_GT))
    core8 = m8  # the palm anchor below stays on the detector's own mask (growth reaches the forearm)
    grow_mm = cfg.mask_grow_mm if grow_mm is None else float(grow_mm)
    if grow_mm > 0:
        m8 = grow_mask(
            m8,
            band8,
            vals,
            logits,
            round(grow_mm * intr.fx / z),
            cfg.mask_grow_jump_mm,
            cfg.mask_grow_logit,
        )
    if cfg.arm_min_share < 1.0:
        anchor = (intr.fx * c_xyz[0] / z + intr.cx - x0, intr.fy * c_xyz[1] / z + intr.cy - y0, z)
        cut = cut_arm(m8, vals, anchor, x0, y0, intr, cfg)
        if cut is not m8:
            core8 = cv2.bitwise_and(core8, cut)
            m8 = cut
    for other in taken:  # pixels already given to a better hand
        m8[other.mask[y0:y1, x0:x1]] = 0
        if core8 is not m8:
            core8[other.mask[y0:y1, x0:x1]] = 0
    if others_uv:
        own_uv = (intr.fx * c_xyz[0] / z + intr.cx - x0, intr.fy * c_xyz[1] / z + intr.cy - y0)
        rel = [(u - x0, v - y0) for u, v in others_uv]
        m8 = split_at_peaks(m8, vals, own_uv, rel, cfg.depth_jump_mm)
        if core8 is not m8:
            core8 = cv2.bitwise_and(core8, m8)
    if cfg.object_piece_logit > -1e9:
        cut = drop_object_pieces(
            m8,
            vals,
            logits,
            cfg.object_piece_jump_mm,
            cfg.object_piece_logit,
            cfg.object_piece_min_px,
            max(1, intr.width // cfg.object_piece_work_width_px),
        )
        if cut is not m8:
            core8 = cv2.bitwise_and(core8, cut)
            m8 = cut
    n_px = cv2.countNonZero(m8)
    if n_px == 0:
        return None
    bx, by, bw, bh = cv2.boundingRect(m8)
    bx0, by0 = x0 + bx, y0 + by  # the mask's bounding box, full-frame pixels
    # sums of d, u*d, v*d over the mask (moments of the masked depth in its bounding box; 16U or 32F)
    sub8 = m8[by : by + bh, bx : bx + bw]
    sub = vals[by : by + bh, bx : bx + bw]
    # np.where, not cv2.bitwise_and: OpenCV 5.1 asserts on one-pixel-wide strided views (tiny frames)
    mom = cv2.moments(np.where(sub8 > 0, sub, sub.dtype.type(0)))
    com_xyz = com_from_moments(mom, n_px, bx0, by0, intr, cfg.com_depth_offset_mm)
    if com_xyz is None:
        return None
    mask = np.zeros((H, W), dtype=bool)  # calloc'd: only the ROI's pages are touched
    np.greater(sub8, 0, out=mask[by0 : by0 + bh, bx0 : bx0 + bw])
    # the palm's distance transform on the (core) mask's bounding box + 1 pixel of background
    # (clipped to the cube-sized ROI, whose border counts as far): the same distances as on the ROI
    core, (cx0, cy0, cw, ch) = mask, (bx0, by0, bw, bh)
    if core8 is not m8:
        cx, cy, cw, ch = cv2.boundingRect(core8)
        cx0, cy0 = x0 + cx, y0 + cy
        core = np.zeros((H, W), dtype=bool)
        np.greater(core8, 0, out=core[y0:y1, x0:x1])
    px0, py0 = max(cx0 - 1, ox0), max(cy0 - 1, oy0)
    px1, py1 = min(cx0 + cw + 1, ox1), min(cy0 + ch + 1, oy1)
    palm_uvd = palm_centre(core[py0:py1, px0:px1], depth[py0:py1, px0:px1], px0, py0, cfg.com_depth_offset_mm)
    return HandDetection(
        mask=mask,
        com_uvd=xyz_to_uvd(com_xyz, intr),
        com_xyz_mm=com_xyz,
        bbox_xywh=(bx0, by0, bw, bh),
        confidence=float(np.clip(score, 0.0, 1.0)),
        palm_uvd=palm_uvd,
        palm_xyz_mm=None if palm_uvd is None else uvd_to_xyz(palm_uvd, intr),
    )


def _around(a: np.ndarray, uv: tuple[float, float], reach_px: int) -> np.ndarray:
    """The pixels of `a` within `reach_px` of (u, v) (a square; empty where it lies off `a`)."""
    u, v = int(round(uv[0])), int(round(uv[1]))
    return a[max(v - reach_px, 0) : max(v + reach_px + 1, 0), max(u - reach_px, 0) : max(u + reach_px + 1, 0)]


def split_at_peaks(
    m8: np.ndarray,
    depth: np.ndarray,
    own_uv: tuple[float, float],
    others_uv: list[tuple[float, float]],
    jump_mm: float,
    reach_px: int = 3,
) -> np.ndarray:
    """`m8` (0/255) without its pieces that hold another peak and not this one (`own_uv`): two hands side
    by side, or one across the other, are one mask when both lie in one cube, and the centre of mass of
    both falls between them. Pieces are 4-connected after cutting the mask where neighbouring depths jump
    by more than `jump_mm` (a hand lying over the other hand or its forearm). A piece holds a peak when
    one of its pixels lies within `reach_px` of it (a coarse peak can sit a few pixels off the hand).
    Returns `m8` itself when nothing is removed."""

    # a piece can only hold another peak where the mask itself lies within reach of it: when no other peak
    # does (the other hand lies outside this cube, the usual case), nothing can be dropped and the cuts and
    # pieces below are not needed (the same result, without their cost)
    if not any(_around(m8, uv, reach_px).any() for uv in others_uv):
        return m8
    d = depth.astype(np.float32)
    edge = np.zeros(m8.shape, dtype=bool)
    dv = np.abs(d[1:] - d[:-1]) > jump_mm
    dh = np.abs(d[:, 1:] - d[:, :-1]) > jump_mm
    edge[1:] |= dv
    edge[:-1] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    inner = np.where(edge, np.uint8(0), m8)
    n, labels = cv2.connectedComponents(inner, connectivity=4)
    if n <= 2:
        return m8  # one piece (or none): nothing to split

    def pieces_at(uv: tuple[float, float]) -> set[int]:
        return set(np.unique(_around(labels, uv, reach_px)).tolist()) - {0}

    own = pieces_at(own_uv)
    drop = set()
    for uv in others_uv:
        drop |= pieces_at(uv) - own
    if not drop:
        return m8
    gone = np.isin(labels, list(drop)).view(np.uint8)
    # the cut pixels along a dropped piece's border go with it
    gone = cv2.bitwise_and(cv2.dilate(gone, _CROSS), edge.view(np.uint8)) | gone
    out = m8.copy()
    out[gone > 0] = 0
    return out


def grow_mask(
    m8: np.ndarray,
    band8: np.ndarray,
    depth: np.ndarray,
    logits: np.ndarray,
    steps: int,
    jump_mm: float,
    min_logit: float,
) -> np.ndarray:
    """Grow a 0/255 (or 0/1) mask into the depth-continuous surface around it, by at most `steps` pixels
    (geodesic, 4-connected), inside `band8` and where the logit is above `min_logit`.

    A pixel whose nearest 4-neighbour is more than `jump_mm` closer is the far side of a silhouette edge
    (the background behind a finger, an object behind the palm): growth never enters it, so a finger the
    coarse mask missed (continuous in depth with the palm) joins and what lies behind the hand does not.
    Cost: uint8 OpenCV ops per ring inside the mask's bounding box + `steps`; beyond 8 rings (a near hand
    at 640x480) it runs on every other pixel with the jump scaled to match, and the grown pixels are
    brought back to full resolution inside `band8`: ~0.1 ms at 640x480."""
    bx, by, bw, bh = cv2.boundingRect(m8)
    if steps <= 0 or bw == 0:
        return m8
    f = 1 if steps <= 8 else 2
    H, W = m8.shape
    x0, y0 = max(bx - steps, 0), max(by - steps, 0)
    x1, y1 = min(bx + bw + steps, W), min(by + bh + steps, H)
    ok = band8[y0:y1:f, x0:x1:f] > 0
    if min_logit > -1e8:
        ok &= logits[y0:y1:f, x0:x1:f] > min_logit
    dd = np.where(ok, depth[y0:y1:f, x0:x1:f].astype(np.float32), np.float32(1e9))
    keep8 = (dd - cv2.erode(dd, _CROSS) <= jump_mm * f).view(np.uint8) * np.uint8(255)
    g = m8[y0:y1:f, x0:x1:f].copy()  # never write into the caller's mask
    ring = np.empty_like(g)
    for _ in range((int(steps) + f - 1) // f):
        cv2.dilate(g, _CROSS, dst=ring)
        cv2.bitwise_and(ring, keep8, dst=ring)
        cv2.bitwise_or(g, ring, dst=g)
    out = m8.copy()
    if f == 1:
        out[y0:y1, x0:x1] = g
    else:
        up = cv2.resize(g, (g.shape[1] * f, g.shape[0] * f), interpolation=cv2.INTER_NEAREST)
        sub = out[y0:y1, x0:x1]
        cv2.bitwise_or(sub, cv2.bitwise_and(up[: y1 - y0, : x1 - x0], band8[y0:y1, x0:x1]), dst=sub)
    return out


def cut_arm(
    m8: np.ndarray,
    depth: np.ndarray,
    anchor_uvd: tuple[float, float, float],
    x0: int,
    y0: int,
    intr: CameraIntrinsics,
    cfg: SegmenterConfig,
    compiled: bool = True,
) -> np.ndarray:
    """`m8` (0/255, a window whose top-left frame pixel is (x0, y0)) without the forearm it runs onto, or
    `m8` itself when it does not (see `SegmenterConfig.arm_reach_mm`).

    `anchor_uvd`: the detector's peak (its palm centre) in window pixels and its surface depth in mm. At
    close range the forearm reaches towards the camera inside the peak's depth band and the detector's
    mask covers it; its pixels pull the centre of mass off the hand. A hand's own pixels lie within about
    a hand length of its palm centre and, beyond `arm_reach_mm`, only as fingertips that point several
    ways; an arm is a broad band beyond that in one direction. The mask is cut by the plane across that
    direction at `arm_cut_mm` from the peak (about the wrist). Judged on ~40 pixels across the window
    (`far_side`, compiled unless `compiled` is False); the cut runs at full resolution only when it acts."""
    h, w = m8.shape
    au, av, az = anchor_uvd
    ax_mm, ay_mm = (au + x0 - intr.cx) * az / intr.fx, (av + y0 - intr.cy) * az / intr.fy
    args = (
        max(max(h, w) // 40, 1),
        float(x0 - intr.cx),
        float(y0 - intr.cy),
        float(intr.fx),
        float(intr.fy),
        float(ax_mm),
        float(ay_mm),
        float(az),
        float(cfg.arm_reach_mm) ** 2,
        float(cfg.arm_long_mm) ** 2,
    )
    if compiled and _arm_kernels is not None:
        n, n_far, n_long, sx, sy, sz, sdz = _arm_kernels.far_side_kernel(m8, depth, *args)
    else:
        n, n_far, n_long, sx, sy, sz, sdz = far_side_numpy(m8, depth, *args)
    if n_far < max(cfg.arm_min_share * n, 3) or n_long < cfg.arm_long_share * n:
        return m8
    # the far points' mean unit vector: ~1 for a band in one direction, small for fingertips that spread
    unit = np.array([sx, sy, sz]) / n_far
    norm = float(np.sqrt(unit @ unit))
    if norm < cfg.arm_coherence or -sdz / n_far < cfg.arm_min_rise_mm:
        return m8
    axis = unit / norm
    # the distance of every mask pixel of the mask's bounding box along the axis, at full resolution
    bx, by, bw, bh = cv2.boundingRect(m8)
    sub = m8[by : by + bh, bx : bx + bw]
    dd = depth[by : by + bh, bx : bx + bw].astype(np.float32)
    uu = (np.arange(bx, bx + bw, dtype=np.float32) + np.float32(x0 - intr.cx)) * np.float32(axis[0] / intr.fx)
    vv = (np.arange(by, by + bh, dtype=np.float32) + np.float32(y0 - intr.cy)) * np.float32(axis[1] / intr.fy)
    t = dd * (uu[None, :] + vv[:, None] + np.float32(axis[2]))
    limit = cfg.arm_cut_mm + ax_mm * axis[0] + ay_mm * axis[1] + az * axis[2]
    kept = np.where(t <= limit, sub, np.uint8(0))
    if cv2.countNonZero(kept) < (1.0 - cfg.arm_max_cut_share) * cv2.countNonZero(sub):
        return m8  # most of the mask beyond the wrist: the peak was no palm with an arm behind it
    out = m8.copy()
    out[by : by + bh, bx : bx + bw] = kept
    return out


def far_side_numpy(
    m8: np.ndarray,
    depth: np.ndarray,
    f: int,
    u0: float,
    v0: float,
    fx: float,
    fy: float,
    ax: float,
    ay: float,
    az: float,
    reach2: float,
    long2: float,
) -> tuple[int, int, int, float, float, float, float]:
    """Over the mask pixels (i, j) with i and j multiples of `f`, their 3-D points relative to the anchor
    (ax, ay, az) mm (pixel (i, j) lies at frame pixel (j + u0 + cx, i + v0 + cy)): (samples, samples farther
    than sqrt(reach2), samples farther than sqrt(long2), sums of the former's unit vectors x, y, z, sum of
    their depth offsets). The reference of `arm_kernels.far_side_kernel`."""
    valid = m8[::f, ::f] > 0
    d = depth[::f, ::f].astype(np.float64)
    px = d * ((np.arange(0, m8.shape[1], f) + u0) / fx) - ax
    py = d * ((np.arange(0, m8.shape[0], f) + v0) / fy)[:, None] - ay
    pz = d - az
    r2 = px * px + py * py + pz * pz
    far = valid & (r2 > reach2)
    r = np.sqrt(r2[far])
    fz = pz[far]
    return (
        int(np.count_nonzero(valid)),
        int(np.count_nonzero(far)),
        int(np.count_nonzero(valid & (r2 > long2))),
        float(np.sum(px[far] / r)),
        float(np.sum(py[far] / r)),
        float(np.sum(fz / r)),
        float(np.sum(fz)),
    )


def _load_arm_kernels():
    """The compiled kernel of `far_side`, or None where numba does not import (the numpy reference runs)."""
    try:
        from . import arm_kernels
    except ImportError:
        return None
    return arm_kernels


_arm_kernels = _load_arm_kernels()


def compile_arm_kernels() -> bool:
    """Compile the forearm cut's kernel (or load it from numba's cache) for the arrays the learned path
    passes (uint16 views of the frame, float32 copies), so that a stream's first frame does not pay for
    it: the segmenter calls this when it is set up. False: numba is missing or cannot compile here, and
    the numpy reference runs (for every hand of this process)."""
    global _arm_kernels
    if _arm_kernels is None:
        return False
    announce_compile(_arm_kernels, "forearm-cut")
    m8 = np.full((8, 8), 255, np.uint8)
    args = (1, -4.0, -4.0, 100.0, 100.0, 0.0, 0.0, 400.0, 100.0, 200.0)
    try:
        for depth in (np.full((10, 10), 400, np.uint16), np.full((10, 10), 400.0, np.float32)):
            _arm_kernels.far_side_kernel(m8, depth[1:9, 1:9], *args)  # a view of the frame: any layout
            _arm_kernels.far_side_kernel(m8, np.ascontiguousarray(depth[1:9, 1:9]), *args)
    except Exception as exc:  # noqa: BLE001 - numba cannot compile here: every hand takes the numpy reference
        not_compiled("forearm-cut", exc)
        _arm_kernels = None
        return False
    return True


def look_behind(
    cfg: SegmenterConfig,
    depth: np.ndarray,
    intr: CameraIntrinsics,
    out: DetectorOutput,
    score: float,
    h: HandDetection,
    taken: list[HandDetection],
) -> HandDetection:
    """`h`, or the hand behind it when `h` looks like an occluder (see `occluder_solidity`). Tuned on
    generator seed 7 (wrong-object centres 79 -> 57 of 2000 frames), checked once on the pose test set
    (68 -> 44)."""
    if cfg.occluder_solidity >= 1.0:
        return h
    solid = solidity(h.mask, h.bbox_xywh)
    if solid < cfg.occluder_solidity:
        return h
    z0 = float(h.com_xyz_mm[2]) - cfg.com_depth_offset_mm
    r = max(int(round(cfg.behind_radius_mm * intr.fx / z0)), 1)
    u, v = int(round(h.com_uvd[0])), int(round(h.com_uvd[1]))
    win = depth[max(v - r, 0) : v + r + 1, max(u - r, 0) : u + r + 1]
    with np.errstate(invalid="ignore"):
        behind = win[(win > z0 + cfg.behind_range_mm[0]) & (win < z0 + cfg.behind_range_mm[1])]
    if len(behind) < 20:
        return h
    zb = quantile(behind.astype(np.float64), 0.5)
    alt = learned_hand(cfg, depth, intr, out, score, uvd_to_xyz(np.array([u, v, zb]), intr), taken)
    if alt is None:
        return h
    area_cm2 = (
        np.count_nonzero(alt.mask) * (alt.com_xyz_mm[2] / intr.fx) * (alt.com_xyz_mm[2] / intr.fy) / 100
    )
    if area_cm2 < cfg.behind_min_area_cm2 or solidity(alt.mask, alt.bbox_xywh) >= solid:
        return h
    return alt


def solidity(mask: np.ndarray, bbox_xywh: tuple[int, int, int, int]) -> float:
    """Area / convex-hull area of the mask's largest outer contour (1 for a disc or a box, ~0.5-0.85
    for a hand with its fingers), computed in the mask's bounding box."""
    x, y, w, h = bbox_xywh
    f = max(min(w, h) // 32, 1)  # ~32 pixels across are enough for the hull ratio (+-0.02), and cheap
    cs, _ = cv2.findContours(
        np.ascontiguousarray(mask[y : y + h : f, x : x + w : f]).view(np.uint8),
        cv2.RETR_EXTERNAL,
        cv2.CHAIN_APPROX_SIMPLE,
    )
    if not cs:
        return 1.0
    c = max(cs, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(c))
    return float(cv2.contourArea(c) / hull) if hull > 0 else 1.0
