"""Scene kinds of the generator (stream/synth/scenes.py): frontal frames unchanged byte for byte, close-range
scenes with hands at 200-500 mm, held objects outside the hand mask, table clutter behind, forearms from
the border, two labelled hands, datasets and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from stream.errors import InputError
from stream.frames import KNOWN_CAMERAS
from stream.synth import SCENE_KINDS, HandSynthesizer, SceneConfig, load_dataset, write_dataset
from stream.synth.scene import M_ARM, M_BODY, M_HAND, M_HAND2, M_OBJECT

# sha256 (first 16 hex digits) of frontal frames made by the generator before scene kinds existed: the pose
# test set, the benchmarks and every trained engine were made from these bytes
FRONTAL_DIGESTS = {
    "samples": "73a70e73c30a7136",
    "sequence": "1460b690b4d828a3",
    "two_hands": "77dfeb8c135540a1",
    "vga_nocolor": "89118a94480108ec",
}


def _digest(samples) -> str:
    h = hashlib.sha256()
    for s in samples:
        for a in (s.frame.depth_mm, s.frame.color_bgr, s.mask, s.joints_xyz_mm, s.orientation_deg):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        for o in s.other_hands:
            h.update(o.mask.tobytes())
            h.update(o.joints_xyz_mm.tobytes())
    return h.hexdigest()[:16]


def test_frontal_frames_are_byte_identical_to_before_scene_kinds():
    cfg = SceneConfig()
    assert cfg.scene_kind == "frontal"
    got = {
        "samples": _digest([HandSynthesizer(cfg, 3).sample_at(k) for k in range(3)]),
        "sequence": _digest(list(HandSynthesizer(cfg, 4).sequence(4))),
        "two_hands": _digest(
            [HandSynthesizer(replace(cfg, two_hands=True), 5).sample_at(k) for k in range(2)]
        ),
        "vga_nocolor": _digest(
            [HandSynthesizer(replace(cfg, camera=KNOWN_CAMERAS["d435_640x480"], color=False), 6).sample_at(0)]
        ),
    }
    assert got == FRONTAL_DIGESTS


@pytest.fixture(scope="module", params=["egocentric", "desk"])
def close(request):
    syn = HandSynthesizer(SceneConfig(scene_kind=request.param), seed=21)
    return request.param, [syn.sample_at(k) for k in range(16)]


def _palm_centre(s) -> np.ndarray:
    return 0.5 * (s.joints_xyz_mm[0] + s.joints_xyz_mm[9])


def test_close_scenes_put_the_hand_at_200_to_500_mm(close):
    kind, samples = close
    for s in samples:
        assert s.scene_kind == kind and s.frame.meta["scene_kind"] == kind
        assert 200.0 - 1e-3 <= _palm_centre(s)[2] <= 500.0 + 1e-3
    # the hand is seen (most frames show a good part of it)
    assert np.mean([(s.mask & (s.frame.depth_mm > 0)).sum() > 300 for s in samples]) >= 0.75


def test_mask_is_the_hand_material_and_excludes_the_held_object(close):
    _, samples = close
    held_seen = 0
    for s in samples:
        assert s.material is not None and s.material.shape == s.mask.shape
        assert np.array_equal(s.mask, s.material == M_HAND)
        held = s.frame.meta["held_material"]
        if held < 0:
            continue
        assert held >= M_OBJECT
        obj = s.material == held
        assert not np.any(obj & s.mask)
        if obj.sum() > 50:
            held_seen += 1
            # the held object lies in the hand: its visible surface within ~a hand length of the palm
            z = s.frame.meta["z_clean_mm"][obj]
            assert abs(float(np.median(z)) - _palm_centre(s)[2]) < 200.0
    assert held_seen >= 4  # held_object_prob 0.6 over 16 frames


def test_held_objects_hide_fingers():
    from stream.synth.render import Rays, cast_round_cones

    cfg = SceneConfig(scene_kind="egocentric", held_object_prob=1.0, distractors=False)
    syn = HandSynthesizer(cfg, 5)
    rays = Rays.for_camera(cfg.camera)
    hides = []
    for k in range(12):
        s = syn.sample_at(k)
        held = s.frame.meta["held_material"]
        assert held >= M_OBJECT
        g = s.frame.meta["hand_geometry"]
        pix, _, _, _ = cast_round_cones(
            rays, g.cone_a, g.cone_b, g.radius_a, g.radius_b, np.zeros(len(g.part))
        )
        alone = np.zeros(s.mask.size, bool)
        alone[pix] = True
        alone = alone.reshape(s.mask.shape)
        # hand pixels the held object covers: a grip hides part of the hand
        hides.append((alone & (s.material == held)).sum() / max(alone.sum(), 1))
    assert np.mean(np.array(hides) > 0.05) >= 0.5
    free = HandSynthesizer(replace(cfg, held_object_prob=0.0), 5)
    assert all(free.sample_at(k).frame.meta["held_material"] == -1 for k in range(4))


def test_tables_carry_clutter_behind_the_hand(close):
    kind, samples = close
    behind = 0
    for s in samples:
        z = s.frame.meta["z_clean_mm"]
        obj = (s.material >= M_OBJECT) & (s.material != s.frame.meta["held_material"])
        if obj.any() and np.median(z[obj]) > _palm_centre(s)[2] + 100.0:
            behind += 1
        # the table (the wall material for egocentric scenes) is seen below the hand
        assert (s.material == 0).mean() > 0.1
    assert behind >= 0.6 * len(samples), kind


def test_forearms_enter_from_the_image_border(close):
    kind, samples = close
    border = 0
    for s in samples:
        arm = (s.material == M_ARM) | (s.material == M_BODY)
        edge = np.concatenate([arm[0], arm[-1], arm[:, 0], arm[:, -1]])
        border += bool(edge.any())
    assert border >= 0.75 * len(samples), kind


def test_two_hands_in_close_scenes_have_labels_for_both():
    syn = HandSynthesizer(SceneConfig(scene_kind="egocentric", two_hands=True), 8)
    both = 0
    for k in range(8):
        s = syn.sample_at(k)
        assert len(s.other_hands) == 1 and len(s.frame.meta["other_hand_geometries"]) == 1
        o = s.other_hands[0]
        assert np.array_equal(o.mask, s.material == M_HAND2) and not np.any(o.mask & s.mask)
        assert 200.0 - 1e-3 <= 0.5 * (o.joints_xyz_mm[0, 2] + o.joints_xyz_mm[9, 2]) <= 500.0 + 1e-3
        both += bool(o.mask.sum() > 200 and s.mask.sum() > 200)
    assert both >= 4


def test_close_sequences_stay_in_range_and_keep_the_held_object():
    syn = HandSynthesizer(SceneConfig(scene_kind="desk", held_object_prob=1.0), 2)
    seq = list(syn.sequence(40))
    held = {s.frame.meta["held_material"] for s in seq}
    assert len(held) == 1 and held.pop() >= M_OBJECT
    z = np.array([_palm_centre(s)[2] for s in seq])
    assert z.min() >= 200.0 - 1e-3 and z.max() <= 500.0 + 1e-3
    assert np.abs(np.diff(z)).max() < 40.0  # smooth


def test_mixed_draws_every_kind_and_matches_the_kind_alone():
    syn = HandSynthesizer(SceneConfig(scene_kind="mixed", color=False), 3)
    kinds = [syn.sample_at(k).scene_kind for k in range(30)]
    assert set(kinds) == {"frontal", "egocentric", "desk"}
    k = kinds.index("egocentric")
    alone = HandSynthesizer(SceneConfig(scene_kind="egocentric", color=False), 3).sample_at(k)
    assert np.array_equal(syn.sample_at(k).frame.depth_mm, alone.frame.depth_mm)


def test_scene_config_checks_and_round_trips():
    with pytest.raises(InputError, match="scene_kind"):
        SceneConfig(scene_kind="kitchen")
    with pytest.raises(InputError, match="close_distance_mm"):
        SceneConfig(close_distance_mm=(500.0, 200.0))
    with pytest.raises(InputError, match="held_object_prob"):
        SceneConfig(held_object_prob=1.5)
    for kind in SCENE_KINDS:
        cfg = SceneConfig(scene_kind=kind)
        assert SceneConfig.from_dict(cfg.to_dict()) == cfg


def test_dataset_and_cli_carry_the_scene_kind(tmp_path):
    from stream.cli import main

    out = write_dataset(
        tmp_path / "ego", 3, seed=4, config=SceneConfig(scene_kind="mixed", color=False), progress=False
    )
    meta, arrays = load_dataset(out)
    assert meta["scene_kind"] == "mixed" and meta["config"]["scene_kind"] == "mixed"
    syn = HandSynthesizer(SceneConfig(scene_kind="mixed", color=False), 4)
    for i in range(3):
        s = syn.sample_at(i)
        assert np.array_equal(arrays["material"][i], s.material)
        assert SCENE_KINDS[arrays["scene_kind"][i]] == s.scene_kind
        assert arrays["held_material"][i] == s.frame.meta["held_material"]
    # frontal datasets keep the arrays they always had
    meta_f, arrays_f = load_dataset(write_dataset(tmp_path / "front", 2, seed=4, progress=False))
    assert "material" not in arrays_f and "material" not in meta_f["arrays"]

    cli_out = tmp_path / "cli"
    assert main(["synth", "--out", str(cli_out), "--frames", "2", "--scene", "desk", "--no-color"]) == 0
    meta, arrays = load_dataset(cli_out)
    assert meta["scene_kind"] == "desk" and set(arrays["scene_kind"].tolist()) == {SCENE_KINDS.index("desk")}
    with pytest.raises(SystemExit) as exc:  # argparse: the valid choices in one usage line
        main(["synth", "--out", str(cli_out), "--frames", "2", "--scene", "kitchen"])
    assert exc.value.code == 2
