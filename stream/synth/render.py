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
    dirs: np.ndarray  # (H*W, 3) float32 unit vectors
    dx: np.ndarray  # (H*W,) float32 components of dirs, contiguous
    dy: np.ndarray
    dz: np.ndarray

    @classmethod
    def for_camera(cls, intr: CameraIntrinsics) -> Rays:
        v, u = np.mgrid[0 : intr.height, 0 : intr.width]
        d = np.stack(
            [(u.ravel() - intr.cx) / intr.fx, (v.ravel() - intr.cy) / intr.fy, np.ones(u.size)], axis=1
        )
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        d = d.astype(np.float32)
        return cls(intr, d, d[:, 0].copy(), d[:, 1].copy(), d[:, 2].copy())


@dataclass
class ZBuffer:
    """Mutable render target: z in mm (inf = nothing), material id (-1 = nothing), unit normal."""

    z: np.ndarray  # (H*W,) float32
    material: np.ndarray  # (H*W,) int16
    normal: np.ndarray  # (H*W, 3) float32

    @classmethod
    def empty(cls, n: int) -> ZBuffer:
        return cls(np.full(n, np.inf, np.float32), np.full(n, -1, np.int16), np.zeros((n, 3), np.float32))

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
    (pixel index, z mm, unit normal, material). A plain capsule is ra == rb, a sphere a == b.

    float32 per pixel (sub-0.01 mm at these distances), float64 per primitive."""
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

    intr = rays.intr
    r = np.maximum(ra, rb)
    pix, k = _bbox_pixels(np.minimum(a, b) - r[:, None], np.maximum(a, b) + r[:, None], intr)
    # 2-D prefilter: a round cone is a union of spheres along its axis, so its image lies within
    # (projected radius x an off-axis stretch) of the projected axis segment
    za = np.maximum(a[:, 2], NEAR_MM)
    zb = np.maximum(b[:, 2], NEAR_MM)
    a2 = np.stack([a[:, 0] / za * intr.fx + intr.cx, a[:, 1] / za * intr.fy + intr.cy], 1)
    b2 = np.stack([b[:, 0] / zb * intr.fx + intr.cx, b[:, 1] / zb * intr.fy + intr.cy], 1)
    zmin = np.maximum(np.minimum(za, zb) - r, NEAR_MM)
    stretch = 1.0 + np.maximum((a[:, 0] ** 2 + a[:, 1] ** 2) / za**2, (b[:, 0] ** 2 + b[:, 1] ** 2) / zb**2)
    rpx = (max(intr.fx, intr.fy) * r / zmin * stretch + 1.5).astype(np.float32)
    seg = (b2 - a2).astype(np.float32)
    seg_l2 = np.maximum((seg**2).sum(1), 1e-6).astype(np.float32)
    pu = (pix % intr.width).astype(np.float32) - a2[k, 0].astype(np.float32)
    pv = (pix // intr.width).astype(np.float32) - a2[k, 1].astype(np.float32)
    sx, sy = seg[k, 0], seg[k, 1]
    s = np.clip((pu * sx + pv * sy) / seg_l2[k], 0.0, 1.0)
    du, dv = pu - s * sx, pv - s * sy
    keep = du * du + dv * dv <= rpx[k] ** 2
    pix, k = pix[keep], k[keep]
    if pix.size == 0:
        e = np.zeros(0, np.float32)
        return pix, e, np.zeros((0, 3), np.float32), e.astype(np.int16)

    f32 = np.float32
    dx, dy, dz = rays.dx[pix], rays.dy[pix], rays.dz[pix]
    # per-primitive constants (ray origin at 0): oa = -a, ob = -b
    ba = (b - a).astype(f32)
    pa = a.astype(f32)
    pb = b.astype(f32)
    rr_p = (ra - rb).astype(f32)
    m0_p = (ba.astype(np.float64) ** 2).sum(1)
    m1_p = -(ba.astype(np.float64) * a).sum(1)
    m5_p = (a * a).sum(1)
    m7_p = (b * b).sum(1)
    d2_p = m0_p - (ra - rb) ** 2
    k0_p = d2_p * m5_p - m1_p * m1_p + m1_p * (ra - rb) * ra * 2.0 - m0_p * ra * ra
    bax, bay, baz = ba[k, 0], ba[k, 1], ba[k, 2]
    pax, pay, paz = pa[k, 0], pa[k, 1], pa[k, 2]
    rr, r_a, r_b = rr_p[k], ra.astype(f32)[k], rb.astype(f32)[k]
    m1, d2, k0 = m1_p.astype(f32)[k], d2_p.astype(f32)[k], k0_p.astype(f32)[k]
    m2 = bax * dx + bay * dy + baz * dz
    m3 = -(pax * dx + pay * dy + paz * dz)
    m6 = -(pb[k, 0] * dx + pb[k, 1] * dy + pb[k, 2] * dz)
    m5, m7 = m5_p.astype(f32)[k], m7_p.astype(f32)[k]
    k2 = d2 - m2 * m2
    k1 = d2 * m3 - m1 * m2 + m2 * rr * r_a
    h = k1 * k1 - k0 * k2
    with np.errstate(invalid="ignore", divide="ignore"):
        t_body = (-np.sqrt(h) - k1) / k2
        y = m1 - r_a * rr + t_body * m2
        body = (h >= 0) & (y > 0) & (y < d2) & (k2 > 1e-9)
        h1 = m3 * m3 - m5 + r_a * r_a
        h2 = m6 * m6 - m7 + r_b * r_b
        t1 = np.where(h1 > 0, -m3 - np.sqrt(h1), np.inf).astype(f32)
        t2 = np.where(h2 > 0, -m6 - np.sqrt(h2), np.inf).astype(f32)
    t_cap = np.minimum(t1, t2)
    t = np.where(body, t_body, t_cap)
    hit = (h >= 0) & (body | (t_cap < np.inf)) & (t > 0)
    k, t, body, y, d2 = k[hit], t[hit], body[hit], y[hit], d2[hit]
    pix = pix[hit]
    dx, dy, dz = dx[hit], dy[hit], dz[hit]
    cap_b = (t2 < t1)[hit]
    # normals: body d2*(p - a) - ba*y, caps radial from the sphere centre
    px, py, pz = dx * t, dy * t, dz * t
    cx = np.where(cap_b, pb[k, 0], pa[k, 0])
    cy = np.where(cap_b, pb[k, 1], pa[k, 1])
    cz = np.where(cap_b, pb[k, 2], pa[k, 2])
    nb = np.where(body, d2, f32(1.0))
    yb = np.where(body, y, f32(0.0))
    cx = np.where(body, pa[k, 0], cx)
    cy = np.where(body, pa[k, 1], cy)
    cz = np.where(body, pa[k, 2], cz)
    n = np.stack(
        [nb * (px - cx) - ba[k, 0] * yb, nb * (py - cy) - ba[k, 1] * yb, nb * (pz - cz) - ba[k, 2] * yb], 1
    )
    n /= np.maximum(np.sqrt((n * n).sum(1, keepdims=True)), f32(1e-12))
    return pix, pz, n, np.asarray(material, np.int16)[k]


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
    f32 = np.float32
    dx, dy, dz = rays.dx[pix], rays.dy[pix], rays.dz[pix]
    rt = np.transpose(rot, (0, 2, 1)).astype(f32)  # camera -> box
    o_p = -np.einsum("kij,kj->ki", np.transpose(rot, (0, 2, 1)), center).astype(f32)
    hk = half.astype(f32)
    tmin = np.full(pix.size, -np.inf, f32)
    tmax = np.full(pix.size, np.inf, f32)
    axis = np.zeros(pix.size, np.int8)
    sign = np.zeros(pix.size, f32)
    for ax in range(3):
        d = rt[k, ax, 0] * dx + rt[k, ax, 1] * dy + rt[k, ax, 2] * dz
        d = np.where(np.abs(d) < 1e-9, f32(1e-9), d)
        o = o_p[k, ax]
        hh = hk[k, ax]
        t1 = (-hh - o) / d
        t2 = (hh - o) / d
        lo = np.minimum(t1, t2)
        better = lo > tmin
        tmin = np.where(better, lo, tmin)
        axis = np.where(better, ax, axis)
        sign = np.where(better, -np.sign(d), sign)
        tmax = np.minimum(tmax, np.maximum(t1, t2))
    hit = (tmax >= tmin) & (tmin > 0)
    k, axis, sign, pix = k[hit], axis[hit], sign[hit], pix[hit]
    rk = rot.astype(f32)[k]  # box -> camera: the normal is the hit axis' column, signed
    n = rk[np.arange(k.size), :, axis] * sign[:, None]
    z = tmin[hit] * dz[hit]
    return pix, z, n, np.asarray(material, np.int16)[k]


def cast_plane(rays: Rays, point: np.ndarray, normal: np.ndarray, material: int, zbuf: ZBuffer) -> None:
    """An infinite plane over the whole image (a wall), z-tested into the buffer."""
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    c = float(np.dot(point, n))
    denom = rays.dx * np.float32(n[0]) + rays.dy * np.float32(n[1]) + rays.dz * np.float32(n[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.float32(c) * rays.dz / denom
    ok = (z > 0) & (z < zbuf.z)
    zbuf.z[ok] = z[ok]
    zbuf.material[ok] = material
    zbuf.normal[ok] = (n if c < 0 else -n).astype(np.float32)
