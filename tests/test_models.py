"""Every named network builds, runs forward at batch 1 and 2, and has the parameter count its table implies.

Expected counts are computed here from the seed's tables written out independently (not from
train.models' table). Full-size fc-4096 nets are counted on the meta device; real forward passes use the
table's conv bodies with a narrow head (fc width is a parameter), plus one full-size Depth-Net."""

from __future__ import annotations

import pytest
import torch

from train.models import (
    FUSIONS,
    MODEL_SPECS,
    FeatureFusion,
    count_params,
    create_model,
    list_models,
    model_info,
)

# Seed 003 Tables 4.1 / 4.2 transcribed independently: conv groups between pools, (filters, kernel).
TABLES = {
    "net1": [[(32, 3)], [(64, 3)], [(128, 3), (128, 3)]],
    "net2": [[(32, 3)], [(64, 3)], [(128, 3)] * 3],
    "net3": [[(32, 7)], [(64, 5)], [(128, 3)] * 3],
    "net4": [[(64, 3)], [(128, 3)], [(256, 3)] * 3],
    "net5": [[(32, 3)] * 2, [(64, 3)] * 2, [(128, 3)] * 3],
    "net6": [[(32, 3)] * 2, [(64, 3)] * 2, [(128, 3)] * 3, "nopool", [(128, 3)] * 2],
    "net7": [[(32, 3)], [(64, 3)], [(128, 3)] * 2, [(128, 3)] * 2],
    "net8": [[(32, 3)], [(64, 3)], [(128, 3)] * 2, [(128, 3)] * 2, [(128, 3)] * 2],
    "net9": [[(32, 3)], [(64, 3)], [(128, 3)] * 3, [(128, 3)] * 3],
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _convs(name):
    return [c for g in TABLES[name] if g != "nopool" for c in g]


def _pools(name):
    # every group is followed by a pool except Net6's last (marked by "nopool" before it)
    groups = [g for g in TABLES[name] if g != "nopool"]
    return len(groups) - (1 if "nopool" in TABLES[name] else 0)


def expected_params(name, in_ch=1, size=128, fc=4096, joints=21):
    total, ch = 0, in_ch
    for f, k in _convs(name):
        total += k * k * ch * f + f
        ch = f
    side = size // 2 ** _pools(name)
    flat = ch * side * side
    return total + flat * fc + fc + fc * fc + fc + fc * 3 * joints + 3 * joints


def test_pool_counts_match_the_tables():
    assert [_pools(n) for n in TABLES] == [3, 3, 3, 3, 3, 3, 4, 5, 4]
    assert [len(_convs(n)) for n in TABLES] == [4, 5, 5, 5, 7, 9, 6, 8, 8]


@pytest.mark.parametrize("name", list(TABLES))
def test_full_size_param_counts(name):
    assert model_info(name).params == expected_params(name)


def test_depthnet_is_net6_and_about_150m():
    assert model_info("Depth-Net").params == expected_params("net6")
    assert 145e6 < expected_params("net6") < 160e6
    assert model_info("rgbnet").params == expected_params("net6", in_ch=3)
    assert model_info("rgbdnet").params == expected_params("net6", in_ch=4)
    assert model_info("fusepred").params == expected_params("net6", 1) + expected_params("net6", 3)


@pytest.mark.parametrize("name", list(TABLES))
def test_table_bodies_forward_batch_1_and_2(name):
    torch.manual_seed(0)
    model = create_model(name, num_joints=14, input_size=128, fc_width=32).eval()
    assert sum(p.numel() for p in model.parameters()) == expected_params(name, fc=32, joints=14)
    with torch.no_grad():
        for b in (1, 2):
            y = model(torch.randn(b, 1, 128, 128))
            assert y.shape == (b, 42) and y.dtype == torch.float32
            assert float(y.abs().max()) <= 1.0


def test_full_depthnet_forward():
    model = create_model("depthnet").eval()  # 152 M parameters, fc-4096 as the seed
    assert sum(p.numel() for p in model.parameters()) == expected_params("net6")
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 128, 128)).shape == (1, 63)
        assert model(torch.zeros(2, 1, 128, 128)).shape == (2, 63)


@pytest.mark.parametrize("name", [n for n in MODEL_SPECS if n not in TABLES])
def test_every_other_named_model_forward(name):
    spec = MODEL_SPECS[name]
    size = 96 if name.startswith("compact") else 64
    model = create_model(name, input_size=size, fc_width=32).eval()
    with torch.no_grad():
        for b in (1, 2):
            y = model(torch.rand(b, spec.in_channels, size, size) * 2 - 1)
            assert y.shape == (b, 63)
            assert torch.isfinite(y).all()


