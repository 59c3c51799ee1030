"""Exact ray casting of round cones (capsules with two radii), spheres, oriented boxes and planes.

Every primitive is intersected only inside its projected bounding box, all of one kind in ONE vectorized
pass (the pixels of all boxes are concatenated), and merged by a z-buffer (nearest surface wins). The
result is the noise-free scene: depth in mm (z, not ray length), the winning material per pixel and the
surface normal, from which the sensor model and the colour shading work.

The round-cone intersection is Inigo Quilez's analytic one (iquilezles.org, "intersectors", MIT):
the body of the cone is solved in closed form and the two end spheres cover the caps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frames import CameraIntrinsics

NEAR_MM = 20.0


@dataclass(frozen=True)
class Rays:
    """Unit ray directions through every pixel centre of a camera (camera at the origin)."""

    intr: CameraIntrinsics
    dirs: np.ndarray  # (H*W, 3) float64 unit vectors

    @classmethod
    def for_camera(cls, intr: CameraIntrinsics) -> Rays:
        v, u = np.mgrid[0 : intr.height, 0 : intr.width]
        d = np.stack(
            [(u.ravel() - intr.cx) / intr.fx, (v.ravel() - intr.cy) / intr.fy, np.ones(u.size)], axis=1
        )
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return cls(intr, d)


@dataclass
class ZBuffer:
    """Mutable render target: z in mm (inf = nothing), material id (-1 = nothing), unit normal."""

    z: np.ndarray  # (H*W,) float64
    material: np.ndarray  # (H*W,) int16
    normal: np.ndarray  # (H*W, 3) float32

    @classmethod
    def empty(cls, n: int) -> ZBuffer:
        return cls(np.full(n, np.inf), np.full(n, -1, np.int16), np.zeros((n, 3), np.float32))

    def merge(self, pix: np.ndarray, z: np.ndarray, normal: np.ndarray, material: np.ndarray) -> None:
        """Z-test sparse hits (pixel index, z, normal, material) into the buffer; nearest wins."""
        if pix.size == 0:
            return
        np.minimum.at(self.z, pix, z)
        win = z <= self.z[pix]
        p = pix[win]
        self.material[p] = material[win]
        self.normal[p] = normal[win]


def _bbox_pixels(
    lo_xyz: np.ndarray, hi_xyz: np.ndarray, intr: CameraIntrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel indices inside the projected boxes of axis-aligned 3-D boxes [lo, hi] (one per primitive),
    concatenated, with the primitive each belongs to. The projection of a box in front of the camera is
    bounded by the projections of its corners (x/z is monotonic on each axis)."""
    lo_z = np.maximum(lo_xyz[:, 2], NEAR_MM)
    hi_z = np.maximum(hi_xyz[:, 2], NEAR_MM)
    keep = hi_xyz[:, 2] > NEAR_MM
    xs = np.stack([lo_xyz[:, 0] / lo_z, lo_xyz[:, 0] / hi_z, hi_xyz[:, 0] / lo_z, hi_xyz[:, 0] / hi_z], 1)
    ys = np.stack([lo_xyz[:, 1] / lo_z, lo_xyz[:, 1] / hi_z, hi_xyz[:, 1] / lo_z, hi_xyz[:, 1] / hi_z], 1)
    u0 = np.clip(np.floor(xs.min(1) * intr.fx + intr.cx), 0, intr.width).astype(np.int64)
    u1 = np.clip(np.ceil(xs.max(1) * intr.fx + intr.cx) + 1, 0, intr.width).astype(np.int64)
    v0 = np.clip(np.floor(ys.min(1) * intr.fy + intr.cy), 0, intr.height).astype(np.int64)
    v1 = np.clip(np.ceil(ys.max(1) * intr.fy + intr.cy) + 1, 0, intr.height).astype(np.int64)
    w = np.where(keep, np.maximum(u1 - u0, 0), 0)
    h = np.where(keep, np.maximum(v1 - v0, 0), 0)
    n = w * h
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    prim = np.repeat(np.arange(len(n)), n)
    start = np.cumsum(n) - n
    local = np.arange(total) - start[prim]
    wp = w[prim]
    u = u0[prim] + local % wp
    v = v0[prim] + local // wp
    return v * intr.width + u, prim


