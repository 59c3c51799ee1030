"""The NYU protocol: (u, v, d) files -> mm, and the published means reproduced to 0.01 mm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.errors import InputError
from train.cli_eval import main as eval_main
from train.nyu import load_uvd_file, nyu_uvd_to_camera, nyu_uvd_to_xyz, read_nyu_depth_png

PUBLISHED = {
    "CVPR18_NYU_V2V_PoseNet.txt": 8.42,
    "ICCVW17_NYU_DeepPrior++.txt": 12.24,
    "ICCV15_NYU_Feedback.txt": 15.97,
}


def test_uvd_to_xyz_by_hand():
    uvd = np.array([[320.0 + 58.803, 240.0 - 58.707, 1000.0]])
    np.testing.assert_allclose(nyu_uvd_to_xyz(uvd), [[100.0, 100.0, 1000.0]], atol=1e-9)
    np.testing.assert_allclose(nyu_uvd_to_camera(uvd), [[100.0, -100.0, 1000.0]], atol=1e-9)


def test_loader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(InputError, match="42 numbers"):
        load_uvd_file(bad)
    bad.write_text("a b c\n")
    with pytest.raises(InputError):
        load_uvd_file(bad)
    with pytest.raises(InputError, match="no such file"):
        load_uvd_file(tmp_path / "missing.txt")


def test_cli_with_explicit_gt(tmp_path, capsys):
    gt = np.zeros((2, 14, 3))
    gt[..., 0], gt[..., 1], gt[..., 2] = 320.0, 240.0, 500.0
    pred = gt.copy()
    pred[0, :, 2] += 10.0  # every joint 10 mm deeper in frame 0
    np.savetxt(tmp_path / "gt.txt", gt.reshape(2, -1))
    np.savetxt(tmp_path / "pred.txt", pred.reshape(2, -1))
    assert eval_main(["nyu", str(tmp_path / "pred.txt"), "--gt", str(tmp_path / "gt.txt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mean_mm"] == pytest.approx(5.0)
    assert out["success_rate"]["20"] == 1.0 and len(out["per_joint_mm"]) == 14
    np.savetxt(tmp_path / "short.txt", pred[:1].reshape(1, -1))
    with pytest.raises(InputError, match="frames"):
        eval_main(["nyu", str(tmp_path / "short.txt"), "--gt", str(tmp_path / "gt.txt")])


@pytest.mark.parametrize("fname", list(PUBLISHED))
def test_published_means_reproduced(nyu_dir, fname, capsys):
    assert eval_main(["nyu", str(nyu_dir / fname), "--json"]) == 0  # default --gt from ../shared
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 8252
    assert abs(out["mean_mm"] - PUBLISHED[fname]) < 0.005  # rounds to the published value
    assert set(out["success_rate"]) == {"20", "40", "80"}
    assert out["success_rate"]["20"] < out["success_rate"]["40"] <= out["success_rate"]["80"] <= 1


def test_real_depth_png(nyu_dir):
    d = read_nyu_depth_png(nyu_dir / "depth_1_0000001.png")
    assert d.shape == (480, 640) and d.dtype == np.uint16
    gt = load_uvd_file(nyu_dir / "nyu_test_groundtruth_label.txt")[0]
    u, v = np.rint(gt[13, :2]).astype(int)  # palm centre: the sensor sees the palm near its label depth
    assert abs(float(d[v, u]) - gt[13, 2]) < 40
