"""The hand-size recipe's pieces: MobileNetV2 in torchvision's layout, a tiny real training run on crops
the runtime cut from generator frames, the feature baselines, and an export that runs in the size stage."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the training code needs torch (pip install -e '.[train]')")

from train.size.data import CropMaker, SizeArrays, build_frames, independent_frames  # noqa: E402
from train.size.features import FEATURE_NAMES, chain_length  # noqa: E402
from train.size.models import MobileNetV2, SizeNet, _make_divisible  # noqa: E402
from train.size.train import LinearSize, SizeTrainConfig, SkeletonSize, predict, train_sizenet  # noqa: E402


@pytest.fixture(scope="module")
def arrays() -> SizeArrays:
    return build_frames(independent_frames(10, seed=5, n_subjects=50, subject_offset=10_000), CropMaker())


def test_mobilenet_v2_has_torchvision_layout_and_width():
    m = MobileNetV2(num_classes=1000, width_mult=1.0)
    sd = m.state_dict()
    # torchvision.models.mobilenet_v2(): 3.5 M parameters, these names and shapes
    assert sum(p.numel() for p in m.parameters()) == 3_504_872
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # t=1: no expansion layer
    assert sd["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert sd["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)
    half = MobileNetV2(num_classes=2, width_mult=0.5, in_channels=1)
    assert half.features[0][0].weight.shape == (_make_divisible(16), 1, 3, 3)
    assert half.classifier[1].weight.shape == (2, 1280)


def test_sizenet_outputs_millimetres_and_letterboxes():
    net = SizeNet(mean_mm=(190.0, 85.0), sd_mm=(10.0, 5.0), input_size=96).eval()
    crop = torch.ones(2, 1, 64, 64)  # all background
    with torch.inference_mode():
        x = net.prepare(crop)
        out = net(crop)
        assert x.shape == (2, 1, 96, 96) and float(x.abs().max()) == 0.0  # background is zero (the seed's)
        assert out.shape == (2, 2)
        assert torch.allclose(out, net.forward_normalized(crop) * net.sd_mm + net.mean_mm)


def test_crops_and_features_come_from_the_runtime(arrays):
    assert len(arrays) == 10 and arrays.found.sum() >= 8
    assert arrays.crop.shape[1:] == (64, 64)  # the pose engine's crop
    assert (arrays.subject >= 10_000).all()  # training subjects never collide with test ids
    ok = arrays.found & np.isfinite(arrays.features).all(1)
    f = arrays.features[ok]
    # the hand's metric extent is a hand's, not a pixel count
    assert (f[:, FEATURE_NAMES.index("extent_major_mm")] > 60).all()
    assert (f[:, FEATURE_NAMES.index("extent_major_mm")] < 320).all()
    j = np.zeros((21, 3))
    j[[9, 10, 11, 12], 1] = [90.0, 130.0, 160.0, 180.0]
    assert chain_length(j, (0, 9, 10, 11, 12)) == pytest.approx(180.0)


def test_a_tiny_training_run_exports_and_runs_in_the_size_stage(arrays, tmp_path):
    import engines
    from engines.export import export_onnx
    from stream.size.stage import SizeStage
    from stream.stages import FrameState

    cfg = SizeTrainConfig(steps=3, batch_size=4, log_every=0, width_mult=0.35)
    net, info = train_sizenet(cfg, arrays)
    assert info["steps"] == 3 and np.isfinite(info["mean_mm"]).all()
    pred = predict(net, arrays)
    assert pred.shape == (10, 2) and np.isfinite(pred[arrays.found]).all()
    assert np.isnan(pred[~arrays.found]).all()
    lin, sk = LinearSize.fit(arrays), SkeletonSize.fit(arrays)
    assert np.isfinite(lin.predict(arrays)[arrays.found]).all()
    assert 1.0 < sk.width_ratio < 2.0  # palm width is wider than the MCP joint centres' span
    crops = arrays.crop[arrays.found][:4, None]
    path = export_onnx(
        net, tmp_path, "size", (1, 1, 64, 64),
        {"version": "0.0.1", "task": "hand_size",
         "preprocessing": {"input": "depth", "crop_size": 64, "cube_mm": 300.0}},
        parity_inputs=crops, input_names=("crop",), output_names=("size_mm",),
    )  # fmt: skip
    eng = engines.load_engine(path, backend="onnxruntime")
    stage = SizeStage(eng)
    from stream.sources.synthetic import SyntheticSource
    from stream.stages import PreprocessStage

    pre = PreprocessStage(cube_mm=300.0, crop_size=64)
    for f in SyntheticSource(n_frames=3, seed=1):
        st = FrameState(f)
        pre.run(st)
        stage.run(st)
        if st.crop is not None:
            with torch.inference_mode():
                ref = net(torch.from_numpy(st.crop.depth[None, None].copy())).numpy()[0]
            assert st.fields["hand_size_frame_mm"] == pytest.approx(ref, abs=1e-3)


def test_init_continues_from_a_checkpoint(arrays, tmp_path):
    cfg = SizeTrainConfig(steps=2, batch_size=4, log_every=0, width_mult=0.35, seed=3)
    net, _ = train_sizenet(cfg, arrays)
    ck = tmp_path / "c.pt"
    torch.save(
        {"state_dict": net.state_dict(), "quantities": ["length", "width"], "width_mult": 0.35,
         "mean_mm": net.mean_mm.tolist(), "sd_mm": net.sd_mm.tolist()},
        ck,
    )  # fmt: skip
    again, _ = train_sizenet(SizeTrainConfig(steps=1, batch_size=4, log_every=0, width_mult=0.35, lr=0.0,
                                             weight_decay=0.0, init=str(ck)), arrays)  # fmt: skip
    # lr 0: the weights are the checkpoint's; the label normalisation comes from the checkpoint too
    for (k, a), b in zip(net.named_parameters(), again.parameters()):
        assert torch.equal(a, b), k
    assert torch.equal(again.mean_mm, net.mean_mm) and torch.equal(again.sd_mm, net.sd_mm)
    with pytest.raises(ValueError):
        train_sizenet(SizeTrainConfig(steps=1, width_mult=0.5, init=str(ck)), arrays)