def cast_round_cones(
    rays: Rays,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    material: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hits of round cones (sphere a radius ra, sphere b radius rb, and their tangent cone) as
    (pixel index, z mm, unit normal, material). A plain capsule is ra == rb, a sphere a == b."""
    a = np.asarray(a, np.float64).reshape(-1, 3)
    b = np.asarray(b, np.float64).reshape(-1, 3)
    ra = np.asarray(ra, np.float64).reshape(-1)
    rb = np.asarray(rb, np.float64).reshape(-1)
    # a sphere fully inside the other one is a sphere: keep the cone formula's d2 > 0
    m0 = np.einsum("ij,ij->i", b - a, b - a)
    inside = (ra - rb) ** 2 >= m0 - 1e-9
    big_c = np.where((ra >= rb)[:, None], a, b)
    big_r = np.maximum(ra, rb)
    a = np.where(inside[:, None], big_c, a)
    b = np.where(inside[:, None], big_c + np.array([0.0, 0.0, 1e-3]), b)
    ra = np.where(inside, big_r, ra)
    rb = np.where(inside, big_r, rb)

    r = np.maximum(ra, rb)[:, None]
    lo = np.minimum(a, b) - r
    hi = np.maximum(a, b) + r
    pix, k = _bbox_pixels(lo, hi, rays.intr)
    if pix.size == 0:
        e = np.zeros(0)
        return pix, e, np.zeros((0, 3)), e.astype(np.int16)
    rd = rays.dirs[pix]
    pa, pb, r_a, r_b = a[k], b[k], ra[k], rb[k]
    ba = pb - pa
    oa = -pa
    ob = -pb
    rr = r_a - r_b
    m0 = np.einsum("ij,ij->i", ba, ba)
    m1 = np.einsum("ij,ij->i", ba, oa)
    m2 = np.einsum("ij,ij->i", ba, rd)
    m3 = np.einsum("ij,ij->i", rd, oa)
    m5 = np.einsum("ij,ij->i", oa, oa)
    m6 = np.einsum("ij,ij->i", ob, rd)
    m7 = np.einsum("ij,ij->i", ob, ob)
    d2 = m0 - rr * rr
    k2 = d2 - m2 * m2
    k1 = d2 * m3 - m1 * m2 + m2 * rr * r_a
    k0 = d2 * m5 - m1 * m1 + m1 * rr * r_a * 2.0 - m0 * r_a * r_a
    h = k1 * k1 - k0 * k2
    with np.errstate(invalid="ignore", divide="ignore"):
        t_body = (-np.sqrt(h) - k1) / k2
        y = m1 - r_a * rr + t_body * m2
        body = (h >= 0) & (y > 0) & (y < d2) & (k2 > 1e-12)
        h1 = m3 * m3 - m5 + r_a * r_a
        h2 = m6 * m6 - m7 + r_b * r_b
        t1 = np.where(h1 > 0, -m3 - np.sqrt(h1), np.inf)
        t2 = np.where(h2 > 0, -m6 - np.sqrt(h2), np.inf)
    t_cap = np.minimum(t1, t2)
    t = np.where(body, t_body, t_cap)
    hit = (h >= 0) & (body | (t_cap < np.inf)) & (t > 0)
    # normals: body d2*(oa + t rd) - ba*y, caps radial from the sphere centre
    p = rd * t[:, None]
    n_body = d2[:, None] * (p - pa) - ba * y[:, None]
    cap_b = t2 < t1
    n_cap = p - np.where(cap_b[:, None], pb, pa)
    n = np.where(body[:, None], n_body, n_cap)
    sel = hit
    n = n[sel]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    z = t[sel] * rd[sel, 2]
    return pix[sel], z, n, np.asarray(material, np.int16)[k[sel]]


def cast_boxes(
    rays: Rays,
    center: np.ndarray,
    rot: np.ndarray,
    half: np.ndarray,
    material: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hits of oriented boxes (centre (K,3), rotation (K,3,3) box->camera, half sizes (K,3)), slab method."""
    center = np.asarray(center, np.float64).reshape(-1, 3)
    rot = np.asarray(rot, np.float64).reshape(-1, 3, 3)
    half = np.asarray(half, np.float64).reshape(-1, 3)
    ext = np.einsum("kij,kj->ki", np.abs(rot), half)  # axis-aligned half extent of each box
    pix, k = _bbox_pixels(center - ext, center + ext, rays.intr)
    if pix.size == 0:
        e = np.zeros(0)
        return pix, e, np.zeros((0, 3)), e.astype(np.int16)
    rd = rays.dirs[pix]
    rk = rot[k]
    o = -np.einsum("kji,kj->ki", rk, center[k])  # ray origin in box frame: R^T (0 - c)
    d = np.einsum("kji,kj->ki", rk, rd)
    hk = half[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1 = (-hk - o) * inv
        t2 = (hk - o) * inv
    tmin_ax = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2).min(1)
    axis = tmin_ax.argmax(1)
    tmin = tmin_ax[np.arange(len(axis)), axis]
    hit = (tmax >= tmin) & (tmin > 0)
    nl = np.zeros_like(d)
    nl[np.arange(len(axis)), axis] = -np.sign(d[np.arange(len(axis)), axis])
    n = np.einsum("kij,kj->ki", rk, nl)
    z = tmin * rd[:, 2]
    return pix[hit], z[hit], n[hit], np.asarray(material, np.int16)[k[hit]]


def cast_plane(rays: Rays, point: np.ndarray, normal: np.ndarray, material: int, zbuf: ZBuffer) -> None:
    """An infinite plane over the whole image (a wall), z-tested into the buffer."""
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    denom = rays.dirs @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = float(np.dot(point, n)) / denom
    z = t * rays.dirs[:, 2]
    ok = (t > 0) & np.isfinite(t) & (z < zbuf.z)
    zbuf.z[ok] = z[ok]
    zbuf.material[ok] = material
    zbuf.normal[ok] = (n if np.dot(n, point) < 0 else -n).astype(np.float32)
