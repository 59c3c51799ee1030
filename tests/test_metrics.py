"""Metrics on hand-computed cases; the module must not import torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from train.metrics import joint_errors_mm, mean_error_mm, per_joint_error_mm, success_rate, summary


def _case():
    gt = np.zeros((2, 2, 3))
    pred = gt.copy()
    pred[0, 0] = (3.0, 4.0, 0.0)  # 5 mm
    pred[0, 1] = (0.0, 0.0, 10.0)  # 10 mm
    pred[1, 0] = (1.0, 2.0, 2.0)  # 3 mm
    pred[1, 1] = (0.0, 30.0, 40.0)  # 50 mm
    return pred, gt


def test_errors_by_hand():
    pred, gt = _case()
    np.testing.assert_allclose(joint_errors_mm(pred, gt), [[5, 10], [3, 50]])
    np.testing.assert_allclose(per_joint_error_mm(pred, gt), [4, 30])
    assert mean_error_mm(pred, gt) == pytest.approx(17.0)
    assert mean_error_mm(pred[0, 0][None], gt[0, 0][None]) == pytest.approx(5.0)  # (J,3) frame


def test_success_rate_uses_max_joint_error():
    pred, gt = _case()  # frame maxima: 10 and 50 mm
    np.testing.assert_allclose(success_rate(pred, gt, [5, 10, 49.9, 50, 80]), [0, 0.5, 0.5, 1, 1])
    assert success_rate(pred, gt, 20.0) == 0.5
    s = summary(pred, gt)
    assert s["mean_mm"] == pytest.approx(17.0)
    assert s["success_rate"] == {"20": 0.5, "40": 0.5, "80": 1.0}
    assert s["success_curve"]["fraction"][9] == 0.0 and s["success_curve"]["fraction"][10] == 0.5


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        joint_errors_mm(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))


def test_metrics_and_nyu_do_not_import_torch():
    code = "import sys, train.metrics, train.nyu, train.cli_eval; print(any(k.startswith('torch') for k in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_written(tmp_path):
    pred, gt = _case()
    from train.metrics import plot_results

    png = tmp_path / "p.png"
    plot_results({"a": summary(pred, gt)}, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