def test_compact_params_and_head_choices():
    # compact_s at 96: stem 16 -> 48x48, four stride-2 stages -> 6x6x128 flattened into fc-256
    stem = 9 * 16 + 2 * 16
    blocks = 0
    ch = 16
    for c in (32, 32, 64, 64, 128, 128):
        blocks += 9 * ch + 2 * ch + ch * c + 2 * c
        ch = c
    head = 6 * 6 * 128 * 256 + 256 + 256 * 63 + 63
    assert model_info("compact_s").params == stem + blocks + head
    gap_head = 128 * 256 + 256 + 256 * 63 + 63
    assert model_info("compact_gap").params == stem + blocks + gap_head
    assert model_info("compact_s").params < 0.01 * model_info("net6").params


def test_compact_conv_params():
    # Net7 layout at widths 16-32-64-128, conv without bias + BatchNorm (2 params per channel), 64 -> 4x4
    total, ch = 0, 1
    for f in (16, 32, 64, 64, 128, 128):
        total += 9 * ch * f + 2 * f
        ch = f
    total += 4 * 4 * 128 * 512 + 512 + 512 * 63 + 63
    assert model_info("compact_conv").params == total


def _fusenet_expected(fusion, k, size=64, fc=16):
    convs = _convs("net6")
    total = 0
    for stream_in in (1, 3):
        ch = stream_in
        for f, kk in convs[:k]:
            total += kk * kk * ch * f + f
            ch = f
    d = convs[k - 1][0]
    ch = 2 * d if fusion == "cat" else d
    if fusion == "conv":
        total += 2 * d * d + d
    for f, kk in convs[k:]:
        total += kk * kk * ch * f + f
        ch = f
    flat = ch * (size // 8) ** 2
    return total + flat * fc + fc + fc * fc + fc + fc * 63 + 63


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusenet_every_layer_and_fusion(fusion):
    torch.manual_seed(0)
    x = torch.rand(2, 4, 64, 64)
    for k in range(1, 10):
        model = create_model("fusenet", input_size=64, fc_width=16, fusion=fusion, fuse_after=k).eval()
        assert sum(p.numel() for p in model.parameters()) == _fusenet_expected(fusion, k)
        with torch.no_grad():
            y1 = model(x)
            y2 = model(x[:, :1], x[:, 1:])  # the two-tensor form gives the same answer
            assert model(x[:1]).shape == (1, 63)
        assert y1.shape == (2, 63) and torch.allclose(y1, y2)
    with pytest.raises(ValueError):
        create_model("fusenet", fusion=fusion, fuse_after=10)


def test_fusion_functions_follow_equations_4_15_to_4_18():
    a = torch.tensor([1.0, -2.0, 3.0]).reshape(1, 3, 1, 1)
    b = torch.tensor([0.5, 5.0, -1.0]).reshape(1, 3, 1, 1)
    assert FeatureFusion("max", 3)(a, b).flatten().tolist() == [1.0, 5.0, 3.0]
    assert FeatureFusion("sum", 3)(a, b).flatten().tolist() == [1.5, 3.0, 2.0]
    # eq. 4.17, 1-based: y_2k = a_k, y_2k-1 = b_k  ->  0-based b0 a0 b1 a1 b2 a2
    assert FeatureFusion("cat", 3)(a, b).flatten().tolist() == [0.5, 1.0, 5.0, -2.0, -1.0, 3.0]
    conv = FeatureFusion("conv", 3)
    assert conv.conv.weight.shape == (3, 6, 1, 1)
    with torch.no_grad():
        expected = torch.einsum(
            "oi,i->o", conv.conv.weight[:, :, 0, 0], torch.tensor([0.5, 1, 5, -2, -1, 3.0])
        )
        expected += conv.conv.bias
    assert torch.allclose(conv(a, b).flatten(), expected)
    with pytest.raises(ValueError):
        FeatureFusion("mean", 3)


def test_fusepred_weights():
    torch.manual_seed(0)
    model = create_model("fusepred", input_size=32, fc_width=8).eval()
    x = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        d, r = model.depth_net(x[:, :1]), model.rgb_net(x[:, 1:])
        assert torch.allclose(model(x), 0.5 * d + 0.5 * r)
        err_d = torch.full((63,), 1.0)
        err_r = torch.full((63,), 3.0)
        err_r[0] = 1.0
        model.set_weights_from_errors(err_d, err_r)
        assert model.w_depth[0] == pytest.approx(0.5) and model.w_depth[1] == pytest.approx(0.75)
        assert torch.allclose(model(x), model.w_depth * d + (1 - model.w_depth) * r)


def test_names_and_listing():
    assert create_model("Net-6", input_size=32, fc_width=4).__class__.__name__ == "DepthNetFamily"
    with pytest.raises(KeyError, match="unknown model"):
        create_model("net10")
    infos = list_models()
    assert [i.name for i in infos] == list(MODEL_SPECS)
    assert all(i.params > 0 and i.output_shape == (1, 63) for i in infos)


def test_mean_pair_averages_its_two_nets(tmp_path):
    """compact_ml_canon_pair (score fusion at 0.5/0.5) predicts the mean of its members, and
    `handstream train pose pair` builds it from two trained checkpoints without changing a weight."""
    from stream.errors import InputError
    from train.recipes import pose as td
    from train.trainer import load_trained

    torch.manual_seed(0)
    kw = {"num_joints": 21, "input_size": 64, "fc_width": 64, "dropout": 0.0}
    paths = []
    for name in ("compact_m_canon", "compact_l_canon"):
        net = create_model(name, **kw)
        p = tmp_path / f"{name}.pt"
        meta = {"model_name": name, "model_kwargs": kw, "crop_size": 64, "cube_mm": 300.0, "num_joints": 21}
        torch.save({"model_state": net.state_dict(), **meta}, p)
        paths.append(p)
    out = ["--checkpoints", str(tmp_path / "checkpoints")]
    assert td.main(["pair", "--a", str(paths[0]), "--b", str(paths[1]), "--name", "pair", *out]) == 0
    pair, meta = load_trained(tmp_path / "checkpoints" / "pair.pt")
    assert meta["model_name"] == "compact_ml_canon_pair"
    a, _ = load_trained(paths[0])
    b, _ = load_trained(paths[1])
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(pair(x), 0.5 * (a(x) + b(x)))
    assert count_params(pair) == count_params(a) + count_params(b)
    with pytest.raises(InputError):  # the members must be the pair's two models, in order
        td.main(["pair", "--a", str(paths[1]), "--b", str(paths[0]), *out])


def test_soft_argmax_joints_reads_out_cell_centres_and_offsets():
    from train.models import soft_argmax_joints

    h = w = 4
    logits = torch.full((1, 2, h, w), -1e4)
    logits[0, 0, 1, 3] = 0.0  # joint 0: all weight on row 1, col 3
    offsets = torch.zeros(1, 2, 3, h, w)
    offsets[0, 0, 2] = 0.25  # z everywhere
    # joint 1: uniform weights over the grid, dx = 0.1 everywhere -> mean of cell centres (0, 0) + (0.1, 0)
    logits[0, 1] = 0.0
    offsets[0, 1, 0] = 0.1
    y = soft_argmax_joints(logits, offsets).view(2, 3)
    # cell centres on the crop's pixel convention: (i + 0.5) / 4 * 2 - 1 -> -0.75, -0.25, 0.25, 0.75
    torch.testing.assert_close(y[0], torch.tensor([0.75, -0.25, 0.25]))
    torch.testing.assert_close(y[1], torch.tensor([0.1, 0.0, 0.0]))


def test_dense_compact_params_and_taps():
    """compact_l_dense_canon: compact_l_canon's body, 1x1 laterals (64) from the last map of each scale
    (48 ch @1/4, 96 @1/8, 160 @1/16, 256 @1/32), one depthwise-separable 64->64 block, 1x1 to 4J maps."""

    def ds(cin, cout):
        return 9 * cin + 2 * cin + cin * cout + 2 * cout

    body, ch = 9 * 24 + 2 * 24, 24
    for c in (32, 48, 64, 96, 96, 128, 160, 160, 256):
        body += ds(ch, c)
        ch = c
    laterals = sum(c * 64 + 64 for c in (48, 96, 160, 256))
    head = ds(64, 64) + 64 * 84 + 84
    assert model_info("compact_l_dense_canon", input_size=64).params == body + laterals + head
    net = create_model("compact_l_dense_canon", input_size=64).net
    assert net.taps == (4, 7, 10, 11)  # indices in `features`: stem is 0-2, blocks from 3
    assert model_info("compact_l_dense_canon").params < model_info("compact_l_canon").params


def test_dense_warm_starts_from_a_compact_body(tmp_path):
    """TrainConfig.init_body_from copies every same-name, same-shape tensor (the body) from another model's
    checkpoint: the body then computes exactly what the donor's does; a donor sharing nothing is an error."""
    from stream.errors import InputError
    from train.trainer import load_matching_weights

    torch.manual_seed(0)
    donor = create_model("compact_l_canon", input_size=64, fc_width=32).eval()
    p = tmp_path / "donor.pt"
    torch.save({"model_state": donor.state_dict(), "model_name": "compact_l_canon"}, p)
    dense = create_model("compact_l_dense_canon", input_size=64).eval()
    n, total = load_matching_weights(dense, p)
    assert n == len(donor.net.features.state_dict()) and n < total
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(dense.net.features(x), donor.net.features(x))
    other = tmp_path / "other.pt"
    torch.save({"model_state": create_model("net1", input_size=32, fc_width=4).state_dict()}, other)
    with pytest.raises(InputError, match="no tensor"):
        load_matching_weights(dense, other)
    not_ck = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_ck)
    with pytest.raises(InputError, match="init_body_from: .* is not a handstream training checkpoint"):
        load_matching_weights(dense, not_ck)
