"""`handstream train detector` (train/recipes/detector.py) end to end on a handful of frames: it generates and caches its data, trains in
NHWC memory, and saves and exports a model in the default NCHW layout that ONNX Runtime runs like torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train.recipes.detector import main as train_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("channels_last", [True, False])
def test_train_detector_recipe_runs_saves_and_exports(tmp_path, channels_last):
    data, runs, out = tmp_path / "data", tmp_path / "runs", tmp_path / "engines"
    argv = ["--frames", "8", "--val-frames", "4", "--batch", "4", "--minutes", "0.02", "--threads", "1"]
    argv += ["--data-dir", str(data), "--runs", str(runs), "--out", str(out)]
    if not channels_last:
        argv.append("--no-channels-last")
    assert train_detector(argv) == 0
    assert len(list(data.glob("*.npz"))) == 2  # train and validation frames, cached
    history = json.loads((runs / "history.json").read_text())
    assert history and history[-1]["step"] >= 1
    ck = torch.load(runs / "last.pt", weights_only=False)
    convs = [v for v in ck["state_dict"].values() if v.dim() == 4]
    assert convs and all(v.is_contiguous() for v in convs)  # saved NCHW whatever it trained in
    manifest = json.loads((out / "detector.json").read_text())
    assert manifest["training"]["steps"] == history[-1]["step"]
    # precise BN after training: one pass over the 8 training frames in batches of 4
    assert manifest["training"]["bn_stats_batches"] == 2
    from stream.preprocess.detect import HandDetector

    det = HandDetector(out / "detector.onnx")
    res = det.run(np.full((240, 320), 600, np.uint16))
    assert res.heatmap.shape == res.mask_logits.shape and np.isfinite(res.heatmap).all()


def test_targets_mark_both_hands_and_leave_held_objects_and_arms_background():
    """The detector's targets on close-range two-hand frames (egocentric, a held object in several): a
    heatmap peak on each palm of a hand at least 40 % visible, none elsewhere, and no mask on cells that show
    only the held object, the forearms or the sleeve -- what the detector put the hand on before."""
    from stream.frames import KNOWN_CAMERAS
    from stream.preprocess.detect import find_peaks
    from stream.synth import HandSynthesizer, SceneConfig
    from stream.synth.scene import M_ARM, M_ARM2, M_BODY
    from train.eval_segmentation import _Alone
    from train.recipes.detector import INPUT_WH, POS_VISIBILITY, frame_targets

    cam = KNOWN_CAMERAS["d435_320x240"]
    scene = SceneConfig(camera=cam, color=False, scene_kind="egocentric", two_hands=True)
    syn = HandSynthesizer(scene, 7)
    alone = _Alone(cam.scaled(*INPUT_WH))
    cells = (cam.height // 30, cam.width // 40)
    held_cells = both = 0
    for k in (1, 5, 6, 8):  # both hands >= 40 % visible, a held object in view
        s = syn.sample_at(k)
        x, hm, w, mk, info, hard = frame_targets(s, cam, alone)
        assert x.shape == INPUT_WH[::-1] and hm.shape == mk.shape == w.shape == hard.shape == (30, 40)
        visible = [h for h in info if h[3] > 0 and h[2] >= POS_VISIBILITY]
        both += len(visible) == 2
        peaks = find_peaks(hm, 0.5, 4)
        assert len(peaks) == len(visible)
        for h in visible:
            assert hm[int(round(h[1])), int(round(h[0]))] == pytest.approx(1.0)
            assert any(abs(p[0] - h[0]) <= 1 and abs(p[1] - h[1]) <= 1 for p in peaks)
        held = s.frame.meta["held_material"]
        assert held >= 0
        # per output cell: the share of measured pixels that show the held object or an arm / the sleeve
        d = s.frame.depth_mm > 0
        not_hand = np.isin(s.material, (held, M_ARM, M_ARM2, M_BODY)) & d
        share = not_hand.reshape(30, cells[0], 40, cells[1]).mean(axis=(1, 3))
        only = share >= 0.99
        held_cells += int((s.material == held).reshape(30, cells[0], 40, cells[1]).all(axis=(1, 3)).sum())
        assert only.any() and (mk[only] == 0).all()
        # and the heatmap is background there, away from the palms' Gaussians
        far = only.copy()
        for h in visible:
            ys, xs = np.mgrid[0:30, 0:40]
            far &= (xs - h[0]) ** 2 + (ys - h[1]) ** 2 > 9.0
        assert (hm[far] < 0.02).all()
        # the hard-negative cells: all of a cell that shows only the held object, none of a hand-only one
        held_only = ((s.material == held) & d).reshape(30, cells[0], 40, cells[1]).all(axis=(1, 3))
        assert held_only.any() and (hard[held_only] == 255).all()
        assert (hard[mk == 255] == 0).all()
    assert both == 4 and held_cells > 0


def test_epoch_checkpoints_resume_extra_data_and_frozen_export(tmp_path):
    """Each epoch leaves a checkpoint to judge and a state to resume from; --extra-data adds a second cached
    frame set; a checkpoint of a fine-tuned engine (frozen identity BatchNorms) exports to the same
    function, its statistics not recomputed over training batches."""
    from stream.errors import InputError
    from stream.preprocess.detect import HandDetector
    from train.recipes.detector import DATA_VERSION

    data = tmp_path / "data"
    base = ["--frames", "8", "--val-frames", "4", "--batch", "4", "--threads", "1", "--data-dir", str(data)]
    a_runs, a_out = tmp_path / "a", tmp_path / "a_engine"
    assert train_detector([*base, "--minutes", "0.02", "--runs", str(a_runs), "--out", str(a_out)]) == 0
    first = json.loads((a_runs / "history.json").read_text())
    assert (a_runs / "resume.pt").is_file() and len(list(a_runs.glob("epoch-*.pt"))) == len(first)
    assert (
        train_detector([*base, "--minutes", "0.05", "--runs", str(a_runs), "--out", str(a_out), "--resume"])
        == 0
    )
    resumed = json.loads((a_runs / "history.json").read_text())
    assert resumed[: len(first)] == first and resumed[-1]["step"] > first[-1]["step"]

    # a second frame set (other seeds) beside the first
    b_runs = tmp_path / "b"
    assert train_detector([*base, "--train-seed", "3000", "--data-only", "--runs", str(b_runs)]) == 0
    extra = next(data.glob("train-*-8-3000*.npz"))
    argv = [
        *base,
        "--minutes",
        "0.01",
        "--runs",
        str(b_runs),
        "--out",
        str(b_runs),
        "--extra-data",
        str(extra),
    ]
    assert train_detector(argv) == 0
    assert json.loads((b_runs / "detector.json").read_text())["training"]["frames"] == 16
    # a set cached by an older data version (no `hard` map) is refused in one line that says so
    old = tmp_path / "old.npz"
    with np.load(extra) as z:
        np.savez(old, **{k: z[k] for k in z.files if k != "hard"})
    with pytest.raises(InputError, match=f"data version {DATA_VERSION} .*generate it again"):
        train_detector([*argv[:-1], str(old)])

    # fine-tune the exported engine; its last epoch's checkpoint exports to the same outputs
    c_runs, c_out, d_out = tmp_path / "c", tmp_path / "c_engine", tmp_path / "d_engine"
    argv = [*base, "--minutes", "0.02", "--runs", str(c_runs), "--out", str(c_out)]
    assert train_detector([*argv, "--init", str(a_out / "detector.onnx")]) == 0
    last = sorted(c_runs.glob("epoch-*.pt"))[-1]
    assert torch.load(last, weights_only=False)["batchnorm_frozen"]
    argv = [*base, "--minutes", "0", "--runs", str(tmp_path / "d"), "--out", str(d_out), "--init", str(last)]
    assert train_detector(argv) == 0
    manifest = json.loads((d_out / "detector.json").read_text())
    assert manifest["training"]["batchnorm_frozen"] and manifest["training"]["bn_stats_batches"] == 0
    depth = np.random.default_rng(0).integers(300, 900, (240, 320)).astype(np.uint16)
    c, d = HandDetector(c_out / "detector.onnx").run(depth), HandDetector(d_out / "detector.onnx").run(depth)
    np.testing.assert_allclose(c.heatmap, d.heatmap, atol=1e-5)
    np.testing.assert_allclose(c.mask_logits, d.mask_logits, atol=1e-4)


def test_mask_distillation_holds_the_masks_to_the_starting_model(tmp_path):
    """--distill-mask: the student's mask logits are pulled towards a frozen copy of the model it started
    from (no pull where they agree), and it needs --init."""
    from stream.errors import InputError
    from train.detector import create_detector
    from train.recipes.detector import distill_loss, mask_teacher

    torch.manual_seed(0)
    model = create_detector(width=8, deep=16)
    model.eval()
    teacher = mask_teacher(model, tmp_path / "start.onnx", torch.contiguous_format)
    assert not any(q.requires_grad for q in teacher.parameters())
    x = torch.rand(2, 1, 120, 160)
    logits = model(x)[1].detach().requires_grad_(True)
    distill_loss(logits, teacher, x).backward()
    assert logits.grad.abs().max() < 1e-6  # the same masks: nothing to pull
    moved = (logits.detach() + 2.0).requires_grad_(True)
    distill_loss(moved, teacher, x).backward()
    assert (moved.grad > 0).all()  # logits above the teacher's are pulled down
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the student trains on; the teacher keeps the start
    assert not torch.equal(next(model.parameters()), next(teacher.parameters()))
    with pytest.raises(InputError, match="needs --init"):
        mask_teacher(model, None, torch.contiguous_format)

    data = tmp_path / "data"
    base = ["--frames", "8", "--val-frames", "4", "--batch", "4", "--threads", "1", "--data-dir", str(data)]
    a_out = tmp_path / "a_engine"
    assert (
        train_detector([*base, "--minutes", "0.01", "--runs", str(tmp_path / "a"), "--out", str(a_out)]) == 0
    )
    argv = [*base, "--minutes", "0.02", "--runs", str(tmp_path / "b"), "--out", str(tmp_path / "b_engine")]
    assert train_detector([*argv, "--init", str(a_out / "detector.onnx"), "--distill-mask", "1.0"]) == 0
    assert json.loads((tmp_path / "b" / "history.json").read_text())[-1]["step"] >= 1


def test_widened_context_keeps_the_function_and_trains_its_new_channels(tmp_path):
    """widen_context grows the context channels of the shipped engine with the same outputs; the new
    channels then learn (the lateral weights that read them start at zero and move); --widen-deep exports
    a wider engine from an --init and refuses to shrink or to run without one."""
    from engines.registry import DEFAULT_DIR
    from stream.errors import InputError
    from stream.preprocess.detect import HandDetector
    from train.detector import create_detector, freeze_batchnorm, load_folded_onnx, widen_context

    shipped = DEFAULT_DIR / "detector.onnx"
    model = create_detector(width=16, deep=48, depth_head=True)
    load_folded_onnx(model, shipped)
    model.eval()
    wide = widen_context(model, 64).eval()
    assert wide.lateral.in_channels == 64 and wide.context[0].body[1][0].weight.shape[:2] == (64, 64)
    x = torch.rand(2, 1, 120, 160)
    with torch.no_grad():
        for a, b in zip(model(x), wide(x)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    wide.train()
    freeze_batchnorm(wide)
    opt = torch.optim.SGD(wide.parameters(), lr=1e-3)
    heat, mask, depth = wide(x)
    (heat.mean() + mask.mean() + depth.mean()).backward()
    opt.step()
    assert wide.lateral.weight[:, 48:].abs().sum() > 0  # the new channels are read after one step
    with pytest.raises(ValueError, match="fewer"):
        widen_context(model, 32)

    data = tmp_path / "data"
    base = ["--frames", "8", "--val-frames", "4", "--batch", "4", "--threads", "1", "--data-dir", str(data)]
    out = tmp_path / "engine"
    argv = [*base, "--minutes", "0.01", "--runs", str(tmp_path / "r"), "--out", str(out)]
    assert train_detector([*argv, "--init", str(shipped), "--widen-deep", "64"]) == 0
    manifest = json.loads((out / "detector.json").read_text())
    assert manifest["training"]["model_kwargs"]["deep"] == 64
    depth_mm = np.random.default_rng(0).integers(300, 900, (240, 320)).astype(np.uint16)
    assert HandDetector(out / "detector.onnx").run(depth_mm).heatmap.shape == (30, 40)
    with pytest.raises(InputError, match="needs --init"):
        train_detector([*argv, "--widen-deep", "64"])
    with pytest.raises(InputError, match="fewer channels"):
        train_detector([*argv, "--init", str(shipped), "--widen-deep", "32"])


def test_hard_negative_weight_counts_object_and_forearm_cells_more():
    """--hard-negative-weight K: the heatmap loss weight of a cell grows with the share of it that shows
    objects or forearms (K on a cell that shows only them), and ignored cells stay ignored."""
    from train.recipes.detector import _batch

    n, hw = 2, (30, 40)
    data = {
        "x": np.zeros((n, 120, 160), np.float16),
        "heat": np.zeros((n, *hw), np.float16),
        "weight": np.ones((n, *hw), np.uint8),
        "mask": np.zeros((n, *hw), np.uint8),
        "info": np.zeros((n, 2, 5), np.float32),
        "hard": np.zeros((n, *hw), np.uint8),
    }
    data["hard"][0, 3, 4], data["hard"][0, 5, 6] = 255, 51
    data["weight"][1, 3, 4], data["hard"][1, 3, 4] = 0, 255
    idx = np.arange(n)
    plain = _batch(data, idx, np.random.default_rng(0), False)[2][:, 0].numpy()
    assert (plain == data["weight"]).all()
    w = _batch(data, idx, np.random.default_rng(0), False, 4.0)[2][:, 0].numpy()
    assert w[0, 3, 4] == pytest.approx(4.0) and w[0, 5, 6] == pytest.approx(1.6) and w[0, 0, 0] == 1.0
    assert w[1, 3, 4] == 0.0
