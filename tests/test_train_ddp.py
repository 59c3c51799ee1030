"""Training under torchrun (PyTorch DDP, gloo on CPU): two ranks end a step with identical weights, equal to
one process's step on the two ranks' batches concatenated; `train` itself runs on two ranks with only rank 0
writing the run's files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="DDP training needs torch (the `train` extra)")
dist = pytest.importorskip("torch.distributed")

from tests.conftest import REPO, write_toy_config, write_toy_crops  # noqa: E402
from train.trainer import DistContext, epoch_order, local_batch_size, pose_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS` (a script, or `-m module ...`) from the repository."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run(cmd + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_rank_ddp_step_matches_one_process_on_the_concatenated_batch(tmp_path):
    write_toy_crops(tmp_path / "crops.npz", n=32)
    _torchrun(str(REPO / "tests" / "ddp_worker.py"), str(tmp_path), str(tmp_path / "crops.npz"))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["world_size"] == r1["world_size"] == 2
    # each rank took its own half of the global batch of 8
    i0, i1 = r0["indices"], r1["indices"]
    assert len(i0) == len(i1) == 4 and not set(i0.tolist()) & set(i1.tolist())
    # after the step both ranks hold the same weights ...
    for k, v in r0["toy_state"].items():
        torch.testing.assert_close(v, r1["toy_state"][k], rtol=0, atol=0)
    # ... which are one process's SGD step on the 8 crops together
    sys.path.insert(0, str(REPO / "tests"))
    from ddp_worker import toy_data, toy_net

    x, y = toy_data()
    ref = toy_net()
    opt = torch.optim.SGD(ref.parameters(), lr=0.5, momentum=0.9)
    both = torch.cat([i0, i1])
    loss = pose_loss(ref(x[both]), y[both])
    opt.zero_grad()
    loss.backward()
    opt.step()
    moved = False
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(r0["toy_state"][k], v, rtol=1e-5, atol=1e-6)
        moved |= not torch.equal(v, toy_net().state_dict()[k])
    assert moved  # the step changed the weights: the comparison above is not start vs start
    assert (r0["loss"] + r1["loss"]) / 2 == pytest.approx(float(loss.detach()), rel=1e-5)
    # train() on two ranks: identical weights everywhere, rank 0's checkpoint holds them, one run's files
    for k, v in r0["train_params"].items():
        torch.testing.assert_close(v, r1["train_params"][k], rtol=0, atol=0)
    ck = torch.load(tmp_path / "runs" / "ddp" / "best.pt", weights_only=False)
    for k, v in r0["train_params"].items():
        torch.testing.assert_close(ck["model_state"][k], v.detach(), rtol=0, atol=0)
    assert r0["val_loss"] == r1["val_loss"]  # rank 0's validation figures, agreed on by both
    assert sorted(p.name for p in (tmp_path / "runs" / "ddp").iterdir()) == [
        "best.pt",
        "config.json",
        "history.json",
        "last.pt",
    ]


def test_epoch_order_and_global_batch_size():
    """One process keeps torch's global generator (runs reproduce as before); two ranks split one seeded
    permutation into disjoint equal shares; batch_size is global and must divide by the processes."""
    torch.manual_seed(3)
    expected = torch.randperm(10)
    torch.manual_seed(3)
    assert torch.equal(epoch_order(10, 1, 0, DistContext()), expected)
    shares = [epoch_order(10, 2, 0, DistContext(rank=r, world_size=2)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 5
    assert sorted(torch.cat(shares).tolist()) == list(range(10))
    assert not torch.equal(shares[0], epoch_order(10, 3, 0, DistContext(rank=0, world_size=2)))
    assert local_batch_size(128, DistContext(world_size=2)) == 64
    from stream.errors import InputError

    with pytest.raises(InputError, match="global"):
        local_batch_size(127, DistContext(world_size=2))


def test_handstream_train_pose_runs_unchanged_under_torchrun(tmp_path):
    """`torchrun --nproc_per_node=2 -m stream.cli train pose --config C`: both ranks train, rank 0 alone
    reports (one JSON line) and writes the run."""
    import json

    write_toy_crops(tmp_path / "crops.npz", n=32)
    write_toy_config(tmp_path, tmp_path / "crops.npz", name="cli_ddp", epochs=2)
    r = _torchrun("-m", "stream.cli", "train", "pose", "--config", str(tmp_path / "cfg.json"))
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["epochs"] == 2
    history = json.loads((tmp_path / "runs" / "cli_ddp" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    ck = torch.load(reports[0]["best_checkpoint"], weights_only=False)
    assert ck["metrics"]["val_loss"] == pytest.approx(reports[0]["best_val_loss"])


@pytest.mark.parametrize("argv", [["pose", "gap"], ["detector"], ["search", "--config", "c.yaml"]])
def test_recipes_that_do_not_split_their_work_refuse_torchrun(argv, monkeypatch, capsys):
    """Under torchrun (WORLD_SIZE > 1) every rank would run the whole recipe and write the same files."""
    from stream.cli import main as cli_main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli_main(["train", *argv]) == 2
    assert "runs in one process" in capsys.readouterr().err
