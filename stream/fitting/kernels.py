"""Compiled kernels of the fit: the observation's per-pixel parts, inverse kinematics and the whole
Gauss-Newton descent with the re-seeding of the worst finger and the rescue of a bad start, one call each.

The numpy code (ik.py, model.py, fit.py) stays the reference and the fallback: these kernels compute the
same observation (bit for bit), energy and steps with scalar loops, because at these sizes (5 chains, ~85
spheres, 256 points, 26 parameters) numpy's per-call cost, not arithmetic, was the whole cost (~400 calls a
fit). What differs from the reference only in rounding: J^T J and J^T r are accumulated row by row from
sparse rows (no dense Jacobian), the 26 x 26 system is solved by Cholesky instead of LU, and the global
frame of the inverse kinematics is Horn's quaternion solution instead of an SVD (both give the optimal
proper rotation).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .model import _DOF_INDEX, _DOF_REST, _DOF_SIGN, _ROLL_REST, LIMITS_RAD, N_PARAMS, RESEED_RAD

# numpy's float semantics (a division by zero gives inf or NaN as in the reference, no exception)
_JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

_DOF_I = np.ascontiguousarray(_DOF_INDEX.astype(np.int64))  # (4, 5) pose index of each chain's dofs
_DOF_S = np.ascontiguousarray(_DOF_SIGN.astype(np.float64))
_DOF_R = np.ascontiguousarray(_DOF_REST.astype(np.float64))
_CR = np.cos(_ROLL_REST)
_SR = np.sin(_ROLL_REST)
_LO = np.ascontiguousarray(LIMITS_RAD[:, 0])
_HI = np.ascontiguousarray(LIMITS_RAD[:, 1])
_SEEDS = np.ascontiguousarray(RESEED_RAD)  # (2 seeds, lift / flexions, 5 chains)
_PALM = np.array([0, 1, 5, 9, 13, 17])
_PALM_W = np.array([2.0, 0.5, 1.0, 1.0, 1.0, 1.0]) / 6.5

# FitConfig's scalars, in this order, as one float64 array (numba takes no dataclasses)
CONFIG_FIELDS = (
    "huber_mm",
    "outlier_mm",
    "forearm_frac",
    "w_data",
    "w_silhouette",
    "w_free_space",
    "w_prior",
    "damping",
    "free_space_margin_mm",
    "rescue_energy",
)


@numba.njit(**_JIT)
def _wrap(a: float) -> float:
    """An angle into [-pi, pi) (Python's float modulo, as numpy's)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@numba.njit(**_JIT)
def _jacobi_top(n: np.ndarray) -> np.ndarray:
    """The eigenvector of the largest eigenvalue of a symmetric 4 x 4 matrix (cyclic Jacobi rotations)."""
    a = n.copy()
    v = np.eye(4)
    for _ in range(50):
        off = 0.0
        for p in range(4):
            for q in range(p + 1, 4):
                off += a[p, q] * a[p, q]
        if off < 1e-30 * (1.0 + a[0, 0] ** 2 + a[1, 1] ** 2 + a[2, 2] ** 2 + a[3, 3] ** 2):
            break
        for p in range(4):
            for q in range(p + 1, 4):
                if a[p, q] == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * a[p, q])
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):  # A <- A J, then J^T A
                    akp, akq = a[k, p], a[k, q]
                    a[k, p] = c * akp - s * akq
                    a[k, q] = s * akp + c * akq
                for k in range(4):
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k] = c * apk - s * aqk
                    a[q, k] = s * apk + c * aqk
                for k in range(4):
                    vkp, vkq = v[k, p], v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    best = 0
    for i in range(1, 4):
        if a[i, i] > a[best, best]:
            best = i
    return v[:, best].copy()


