"""Training toolkit: a few optimisation steps lower the loss, checkpoints resume, augmentation keeps labels
on the image, the dataset loaders cut crops whose labels map back exactly, the search shrinks ranges."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import write_toy_config
from train.augment import AugmentConfig, apply_transform, augment_batch
from train.data import LabelledFrame, PoseArrays, folder_frames, make_crops
from train.hpo import random_search, shrink_ranges
from train.trainer import TrainConfig, load_trained, pose_loss, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blob_arrays(n=96, size=32, joints=2, seed=0) -> PoseArrays:
    """Crops with one disc whose centre/depth are the joints: a learnable toy problem."""
    rng = np.random.default_rng(seed)
    depth = np.ones((n, size, size), np.float32)
    j = np.zeros((n, joints, 3), np.float32)
    for i in range(n):
        x, y = rng.uniform(-0.5, 0.5, 2)
        z = rng.uniform(-0.3, 0.3)
        col, row = (x + 1) / 2 * size - 0.5, (y + 1) / 2 * size - 0.5
        cv2.circle(depth[i], (int(round(col)), int(round(row))), 5, float(z), -1)
        j[i, :] = (x, y, z)
    return PoseArrays(depth, j, np.zeros((n, 3)), j * 125.0, 250.0, {"toy": True})


def _toy_config(tmp_path, name: str, **overrides) -> TrainConfig:
    """A small AdamW run on the toy blobs, quiet and single-threaded; tests override what they check."""
    kw = dict(
        model="compact_gap",
        model_kwargs={"fc_width": 32},
        optimizer="adamw",
        lr=0.01,
        batch_size=16,
        epochs=4,
        out_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    return TrainConfig(name=name, **{**kw, **overrides})


def test_loss_is_eq_4_14():
    pred = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    target = torch.zeros(1, 6)
    assert float(pose_loss(pred, target)) == pytest.approx(3.0 / (2 * 2))


def test_few_steps_lower_the_loss_and_resume(tmp_path):
    data = _blob_arrays()
    cfg = TrainConfig(
        name="toy",
        model="compact_gap",
        model_kwargs={"fc_width": 32},
        lr=0.05,
        momentum=0.9,
        batch_size=16,
        epochs=4,
        out_dir=str(tmp_path),
        progress=False,
        seed=1,
        threads=1,  # 2 threads on a busy 2-core machine are ~10x slower than 1 for this toy net
    )
    with torch.no_grad():
        model0 = __import__("train.models", fromlist=["x"]).create_model(
            "compact_gap", num_joints=2, input_size=32, fc_width=32
        )
    torch.manual_seed(1)
    res = train(cfg, data, data)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.best_val_loss < losses[0]
    assert (tmp_path / "toy" / "config.json").is_file() and (tmp_path / "toy" / "tb").is_dir()
    assert json.loads((tmp_path / "toy" / "config.json").read_text())["model"] == "compact_gap"
    model, meta = load_trained(res.best_checkpoint)
    assert meta["crop_size"] == 32 and meta["num_joints"] == 2 and meta["cube_mm"] == 250.0
    x = torch.from_numpy(data.depth[:4, None])
    assert model(x).shape == (4, 6) and model0 is not None
    # resume: continues after the last epoch with the saved optimizer/scheduler state
    from dataclasses import replace

    res2 = train(replace(cfg, epochs=6), data, data, resume=True)
    assert [h["epoch"] for h in res2.history] == [1, 2, 3, 4, 5, 6]


def test_augmentation_moves_labels_with_the_image():
    size = 64
    depth = torch.ones(1, 1, size, size)
    joints = torch.tensor([[[0.3, -0.2, 0.1], [-0.4, 0.35, -0.2]]])
    for x, y, z in joints[0].tolist():
        c, r = int((x + 1) / 2 * size), int((y + 1) / 2 * size)
        depth[0, 0, r - 1 : r + 2, c - 1 : c + 2] = z
    d2, j2 = apply_transform(
        depth, joints, torch.tensor([0.6]), torch.tensor([1.1]), torch.tensor([[0.05, -0.04, 0.02]])
    )
    for x, y, z in j2[0].tolist():
        c, r = (x + 1) / 2 * size - 0.5, (y + 1) / 2 * size - 0.5
        patch = d2[0, 0, int(round(r)) - 1 : int(round(r)) + 2, int(round(c)) - 1 : int(round(c)) + 2]
        assert float((patch - z).abs().min()) < 1e-5  # the dot is where the label went, at the label's depth
    assert float(d2.max()) == 1.0 and int((d2 < 1).sum()) >= 10  # background stays background
    cfg = AugmentConfig(noise_std=0.0)
    d3, j3 = augment_batch(depth.repeat(3, 1, 1, 1), joints.repeat(3, 1, 1).reshape(3, -1), cfg)
    assert d3.shape == (3, 1, size, size) and j3.shape == (3, 6)
    assert not torch.allclose(j3[0], j3[1])


def test_folder_dataset_and_crops_invert(tmp_path):
    from stream.frames import KNOWN_CAMERAS
    from stream.geometry import xyz_to_uvd

    intr = KNOWN_CAMERAS["d435_320x240"]
    joints = np.array([[0.0, 0.0, 500.0], [30.0, -20.0, 520.0], [-25.0, 40.0, 480.0]])
    depth = np.zeros((240, 320), np.uint16)
    uvd = xyz_to_uvd(joints, intr)
    for u, v, d in uvd:
        cv2.circle(depth, (int(u), int(v)), 6, int(d), -1)
    cv2.imwrite(str(tmp_path / "f0.png"), depth)
    (tmp_path / "camera.json").write_text(json.dumps({"name": "d435_320x240"}))
    (tmp_path / "labels.txt").write_text("f0.png " + " ".join(f"{v:.3f}" for v in joints.ravel()) + "\n")
    frames = list(folder_frames(tmp_path))
    assert len(frames) == 1 and frames[0].depth_mm.dtype == np.uint16
    arr = make_crops(frames, size=48, cube_mm=250.0, centre="joints")
    assert arr.depth.shape == (1, 48, 48) and float(arr.depth.min()) < 0.5
    back = arr.joints[0] * 125.0 + arr.com_xyz_mm[0]
    np.testing.assert_allclose(back, joints, atol=1e-3)
    p = tmp_path / "c.npz"
    arr.save(p)
    again = PoseArrays.load(p)
    np.testing.assert_allclose(again.joints, arr.joints)
    assert np.abs(again.depth - arr.depth).max() < 2e-3  # stored as float16


def test_jittered_crops_keep_exact_labels():
    from stream.frames import KNOWN_CAMERAS

    intr = KNOWN_CAMERAS["d435_320x240"]
    joints = np.array([[10.0, 5.0, 450.0], [40.0, -30.0, 470.0]])
    depth = np.full((240, 320), 460, np.uint16)
    fr = LabelledFrame(depth, intr, joints, np.ones((240, 320), bool))
    arr = make_crops([fr], size=32, cube_mm=250.0, centre="joints", jitter_mm=20.0, crops_per_frame=3, seed=3)
    assert len(arr) == 3 and len({tuple(c) for c in arr.com_xyz_mm.round(3)}) == 3
    for k in range(3):
        np.testing.assert_allclose(arr.joints[k] * 125.0 + arr.com_xyz_mm[k], joints, atol=1e-3)


def test_nyu_raw_loader_needs_mat(tmp_path):
    from stream.errors import InputError
    from train.data import nyu_raw_frames

    with pytest.raises(InputError, match="joint_data.mat"):
        list(nyu_raw_frames(tmp_path))


def test_nyu_raw_layout_tiny(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason="scipy writes/reads NYU's joint_data.mat")
    from train.data import nyu_raw_frames
    from train.nyu import NYU_36_TO_14

    uvd = np.zeros((3, 2, 36, 3))
    uvd[..., 0], uvd[..., 1], uvd[..., 2] = 300.0, 250.0, 700.0
    uvd[0, :, :, 0] += np.arange(36)  # frontal camera: u encodes the joint index
    scipy_io.savemat(tmp_path / "joint_data.mat", {"joint_uvd": uvd})
    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 1], img[..., 0] = 700 >> 8, 700 & 255
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / f"depth_1_{i:07d}.png"), img)
    frames = list(nyu_raw_frames(tmp_path))
    assert len(frames) == 2 and frames[0].joints_xyz_mm.shape == (14, 3)
    assert int(frames[0].depth_mm[10, 10]) == 700
    x = frames[0].joints_xyz_mm[:, 0]
    expected_u = 300.0 + np.array(NYU_36_TO_14)
    np.testing.assert_allclose(x, (expected_u - 320.0) * 700.0 / 588.03, atol=1e-6)


def test_shrink_ranges_and_search():
    trials = [({"lr": 10.0**-k, "dropout": 0.01 * k}, float(abs(k - 2))) for k in range(1, 6)]
    new = shrink_ranges(trials, {"lr": (1e-6, 1.0), "dropout": (0.0, 0.1)}, keep_fraction=0.6)
    assert new["lr"] == pytest.approx((1e-3, 1e-1)) and new["dropout"] == pytest.approx((0.01, 0.03))
    res = random_search(
        lambda p: (np.log10(p["lr"]) + 2) ** 2 + (p["dropout"] - 0.03) ** 2,
        rounds=3,
        trials_per_round=12,
        seed=0,
    )
    assert len(res.rounds) == 3
    assert abs(np.log10(res.best_params["lr"]) + 2) < 0.3
    lo, hi = res.rounds[-1]["ranges"]["lr"]
    assert hi / lo < 100  # the range shrank from (1e-3, 1e-1)
    tpe = random_search(lambda p: p["lr"], rounds=1, trials_per_round=5, sampler="tpe")
    assert tpe.best_value < 0.1


def test_cli_train_pose_from_config(tmp_path, capsys):
    from stream.errors import InputError
    from train.cli_train import main as train_main

    data = _blob_arrays(n=32)
    data.save(tmp_path / "toy.npz")
    cfg_path = write_toy_config(tmp_path, tmp_path / "toy.npz", name="cli", val_fraction=0.25)
    assert train_main(["pose", "--config", str(tmp_path / "cfg.json")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["epochs"] == 1 and (tmp_path / "runs" / "cli" / "best.pt").is_file()
    (tmp_path / "bad.json").write_text(json.dumps({**json.loads(cfg_path.read_text()), "learning_rate": 1}))
    with pytest.raises(InputError, match="unknown config keys"):
        train_main(["pose", "--config", str(tmp_path / "bad.json")])


def test_cosine_schedule_values_and_a_run_that_learns(tmp_path):
    from stream.errors import InputError
    from train.trainer import cosine_lr

    # hand-computed: warm-up starts at 10 % of lr, the peak is lr, halfway through the cosine is the mean
    assert cosine_lr(1.0, 0.0, 0.0) == pytest.approx(0.1)
    assert cosine_lr(1.0, 0.0, 0.03) == pytest.approx(1.0)
    assert cosine_lr(1.0, 0.0, 0.03 + 0.97 / 2) == pytest.approx(0.5)
    assert cosine_lr(1.0, 1e-4, 1.0) == pytest.approx(1e-4)
    data = _blob_arrays()
    cfg = _toy_config(tmp_path, "toy_cos", schedule="cosine")
    res = train(cfg, data, data)
    lrs = [h["lr"] for h in res.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * cfg.lr  # annealed over the budget
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    with pytest.raises(InputError, match="schedule"):
        train(TrainConfig(name="bad", schedule="step", out_dir=str(tmp_path), progress=False), data, data)


def test_smooth_l1_loss_values_and_a_run_that_learns(tmp_path):
    from stream.errors import InputError
    from train.trainer import smooth_l1_pose_loss

    # hand-computed Huber with beta 0.02: |d| = 0.01 -> 0.5 d^2 / beta = 0.0025; |d| = 1 -> 1 - 0.01 = 0.99
    pred = torch.tensor([[0.01, 1.0]])
    assert float(smooth_l1_pose_loss(pred, torch.zeros(1, 2))) == pytest.approx((0.0025 + 0.99) / 2)
    data = _blob_arrays()
    cfg = _toy_config(
        tmp_path,
        "toy_l1",
        model="compact_s_canon",
        model_kwargs={"fc_width": 32, "input_size": 32},
        schedule="cosine",
        loss="smooth_l1",
    )
    res = train(cfg, data, data)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    model, meta = load_trained(res.best_checkpoint)
    assert meta["model_name"] == "compact_s_canon"
    with pytest.raises(InputError, match="loss"):
        train(TrainConfig(name="bad", loss="l3", out_dir=str(tmp_path), progress=False), data, data)


def test_init_from_a_local_checkpoint(tmp_path):
    from stream.errors import InputError

    data = _blob_arrays()
    first = train(_toy_config(tmp_path, "a", epochs=1), data, data)
    src, _ = load_trained(first.best_checkpoint)
    # lr 0 and no weight decay: the weights after a run are exactly the ones it started from
    ck = str(first.best_checkpoint)
    second = train(_toy_config(tmp_path, "b", epochs=1, lr=0.0, init_from=ck), data, data)
    got, _ = load_trained(second.best_checkpoint)
    for (k, a), b in zip(src.state_dict().items(), got.state_dict().values()):
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(a, b), k
    with pytest.raises(InputError, match="holds"):
        train(_toy_config(tmp_path, "c", epochs=1, model="compact_s", init_from=ck), data, data)
    with pytest.raises(InputError, match="no checkpoint"):
        train(_toy_config(tmp_path, "d", epochs=1, init_from=str(tmp_path / "none.pt")), data, data)
    with pytest.raises(InputError, match="both given"):
        train(_toy_config(tmp_path, "e", epochs=1, init_from=ck, init_body_from=ck), data, data)
    not_ck = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_ck)
    with pytest.raises(InputError, match="init_from: .* is not a handstream training checkpoint"):
        train(_toy_config(tmp_path, "f", epochs=1, init_from=str(not_ck)), data, data)


def test_channels_last_computes_the_same_model(tmp_path):
    """NHWC memory is a speed choice only. In float64 the same weights give the same outputs and gradients
    (float32 differs by rounding that this toy problem's near-constant BN channels amplify to ~1e-4), and a
    run really stores its weights NHWC (else the flag would silently do nothing) and still learns."""
    import copy

    from train.models import create_model
    from train.trainer import smooth_l1_pose_loss

    data = _blob_arrays(n=48)
    torch.manual_seed(0)
    nchw = create_model("compact_s_canon", num_joints=2, input_size=32, fc_width=32).train().double()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    x = torch.from_numpy(data.depth[:16, None]).double()
    y = torch.from_numpy(data.joints[:16].reshape(16, -1)).double()
    outs = []
    for m, xm in ((nchw, x), (nhwc, x.contiguous(memory_format=torch.channels_last))):
        out = m(xm)
        smooth_l1_pose_loss(out, y).backward()
        outs.append(out.detach())
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-10)
    for (k, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-8, atol=1e-10), k
    kw = dict(model="compact_s_canon", model_kwargs={"fc_width": 32, "input_size": 32}, epochs=3)
    runs = [train(_toy_config(tmp_path, f"cl{c}", channels_last=c, **kw), data, data) for c in (True, False)]
    assert runs[0].history[-1]["train_loss"] < runs[0].history[0]["train_loss"]
    states = [torch.load(r.best_checkpoint, weights_only=False)["model_state"] for r in runs]
    convs = [k for k, v in states[0].items() if v.dim() == 4]
    assert convs and all(states[1][k].is_contiguous() for k in convs)  # NCHW
    assert all(states[0][k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    assert any(states[0][k].stride() != states[1][k].stride() for k in convs)  # not a layout both satisfy


def test_recompute_bn_stats_is_the_plain_average_over_the_batches():
    """Precise BN: the running mean/variance become the average of the batches' statistics whatever they
    were before (so eval outputs stop depending on the last few training steps), the weights and the
    momentum are kept, and the model ends in eval mode."""
    from train.trainer import recompute_bn_stats

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 3, 3)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    bn = model[1]
    batches = [torch.randn(4, 1, 8, 8) * (1 + i) + i for i in range(5)]
    with torch.no_grad():
        feats = [conv(b) for b in batches]
    want_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    per_batch_var = [f.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for f in feats]
    want_var = torch.stack(per_batch_var).mean(0)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_" not in k}
    outs = []
    for junk in (0.0, 50.0):
        bn.running_mean.fill_(junk)
        bn.running_var.fill_(1.0 + junk)
        assert recompute_bn_stats(model, iter(batches)) == 5
        assert not model.training and bn.momentum == 0.1
        assert torch.allclose(bn.running_mean, want_mean, atol=1e-5)
        assert torch.allclose(bn.running_var, want_var, rtol=1e-4)
        outs.append(model(batches[0]).detach())
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_bn_stats(model, [])
