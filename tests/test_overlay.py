"""The overlay draws skeleton, cube, mask tint and HUD on a real pipeline result."""

import numpy as np

from stream.overlay import BONES_21, Overlay
from stream.pipeline import Hud, build_pipeline
from stream.sources.synthetic import SyntheticSource


def test_overlay_side_by_side_with_skeleton_and_hud():
    frames = list(SyntheticSource(n_frames=6, seed=2))
    with build_pipeline(backend="onnxruntime", overlay=True) as p:
        results = [p.process(f) for f in frames]
    r = next((r for r in results if r.hand_found), None)
    assert r is not None
    f = frames[r.index]
    h, w = f.intrinsics.height, f.intrinsics.width
    assert r.image.shape == (h, 2 * w, 3) and r.image.dtype == np.uint8
    assert "overlay" in r.stage_ms
    # the skeleton is drawn in the depth view at the wrist's pixel (right half): differs from the plain map
    plain = Overlay().depth_colormap(f.depth_mm)
    u, v = np.rint(r.joints_uvd[0, :2]).astype(int)
    if 0 <= u < w and 0 <= v < h:
        assert not np.array_equal(r.image[v, w + u], plain[v, u])
    # the HUD band is drawn at the top left
    assert (r.image[2:10, 2:60] == 0).mean() > 0.3


def test_depth_colormap_missing_is_black_and_near_far_differ():
    o = Overlay(depth_range_mm=(200, 1500))
    d = np.array([[0, 300, 1400]], np.uint16)
    img = o.depth_colormap(d)
    assert img[0, 0].tolist() == [0, 0, 0]
    assert img[0, 1].tolist() != img[0, 2].tolist()
    assert o.depth_colormap(d.astype(np.float32)).tolist() == img.tolist()


def test_bones_form_a_tree_over_21_joints():
    assert len(BONES_21) == 20
    assert {c for _, c in BONES_21} == set(range(1, 21))
    assert all(p < c for p, c in BONES_21)


def test_hud_text_without_a_hand():
    from stream.stages import FrameState

    f = next(iter(SyntheticSource(n_frames=1)))
    hud = Hud()
    hud.fps, hud.dropped = 29.5, 3
    st = FrameState(f)
    st.reason = "no hand"
    img = Overlay(side_by_side=False, hud=hud).draw(st)
    assert img.shape == (f.intrinsics.height, f.intrinsics.width, 3)


def test_depth_colormap_draws_nan_and_inf_as_missing_without_warnings():
    """A float frame with NaN/inf (a bad source) colours those pixels black like 0 mm, and -- with numpy
    warnings turned into errors -- draws without the cast warning a bare astype(uint16) gives."""
    import warnings

    o = Overlay(depth_range_mm=(200, 1500))
    d = np.array([[np.nan, np.inf, -np.inf, 300.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = o.depth_colormap(d)
    assert img[0, :3].tolist() == [[0, 0, 0]] * 3
    assert img[0, 3].tolist() == o.depth_colormap(np.array([[300]], np.uint16))[0, 0].tolist()