@numba.njit(**_JIT)
def inverse_kinematics_kernel(
    rest_joints: np.ndarray, base_xyz: np.ndarray, joints: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ik.inverse_kinematics: (rot, trans, pose) of (21, 3) joints; the palm's rigid alignment by Horn's
    quaternion method (the optimal proper rotation, as the reference's SVD with its reflection fix)."""
    ms = np.zeros(3)
    md = np.zeros(3)
    for i in range(6):
        for a in range(3):
            ms[a] += _PALM_W[i] * rest_joints[_PALM[i], a]
            md[a] += _PALM_W[i] * joints[_PALM[i], a]
    h = np.zeros((3, 3))  # h[a, b] = sum w (src - ms)_a (dst - md)_b
    for i in range(6):
        for a in range(3):
            sa = _PALM_W[i] * (rest_joints[_PALM[i], a] - ms[a])
            for b in range(3):
                h[a, b] += sa * (joints[_PALM[i], b] - md[b])
    sxx, sxy, sxz = h[0, 0], h[0, 1], h[0, 2]
    syx, syy, syz = h[1, 0], h[1, 1], h[1, 2]
    szx, szy, szz = h[2, 0], h[2, 1], h[2, 2]
    n = np.array(
        [
            [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
            [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
            [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
            [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
        ]
    )
    q = _jacobi_top(n)
    w, x, y, z = q[0], q[1], q[2], q[3]
    nq = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / nq, x / nq, y / nq, z / nq
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    trans = np.empty(3)
    for a in range(3):
        trans[a] = md[a] - (rot[a, 0] * ms[0] + rot[a, 1] * ms[1] + rot[a, 2] * ms[2])
    pose = np.zeros(20)
    loc = np.empty((4, 3))
    d = np.empty((3, 3))
    for c in range(5):
        for a in range(3):
            loc[0, a] = base_xyz[a, c]
        for m in range(1, 4):
            j = 1 + 4 * c + m
            for a in range(3):
                loc[m, a] = (
                    rot[0, a] * (joints[j, 0] - trans[0])
                    + rot[1, a] * (joints[j, 1] - trans[1])
                    + rot[2, a] * (joints[j, 2] - trans[2])
                )
        for b in range(3):
            nn = 0.0
            for a in range(3):
                d[b, a] = loc[b + 1, a] - loc[b, a]
                nn += d[b, a] * d[b, a]
            nn = max(math.sqrt(nn), 1e-9)
            for a in range(3):
                d[b, a] /= nn
        lift = math.asin(min(max(d[0, 2], -1.0), 1.0))
        swing = math.atan2(-d[0, 0], d[0, 1])
        i_sw, i_li = _DOF_I[0, c], _DOF_I[1, c]
        s0 = _wrap(swing - _DOF_R[0, c]) * _DOF_S[0, c]
        s1 = _wrap(swing + math.pi - _DOF_R[0, c]) * _DOF_S[0, c]
        l0, l1 = lift, math.pi - lift
        off0 = max(_LO[i_sw] - s0, 0.0) + max(s0 - _HI[i_sw], 0.0)
        off0 += max(_LO[i_li] - l0, 0.0) + max(l0 - _HI[i_li], 0.0)
        off1 = max(_LO[i_sw] - s1, 0.0) + max(s1 - _HI[i_sw], 0.0)
        off1 += max(_LO[i_li] - l1, 0.0) + max(l1 - _HI[i_li], 0.0)
        sw, li = (s1, l1) if off1 < off0 else (s0, l0)
        sw = min(max(sw, _LO[i_sw]), _HI[i_sw])
        li = min(max(li, _LO[i_li]), _HI[i_li])
        pose[i_sw], pose[i_li] = sw, li
        aa = sw * _DOF_S[0, c] + _DOF_R[0, c]
        ca, sa, cb, sb = math.cos(aa), math.sin(aa), math.cos(li), math.sin(li)
        m0x, m0y, m0z = ca, sa, 0.0
        m1x, m1y, m1z = -sa * cb, ca * cb, sb
        m2x, m2y, m2z = sa * sb, -ca * sb, cb
        z0x = m0x * _SR[c] + m2x * _CR[c]
        z0y = m0y * _SR[c] + m2y * _CR[c]
        z0z = m0z * _SR[c] + m2z * _CR[c]
        i1, i2 = _DOF_I[2, c], _DOF_I[3, c]
        f1 = math.atan2(
            d[1, 0] * z0x + d[1, 1] * z0y + d[1, 2] * z0z, d[1, 0] * m1x + d[1, 1] * m1y + d[1, 2] * m1z
        )
        f1 = min(max(f1, _LO[i1]), _HI[i1])
        c1, s1_ = math.cos(f1), math.sin(f1)
        y2x, y2y, y2z = c1 * m1x + s1_ * z0x, c1 * m1y + s1_ * z0y, c1 * m1z + s1_ * z0z
        z2x, z2y, z2z = c1 * z0x - s1_ * m1x, c1 * z0y - s1_ * m1y, c1 * z0z - s1_ * m1z
        f2 = math.atan2(
            d[2, 0] * z2x + d[2, 1] * z2y + d[2, 2] * z2z, d[2, 0] * y2x + d[2, 1] * y2y + d[2, 2] * y2z
        )
        pose[i1] = f1
        pose[i2] = min(max(f2, _LO[i2]), _HI[i2])
    return rot, trans, pose


@numba.njit(**_JIT)
def _kinematics(
    rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, pose, points, jd
) -> None:
    """model.pose_model: the points (sphere centres, then joints) in the camera frame into `points`, and
    each joint's derivative w.r.t. its chain's 4 dofs, in the camera frame, into jd (21, 4, 3)."""
    loc = rest_joints.copy()
    dl = np.zeros((21, 4, 3))
    for c in range(5):
        a0 = pose[_DOF_I[0, c]] * _DOF_S[0, c] + _DOF_R[0, c]
        a1 = pose[_DOF_I[1, c]]
        a2 = pose[_DOF_I[2, c]]
        a3 = pose[_DOF_I[3, c]]
        ca, sa, cb, sb = math.cos(a0), math.sin(a0), math.cos(a1), math.sin(a1)
        c1, s1, c2, s2 = math.cos(a2), math.sin(a2), math.cos(a3), math.sin(a3)
        m0 = np.array([ca, sa, 0.0])
        m1 = np.array([-sa * cb, ca * cb, sb])
        m2 = np.array([sa * sb, -ca * sb, cb])
        x0 = m0 * _CR[c] - m2 * _SR[c]
        z0 = m0 * _SR[c] + m2 * _CR[c]
        y2 = c1 * m1 + s1 * z0
        z2 = c1 * z0 - s1 * m1
        y3 = c2 * y2 + s2 * z2
        base = 1 + 4 * c
        ch = np.empty((4, 3))
        for a in range(3):
            ch[0, a] = base_xyz[a, c]
            ch[1, a] = ch[0, a] + bone_mm[c, 0] * m1[a]
            ch[2, a] = ch[1, a] + bone_mm[c, 1] * y2[a]
            ch[3, a] = ch[2, a] + bone_mm[c, 2] * y3[a]
        for m in range(1, 4):
            for a in range(3):
                loc[base + m, a] = ch[m, a]
        # d joint / d dof = axis x (joint - pivot): swing (about z, signed) and lift (m0) pivot on the base,
        # flexion 1 (x0) on joint 1, flexion 2 (x0) on joint 2
        for d in range(4):
            if d == 0:
                ux, uy, uz = 0.0, 0.0, _DOF_S[0, c]
            elif d == 1:
                ux, uy, uz = m0[0], m0[1], m0[2]
            else:
                ux, uy, uz = x0[0], x0[1], x0[2]
            piv = 0 if d < 2 else d - 1
            for m in range(max(d, 1), 4):
                vx = ch[m, 0] - ch[piv, 0]
                vy = ch[m, 1] - ch[piv, 1]
                vz = ch[m, 2] - ch[piv, 2]
                dl[base + m, d, 0] = uy * vz - uz * vy
                dl[base + m, d, 1] = uz * vx - ux * vz
                dl[base + m, d, 2] = ux * vy - uy * vx
    for j in range(21):
        for d in range(4):
            for a in range(3):
                jd[j, d, a] = rot[a, 0] * dl[j, d, 0] + rot[a, 1] * dl[j, d, 1] + rot[a, 2] * dl[j, d, 2]
    for p in range(points.shape[0]):
        lx, ly, lz = offsets[p, 0], offsets[p, 1], offsets[p, 2]
        for e in range(pw_ptr[p], pw_ptr[p + 1]):
            j, w = pw_idx[e], pw_val[e]
            lx += w * loc[j, 0]
            ly += w * loc[j, 1]
            lz += w * loc[j, 2]
        for a in range(3):
            points[p, a] = rot[a, 0] * lx + rot[a, 1] * ly + rot[a, 2] * lz + trans[a]


@numba.njit(**_JIT)
def _add_row(p, vx, vy, vz, w, r, points, trans, pw_ptr, pw_idx, pw_val, jd, row, acc, acc_g) -> None:
    """One residual r (already weighted) with direction v at point p, row weight w: its Jacobian row
    w ((p - wrist) x v, v, v . dp/dangle) added to J^T J and J^T r. A point moves with the 4 angles of at
    most one chain (checked by build_model), so a row has 10 entries: rotation, translation and that
    chain's dofs; it goes to the chain's (10, 10) block of acc (block 5: no chain), which `_scatter`
    adds into the 26 x 26 system once (direct indices here, so the compiler can unroll the products)."""
    x = points[p, 0] - trans[0]
    y = points[p, 1] - trans[1]
    z = points[p, 2] - trans[2]
    row[0] = w * (y * vz - z * vy)
    row[1] = w * (z * vx - x * vz)
    row[2] = w * (x * vy - y * vx)
    row[3], row[4], row[5] = w * vx, w * vy, w * vz
    row[6] = row[7] = row[8] = row[9] = 0.0
    c = 5
    for e in range(pw_ptr[p], pw_ptr[p + 1]):
        j = pw_idx[e]
        if j < 2 or (j - 1) % 4 == 0:  # the wrist and the chains' base joints do not move with the angles
            continue
        c = (j - 1) // 4
        s = w * pw_val[e]
        for d in range(4):
            row[6 + d] += s * (vx * jd[j, d, 0] + vy * jd[j, d, 1] + vz * jd[j, d, 2])
    for a in range(10):
        ra = row[a]
        acc_g[c, a] += ra * r
        for b in range(a, 10):
            acc[c, a, b] += ra * row[b]


@numba.njit(**_JIT)
def _scatter(acc, acc_g, hess, grad) -> None:
    """The per-chain blocks of `_add_row` into J^T J (upper triangle) and J^T r."""
    for c in range(6):
        for a in range(10):
            ia = a if a < 6 or c == 5 else 6 + _DOF_I[a - 6, c]
            if a >= 6 and c == 5:
                continue
            grad[ia] += acc_g[c, a]
            for b in range(a, 10):
                if b >= 6 and c == 5:
                    continue
                ib = b if b < 6 else 6 + _DOF_I[b - 6, c]
                if ia <= ib:
                    hess[ia, ib] += acc[c, a, b]
                else:
                    hess[ib, ia] += acc[c, a, b]


@numba.njit(**_JIT)
def _terms(
    model_radii,
    radii32,
    pw_ptr,
    pw_idx,
    pw_val,
    length_mm,
    pts,
    origin,
    depth_mm,
    raw_mm,
    dist_px,
    grad_u,
    grad_v,
    proj,
    mm_per_px,
    size,
    mirror,
    targets,
    target_w,
    cfg,
    points,
    trans,
    axis_y,
    jd,
    hess,
    grad,
    build,
    point_chain,
    chain_e,
    only_chain,
    near_k,
    near_s,
    chain_sph,
) -> tuple[float, float]:
    """fit._terms and the joint terms: (energy, data RMS) at the posed points; with `build`, J^T J and J^T r
    accumulated into hess (upper triangle) and grad. chain_e (6,) gets each chain's own part of the energy
    (the data terms of the points nearest its spheres, its spheres' silhouette and free space; 5: the
    palm). `only_chain` >= 0: only that chain's spheres `chain_sph` have moved since `_nearest_other` gave
    each point its nearest other sphere (near_k, near_s), so only they are searched (the same first
    minimum as the whole search), and only the rows that reach that chain's angles are built (the others
    add exact zeros to its 4 x 4 block)."""
    huber, outlier, forearm, w_data = cfg[0], cfg[1], cfg[2], cfg[3]
    w_sil, w_free, margin = cfg[4], cfg[5], cfg[8]
    n_sph = model_radii.shape[0]
    row = np.zeros(10)
    acc = np.zeros((6, 10, 10))
    acc_g = np.zeros((6, 10))
    energy = 0.0
    ess = 0.0
    # nearest sphere surface in float32 about the observation's origin, as the reference's (N, K) block; the
    # K surface distances of a point first (a loop the compiler vectorizes), then their first minimum
    cx = np.empty(n_sph, dtype=np.float32)
    cy = np.empty(n_sph, dtype=np.float32)
    cz = np.empty(n_sph, dtype=np.float32)
    csq = np.empty(n_sph, dtype=np.float32)
    for k in range(n_sph):
        cx[k] = np.float32(points[k, 0] - origin[0])
        cy[k] = np.float32(points[k, 1] - origin[1])
        cz[k] = np.float32(points[k, 2] - origin[2])
        csq[k] = cx[k] * cx[k] + cy[k] * cy[k] + cz[k] * cz[k]
    surf = np.empty(n_sph, dtype=np.float32)
    tiny = np.float32(1e-12)
    two = np.float32(-2.0)
    cut = -forearm * length_mm
    n_pts = pts.shape[0]
    for i in range(n_pts):
        r0 = np.float32(pts[i, 0] - origin[0])
        r1 = np.float32(pts[i, 1] - origin[1])
        r2 = np.float32(pts[i, 2] - origin[2])
        q0, q1, q2 = two * r0, two * r1, two * r2
        psq = r0 * r0 + r1 * r1 + r2 * r2
        if only_chain < 0:
            for k in range(n_sph):
                d2 = q0 * cx[k] + q1 * cy[k] + q2 * cz[k] + psq + csq[k]
                d2 = tiny if d2 < tiny else d2  # np.maximum (NaN stays NaN)
                surf[k] = np.float32(math.sqrt(d2)) - radii32[k]  # a float32 sqrt rounded once, as numpy's
            kb, best = 0, surf[0]
            for k in range(1, n_sph):
                if surf[k] < best:
                    kb, best = k, surf[k]
        else:
            kb, best = near_k[i], near_s[i]
            for m in range(chain_sph.shape[0]):
                k = chain_sph[m]
                d2 = q0 * cx[k] + q1 * cy[k] + q2 * cz[k] + psq + csq[k]
                d2 = tiny if d2 < tiny else d2
                sk = np.float32(math.sqrt(d2)) - radii32[k]
                if sk < best or (sk == best and k < kb):
                    kb, best = k, sk
        nx = pts[i, 0] - points[kb, 0]
        ny = pts[i, 1] - points[kb, 1]
        nzz = pts[i, 2] - points[kb, 2]
        dist = math.sqrt(nx * nx + ny * ny + nzz * nzz)
        nx, ny, nzz = nx / dist, ny / dist, nzz / dist
        e = dist - model_radii[kb]
        ess += e * e
        ae = abs(e)
        behind = (
            (pts[i, 0] - trans[0]) * axis_y[0]
            + (pts[i, 1] - trans[1]) * axis_y[1]
            + (pts[i, 2] - trans[2]) * axis_y[2]
        ) < cut
        if behind or ae > outlier:
            continue
        w = math.sqrt(min(1.0, huber / max(ae, 1e-9))) * w_data
        energy += (w * e) ** 2
        chain_e[point_chain[kb]] += (w * e) ** 2
        if build and (only_chain < 0 or point_chain[kb] == only_chain):
            _add_row(
                kb,
                nx,
                ny,
                nzz,
                -w,
                w * e,
                points,
                trans,
                pw_ptr,
                pw_idx,
                pw_val,
                jd,
                row,
                acc,
                acc_g,
            )
    # silhouette and free space at each sphere centre's crop pixel
    ws = w_sil * mm_per_px
    for k in range(n_sph):
        cx, cy, cz = points[k, 0], points[k, 1], points[k, 2]
        z = max(cz, 1.0)
        u = cx * (proj[0] * mirror / z) + proj[1]
        v = cy * (proj[2] / z) + proj[3]
        ci = int(min(max(np.rint(u), 0.0), size - 1))
        ri = int(min(max(np.rint(v), 0.0), size - 1))
        f = ri * size + ci
        dt = dist_px[f]
        if dt > 0 and raw_mm[f] > z:
            gu = grad_u[f] / z
            gv = grad_v[f] / z
            g0 = gu * (proj[0] * mirror)
            g1 = gv * proj[2]
            g2 = -(g0 * cx + g1 * cy) / z
            rs = np.float64(np.float32(ws) * dt)  # the reference's residual is float32 (a weak scalar x f32)
            energy += rs * rs
            chain_e[point_chain[k]] += rs * rs
            if build and (only_chain < 0 or point_chain[k] == only_chain):
                _add_row(
                    k,
                    g0,
                    g1,
                    g2,
                    ws,
                    rs,
                    points,
                    trans,
                    pw_ptr,
                    pw_idx,
                    pw_val,
                    jd,
                    row,
                    acc,
                    acc_g,
                )
        gap = cz - model_radii[k] - (depth_mm[f] - np.float32(margin))
        if gap < 0:  # NaN (off the hand) compares False
            energy += (w_free * gap) ** 2
            chain_e[point_chain[k]] += (w_free * gap) ** 2
            if build and (only_chain < 0 or point_chain[k] == only_chain):
                _add_row(
                    k,
                    0.0,
                    0.0,
                    1.0,
                    w_free,
                    w_free * gap,
                    points,
                    trans,
                    pw_ptr,
                    pw_idx,
                    pw_val,
                    jd,
                    row,
                    acc,
                    acc_g,
                )
    # joint terms: x, y, z of every joint towards each target (the engine's joints; the last fit's)
    for t in range(targets.shape[0]):
        wt = target_w[t]
        if wt <= 0:
            continue
        for j in range(21):
            p = n_sph + j
            for a in range(3):
                r = wt * (points[p, a] - targets[t, j, a])
                energy += r * r
                if build and (only_chain < 0 or point_chain[p] == only_chain):
                    _add_row(
                        p,
                        1.0 if a == 0 else 0.0,
                        1.0 if a == 1 else 0.0,
                        1.0 if a == 2 else 0.0,
                        wt,
                        r,
                        points,
                        trans,
                        pw_ptr,
                        pw_idx,
                        pw_val,
                        jd,
                        row,
                        acc,
                        acc_g,
                    )
    if build:
        _scatter(acc, acc_g, hess, grad)
    return energy, math.sqrt(ess / n_pts)


@numba.njit(**_JIT)
def _nearest_other(pts, origin, points, radii32, point_chain, chain, near_k, near_s) -> None:
    """Each data point's nearest sphere surface among the spheres not on `chain` (index, float32 distance,
    the first of equal ones), by _terms' own float32 arithmetic: while only that chain's angles change,
    _terms searches that chain's spheres alone against it."""
    n_sph = radii32.shape[0]
    tiny = np.float32(1e-12)
    two = np.float32(-2.0)
    cx = np.empty(n_sph, dtype=np.float32)
    cy = np.empty(n_sph, dtype=np.float32)
    cz = np.empty(n_sph, dtype=np.float32)
    csq = np.empty(n_sph, dtype=np.float32)
    for k in range(n_sph):
        cx[k] = np.float32(points[k, 0] - origin[0])
        cy[k] = np.float32(points[k, 1] - origin[1])
        cz[k] = np.float32(points[k, 2] - origin[2])
        csq[k] = cx[k] * cx[k] + cy[k] * cy[k] + cz[k] * cz[k]
    surf = np.empty(n_sph, dtype=np.float32)
    for i in range(pts.shape[0]):
        r0 = np.float32(pts[i, 0] - origin[0])
        r1 = np.float32(pts[i, 1] - origin[1])
        r2 = np.float32(pts[i, 2] - origin[2])
        q0, q1, q2 = two * r0, two * r1, two * r2
        psq = r0 * r0 + r1 * r1 + r2 * r2
        for k in range(n_sph):  # all of them, as _terms (a loop the compiler vectorizes), then the minimum
            d2 = q0 * cx[k] + q1 * cy[k] + q2 * cz[k] + psq + csq[k]
            d2 = tiny if d2 < tiny else d2
            surf[k] = np.float32(math.sqrt(d2)) - radii32[k]
        kb, best = -1, np.float32(np.inf)
        for k in range(n_sph):
            if point_chain[k] != chain and (kb < 0 or surf[k] < best):
                kb, best = k, surf[k]
        near_k[i], near_s[i] = kb, best


@numba.njit(**_JIT)
def _pose_prior(pose, prior_mean, prior_prec, prior_const, build, hess, grad) -> float:
    """The pose prior's energy min_k (theta - mean_k)^T P_k (theta - mean_k) + c_k (P_k: the weighted
    precisions, c_k the constants, fit.py; the first of equal components), and with `build` the chosen
    component's rows' share of J^T J (P_k, upper triangle of the angle block) and J^T r (P_k (theta -
    mean_k)); 0 without a prior (no components)."""
    n_comp = prior_mean.shape[0]
    if n_comp == 0:
        return 0.0
    n = prior_mean.shape[1]
    d = np.empty(n)
    best, energy = 0, np.inf
    for k in range(n_comp):
        for i in range(n):
            d[i] = pose[i] - prior_mean[k, i]
        e = prior_const[k]
        for i in range(n):  # the symmetric form from its upper triangle: half the products
            q = 0.5 * prior_prec[k, i, i] * d[i]
            for j in range(i + 1, n):
                q += prior_prec[k, i, j] * d[j]
            e += 2.0 * d[i] * q
        if e < energy:
            best, energy = k, e
    if build:
        for i in range(n):
            d[i] = pose[i] - prior_mean[best, i]
        for i in range(n):
            q = 0.0
            for j in range(n):
                q += prior_prec[best, i, j] * d[j]
            grad[6 + i] += q
            for j in range(i, n):
                hess[6 + i, 6 + j] += prior_prec[best, i, j]
    return energy


@numba.njit(**_JIT)
def _solve_spd(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """x with H x = g for a symmetric positive definite H given by its upper triangle (Cholesky)."""
    n = h.shape[0]
    lo = np.zeros((n, n))
    for j in range(n):
        s = h[j, j]
        for k in range(j):
            s -= lo[j, k] * lo[j, k]
        d = math.sqrt(max(s, 1e-300))
        lo[j, j] = d
        for i in range(j + 1, n):
            s = h[j, i]
            for k in range(j):
                s -= lo[i, k] * lo[j, k]
            lo[i, j] = s / d
    y = np.empty(n)
    for i in range(n):
        s = g[i]
        for k in range(i):
            s -= lo[i, k] * y[k]
        y[i] = s / lo[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= lo[k, i] * x[k]
        x[i] = s / lo[i, i]
    return x


@numba.njit(**_JIT)
def _rotate(rot: np.ndarray, wx: float, wy: float, wz: float) -> np.ndarray:
    """exp([omega]x) @ rot (model.rotation_update, then the product)."""
    th = math.sqrt(wx * wx + wy * wy + wz * wz)
    if th < 1e-12:
        return rot.copy()
    x, y, z = wx / th, wy / th, wz / th
    s, c = math.sin(th), math.cos(th)
    t = 1.0 - c
    r = np.array(
        [
            [c + t * x * x, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, c + t * y * y, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, c + t * z * z],
        ]
    )
    # written out: numba lowers `@` to BLAS, which it reaches only through scipy, not a runtime dependency
    out = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            out[i, j] = r[i, 0] * rot[0, j] + r[i, 1] * rot[1, j] + r[i, 2] * rot[2, j]
    return out


@numba.njit(**_JIT)
def _worst_first(own: np.ndarray, count: int) -> np.ndarray:
    """The `count` chains of the highest own energy, worst first (the first of equal ones, as the
    reference's stable sort)."""
    own = own.copy()
    chosen = np.empty(min(count, 5), dtype=np.int64)
    for f in range(chosen.shape[0]):
        best = -1
        for c in range(5):
            if own[c] >= 0.0 and (best < 0 or own[c] > own[best]):
                best = c
        chosen[f] = best
        own[best] = -1.0
    return chosen


@numba.njit(**_JIT)
def _steps(
    rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, radii, radii32, length_mm, point_chain,
    pts, origin, depth_mm, raw_mm, dist_px, grad_u, grad_v, proj, mm_per_px, size, mirror, targets,
    target_w, cfg, rot, trans, pose, iterations, points, jd, hess, grad, chain_e, near_k, near_s, chain_sph,
    prior_mean, prior_prec, prior_const,
):  # fmt: skip
    """`iterations` damped Gauss-Newton steps over all 26 parameters from (rot, trans, pose), angles
    projected onto the limits after each; (rot, trans, pose) are updated in place where they can be.
    Returns (rot, trans, pose, the data RMS at the last step's start)."""
    rms = np.nan
    damping = cfg[7]
    for _ in range(iterations):
        _kinematics(
            rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, pose, points, jd
        )
        hess[:] = 0.0
        grad[:] = 0.0
        axis_y = rot[:, 1].copy()
        _, rms = _terms(
            radii, radii32, pw_ptr, pw_idx, pw_val, length_mm, pts, origin, depth_mm, raw_mm, dist_px, grad_u,
            grad_v, proj, mm_per_px, size, mirror, targets, target_w, cfg, points, trans, axis_y, jd, hess,
            grad, True, point_chain, chain_e, -1, near_k, near_s, chain_sph,
        )  # fmt: skip
        _pose_prior(pose, prior_mean, prior_prec, prior_const, True, hess, grad)
        for i in range(N_PARAMS):
            hess[i, i] = hess[i, i] * (1.0 + damping) + 1e-6
            grad[i] = -grad[i]
        step = _solve_spd(hess, grad)
        rot = _rotate(rot, step[0], step[1], step[2])
        for a in range(3):
            trans[a] += step[3 + a]
        for i in range(20):
            pose[i] = min(max(pose[i] + step[6 + i], _LO[i]), _HI[i])
    return rot, trans, pose, rms


@numba.njit(**_JIT)
def gauss_newton_kernel(
    rest_joints,
    bone_mm,
    base_xyz,
    pw_ptr,
    pw_idx,
    pw_val,
    offsets,
    radii,
    radii32,
    length_mm,
    point_chain,
    pts,
    origin,
    depth_mm,
    raw_mm,
    dist_px,
    grad_u,
    grad_v,
    proj,
    mm_per_px,
    size,
    mirror,
    targets,
    target_w,
    cfg,
    rot,
    trans,
    pose,
    iterations,
    reseed_fingers,
    reseed_iterations,
    rescue_fingers,
    rescue_iterations,
    prior_mean,
    prior_prec,
    prior_const,
):
    """fit.fit_hand's descent from (rot, trans, pose): `iterations` damped Gauss-Newton steps, angles
    projected onto the limits after each; then the `reseed_fingers` fingers of the highest own energy
    re-seeded straight and curled, `reseed_iterations` steps over that finger's 4 angles each, a seed kept
    where it lowers the energy (fit._reseed); then, where the energy per hand point is above cfg's
    `rescue_energy`, the `rescue_fingers` fingers of the highest own energy re-seeded the same way but each
    seed followed by `rescue_iterations` whole-hand steps (fit._rescue). Returns (rot, trans, pose, joints
    (21, 3), data RMS at the last main step's start, energy at the result, whether the rescue ran)."""
    n_sph = radii.shape[0]
    points = np.empty((n_sph + 21, 3))
    jd = np.empty((21, 4, 3))
    hess = np.empty((N_PARAMS, N_PARAMS))
    grad = np.empty(N_PARAMS)
    chain_e = np.zeros(6)
    near_k = np.zeros(pts.shape[0], dtype=np.int64)
    near_s = np.zeros(pts.shape[0], dtype=np.float32)
    chain_sph = np.zeros(0, dtype=np.int64)
    rot, trans, pose, rms = _steps(
        rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, radii, radii32, length_mm, point_chain,
        pts, origin, depth_mm, raw_mm, dist_px, grad_u, grad_v, proj, mm_per_px, size, mirror, targets,
        target_w, cfg, rot.copy(), trans.copy(), pose.copy(), iterations, points, jd, hess, grad, chain_e,
        near_k, near_s, chain_sph, prior_mean, prior_prec, prior_const,
    )  # fmt: skip
    damping = cfg[7]
    _kinematics(rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, pose, points, jd)
    axis_y = rot[:, 1].copy()
    chain_e[:] = 0.0
    energy, _ = _terms(
        radii, radii32, pw_ptr, pw_idx, pw_val, length_mm, pts, origin, depth_mm, raw_mm, dist_px, grad_u,
        grad_v, proj, mm_per_px, size, mirror, targets, target_w, cfg, points, trans, axis_y, jd, hess,
        grad, False, point_chain, chain_e, -1, near_k, near_s, chain_sph,
    )  # fmt: skip
    energy += _pose_prior(pose, prior_mean, prior_prec, prior_const, False, hess, grad)
    own = chain_e[:5].copy()
    if reseed_fingers > 0:
        # the worst fingers first (the first of equal ones, as a stable sort of the reference)
        chosen = _worst_first(own, reseed_fingers)
        scratch = np.zeros(6)
        h4 = np.empty((4, 4))
        g4 = np.empty(4)
        idx = np.empty(4, dtype=np.int64)
        for f in range(chosen.shape[0]):
            c = chosen[f]
            for d in range(4):
                idx[d] = 6 + _DOF_I[d, c]
            chain_sph = np.flatnonzero(point_chain[:n_sph] == c)
            _kinematics(
                rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, pose, points, jd
            )
            _nearest_other(pts, origin, points, radii32, point_chain, c, near_k, near_s)
            for s in range(2):
                trial = pose.copy()
                for d in range(1, 4):
                    i = _DOF_I[d, c]
                    trial[i] = min(max(_SEEDS[s, d - 1, c], _LO[i]), _HI[i])
                for _ in range(reseed_iterations):
                    _kinematics(
                        rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, trial,
                        points, jd,
                    )  # fmt: skip
                    hess[:] = 0.0
                    grad[:] = 0.0
                    _terms(
                        radii, radii32, pw_ptr, pw_idx, pw_val, length_mm, pts, origin, depth_mm, raw_mm,
                        dist_px, grad_u, grad_v, proj, mm_per_px, size, mirror, targets, target_w, cfg,
                        points, trans, axis_y, jd, hess, grad, True, point_chain, scratch, c, near_k, near_s,
                        chain_sph,
                    )  # fmt: skip
                    _pose_prior(trial, prior_mean, prior_prec, prior_const, True, hess, grad)
                    for a in range(4):
                        g4[a] = -grad[idx[a]]
                        for b in range(4):
                            h4[a, b] = hess[min(idx[a], idx[b]), max(idx[a], idx[b])]
                        h4[a, a] = h4[a, a] * (1.0 + damping) + 1e-6
                    step = _solve_spd(h4, g4)
                    for d in range(4):
                        i = _DOF_I[d, c]
                        trial[i] = min(max(trial[i] + step[d], _LO[i]), _HI[i])
                _kinematics(
                    rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, trial,
                    points, jd,
                )  # fmt: skip
                e, _ = _terms(
                    radii, radii32, pw_ptr, pw_idx, pw_val, length_mm, pts, origin, depth_mm, raw_mm, dist_px,
                    grad_u, grad_v, proj, mm_per_px, size, mirror, targets, target_w, cfg, points, trans,
                    axis_y, jd, hess, grad, False, point_chain, scratch, c, near_k, near_s, chain_sph,
                )  # fmt: skip
                e += _pose_prior(trial, prior_mean, prior_prec, prior_const, False, hess, grad)
                if e < energy:
                    energy = e
                    pose = trial
    rescued = False
    # the gate reads the depth's and the engine's evidence: the energy less the pose prior's share
    depth_energy = energy - _pose_prior(pose, prior_mean, prior_prec, prior_const, False, hess, grad)
    if rescue_fingers > 0 and depth_energy > cfg[9] * pts.shape[0]:
        # a bad start, by the fit's own evidence (its energy per hand point): every finger, worst first,
        # straight and curled, each seed followed by whole-hand steps (the rest of the hand re-settles
        # around it), kept where the energy drops (Sharp et al. 2015's per-finger re-seeding)
        rescued = True
        scratch = np.zeros(6)
        chosen = _worst_first(own, rescue_fingers)
        for f in range(chosen.shape[0]):
            c = chosen[f]
            for s in range(2):
                trial = pose.copy()
                for d in range(1, 4):
                    i = _DOF_I[d, c]
                    trial[i] = min(max(_SEEDS[s, d - 1, c], _LO[i]), _HI[i])
                t_rot, t_trans, trial, _ = _steps(
                    rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, radii, radii32, length_mm,
                    point_chain, pts, origin, depth_mm, raw_mm, dist_px, grad_u, grad_v, proj, mm_per_px, size,
                    mirror, targets, target_w, cfg, rot.copy(), trans.copy(), trial, rescue_iterations, points,
                    jd, hess, grad, scratch, near_k, near_s, chain_sph, prior_mean, prior_prec, prior_const,
                )  # fmt: skip
                _kinematics(
                    rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, t_rot, t_trans, trial,
                    points, jd,
                )  # fmt: skip
                e, _ = _terms(
                    radii, radii32, pw_ptr, pw_idx, pw_val, length_mm, pts, origin, depth_mm, raw_mm, dist_px,
                    grad_u, grad_v, proj, mm_per_px, size, mirror, targets, target_w, cfg, points, t_trans,
                    t_rot[:, 1].copy(), jd, hess, grad, False, point_chain, scratch, -1, near_k, near_s,
                    chain_sph,
                )  # fmt: skip
                e += _pose_prior(trial, prior_mean, prior_prec, prior_const, False, hess, grad)
                if e < energy:
                    energy, rot, trans, pose = e, t_rot, t_trans, trial
    _kinematics(rest_joints, bone_mm, base_xyz, pw_ptr, pw_idx, pw_val, offsets, rot, trans, pose, points, jd)
    return rot, trans, pose, points[n_sph:].copy(), rms, energy, rescued


@numba.njit(**_JIT)
def observe_kernel(
    depth: np.ndarray, half_mm: float, com_z_mm: float, proj: np.ndarray, n_points: int, mirror: bool
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """fit.observe's per-pixel part on the normalized crop (S, S): (hand pixels, points (n, 3) camera mm,
    the hand's depth (S * S,) float32 NaN off the hand, the off-hand mask (S, S) uint8 for the distance
    transform). The points are the same even stride through the hand's pixels as the reference's."""
    size = depth.shape[0]
    flat = depth.ravel()
    off = np.empty((size, size), dtype=np.uint8)
    off_flat = off.ravel()
    hand = np.empty(size * size, dtype=np.int64)
    obs = np.empty(size * size, dtype=np.float32)
    h32, c32 = np.float32(half_mm), np.float32(com_z_mm)
    count = 0
    for i in range(size * size):
        v = flat[i]
        if v >= 1.0:
            off_flat[i] = 1
            obs[i] = np.nan
        else:
            off_flat[i] = 0
            obs[i] = v * h32 + c32
            hand[count] = i
            count += 1
    n = min(n_points, count)
    pts = np.empty((max(n, 0), 3))
    if count < 20:
        return count, pts, obs, off
    step = (count - 1) / max(n - 1, 1)
    for k in range(n):
        sel = hand[count - 1] if k == n - 1 else hand[int(k * step)]
        z = np.float64(flat[sel]) * half_mm + com_z_mm
        x = (sel % size - proj[1]) * z / proj[0]
        pts[k, 0] = -x if mirror else x
        pts[k, 1] = (sel // size - proj[3]) * z / proj[2]
        pts[k, 2] = z
    return count, pts, obs, off


@numba.njit(**_JIT)
def finish_observation_kernel(
    dist: np.ndarray, slack_px: float, pts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """fit.observe's last part: the distance to the hand less its slack (S * S,) with its central differences
    along columns and rows (OpenCV's Sobel, ksize 1, scale 0.5, reflected border: 0 on the edges), and the
    points' float32 search terms about their mean: (dist, grad_u, grad_v, origin, -2 (p - origin),
    |p - origin|^2), each in the reference's arithmetic and order."""
    size = dist.shape[0]
    s32 = np.float32(slack_px)
    zero = np.float32(0.0)
    half = np.float32(0.5)
    d = np.empty((size, size), dtype=np.float32)
    for r in range(size):
        for c in range(size):
            v = dist[r, c] - s32
            d[r, c] = v if v > zero else zero
    gu = np.zeros((size, size), dtype=np.float32)
    gv = np.zeros((size, size), dtype=np.float32)
    for r in range(size):
        for c in range(1, size - 1):
            gu[r, c] = d[r, c + 1] * half - d[r, c - 1] * half
    for r in range(1, size - 1):
        for c in range(size):
            gv[r, c] = d[r + 1, c] * half - d[r - 1, c] * half
    n = pts.shape[0]
    origin = np.zeros(3)
    for i in range(n):
        for a in range(3):
            origin[a] += pts[i, a]
    for a in range(3):
        origin[a] /= n
    m2 = np.empty((n, 3), dtype=np.float32)
    sq = np.empty((n, 1), dtype=np.float32)
    for i in range(n):
        r0 = np.float32(pts[i, 0] - origin[0])
        r1 = np.float32(pts[i, 1] - origin[1])
        r2 = np.float32(pts[i, 2] - origin[2])
        m2[i, 0], m2[i, 1], m2[i, 2] = np.float32(-2.0) * r0, np.float32(-2.0) * r1, np.float32(-2.0) * r2
        sq[i, 0] = r0 * r0 + r1 * r1 + r2 * r2
    return d.ravel(), gu.ravel(), gv.ravel(), origin, m2, sq


@numba.njit(**_JIT)
def bone_distance_kernel(
    points: np.ndarray, start: np.ndarray, along: np.ndarray, length2: np.ndarray
) -> np.ndarray:
    """recut.bone_distance_numpy's distances (float32, the same float32 operations in the same order) with
    one scalar loop: `points` (N, 3), each bone's `start` and `along` (B, 3) float32, `length2` (B,) float32
    its squared length (at least 1e-9)."""
    n = points.shape[0]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        best = np.float32(np.inf)
        for k in range(start.shape[0]):
            ax = points[i, 0] - start[k, 0]
            ay = points[i, 1] - start[k, 1]
            az = points[i, 2] - start[k, 2]
            t = (ax * along[k, 0] + ay * along[k, 1] + az * along[k, 2]) / length2[k]
            t = min(max(t, zero), one)
            dx = ax - t * along[k, 0]
            dy = ay - t * along[k, 1]
            dz = az - t * along[k, 2]
            d2 = dx * dx + dy * dy + dz * dz
            if d2 < best:
                best = d2
        out[i] = np.sqrt(best)
    return out
