"""The gesture vocabulary, canonical joints, the embedding models and a short training run."""

from __future__ import annotations

import numpy as np
import pytest

from stream.gestures.canonical import canonical_hand, canonical_joints
from stream.synth import gestures as vocab
from stream.synth.gestures import random_rotation
from stream.synth.hand import BONES, LIMITS_DEG, hand_joints_local, hand_shape


def test_vocabulary_and_split():
    assert len(vocab.FINE) >= 30 and len(vocab.COARSE) >= 6
    assert set(vocab.TRAIN).isdisjoint(vocab.UNSEEN)
    assert set(vocab.TRAIN) | set(vocab.UNSEEN) == set(vocab.FINE)
    coarse_of = {f: vocab.VOCABULARY[f][0] for f in vocab.FINE}
    assert {coarse_of[f] for f in vocab.TRAIN} == set(vocab.COARSE)  # every group on both sides
    assert {coarse_of[f] for f in vocab.UNSEEN} == set(vocab.COARSE)
    for name, (_, pose) in vocab.VOCABULARY.items():
        assert pose.shape == (20,)
        assert (pose >= LIMITS_DEG[:, 0]).all() and (pose <= LIMITS_DEG[:, 1]).all(), name
    # no two shapes are the same pose
    poses = np.stack([p for _, p in vocab.VOCABULARY.values()])
    gaps = np.abs(poses[:, None] - poses[None]).max(-1) + np.eye(len(poses)) * 1e9
    assert gaps.min() >= 5.0


def test_gesture_samples_keep_the_subjects_bones():
    rng = np.random.default_rng(0)
    a = vocab.gesture_joints("fist", rng, subject=3, left=False, jitter_deg=0.0)
    b = vocab.gesture_joints("open_palm", rng, subject=3, left=True, jitter_deg=0.0)
    bones = lambda j: np.array([np.linalg.norm(j[c] - j[p]) for p, c in BONES])  # noqa: E731
    assert np.allclose(bones(a), bones(b), atol=1e-3)
    assert 300 - 250 < a[:, 2].mean() < 700 + 250
    with pytest.raises(ValueError, match="unknown gesture"):
        vocab.gesture_joints("wave", rng)


def test_canonical_joints_ignore_position_rotation_and_unit():
    rng = np.random.default_rng(1)
    shape = hand_shape(5)
    j = hand_joints_local(shape, vocab.VOCABULARY["gun"][1]).joints
    ref = canonical_joints(j)
    for _ in range(5):
        moved = (j @ random_rotation(rng).T + rng.normal(0, 300, 3)) * 0.001  # and in metres
        assert np.allclose(canonical_joints(moved), ref, atol=1e-5)
    assert np.allclose(ref[0], 0.0)
    assert np.linalg.norm(ref[[5, 9, 13, 17]], axis=1).mean() == pytest.approx(1.0)
    assert ref[[5, 9, 13, 17], 1].min() > 0.5  # the MCPs lie distal (+y)
    assert ref[5, 0] > ref[17, 0]  # index on the thumb side (+x)
    # a left hand is the mirror image: the same numbers with z negated
    left = canonical_joints(hand_joints_local(shape, vocab.VOCABULARY["gun"][1], left=True).joints)
    assert np.allclose(left, ref * np.array([1.0, 1.0, -1.0]), atol=1e-5)
    # the per-frame version for one hand gives the same numbers
    for j1 in (j, hand_joints_local(shape, vocab.VOCABULARY["claw"][1], left=True).joints * 0.001):
        assert np.allclose(canonical_hand(j1), canonical_joints(j1), atol=1e-6)
    # and different gestures differ
    other = canonical_joints(hand_joints_local(shape, vocab.VOCABULARY["letter_u"][1]).joints)
    assert np.abs(other - ref).max() > 0.2


torch = pytest.importorskip("torch", reason="the embedding models need torch (the train extra)")


def test_models_by_name():
    from train.gesture.models import create_gesture_model

    m = create_gesture_model("joint_mlp", dim=32).eval()
    out = m(torch.randn(5, 21, 3))
    assert out.shape == (5, 32)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    cnn = create_gesture_model("depth_cnn", dim=16, n_coarse=7, n_fine=19).eval()
    e, c, f = cnn.embed_and_logits(torch.randn(2, 1, 96, 96))
    assert e.shape == (2, 16) and c.shape == (2, 7) and f.shape == (2, 19)
    with pytest.raises(ValueError, match="did you mean 'joint_mlp'"):
        create_gesture_model("joint_mpl")


def test_a_short_training_run_lowers_the_loss_and_reports_the_metrics():
    from train.gesture.losses import combined_loss
    from train.gesture.train import GestureTrainConfig, noisy_canonical, train_gesture_embedding

    cfg = GestureTrainConfig(steps=80, bank_per_class=30, pool_per_class=6, tuples=48, eval_per_class=8)
    cfg.eval_noise_mm = (5.0,)
    rng = np.random.default_rng(9)
    # a fixed set of quadruplets (R, P+, P-, N) from the training classes
    names = [("fist", "thumbs_up", "point"), ("point", "victory", "ok"), ("ok", "pinch", "call")]
    quads = np.stack(
        [
            noisy_canonical(np.stack([vocab.gesture_joints(n, rng) for n in (a, a, b, c)]), rng, 5.0)
            for a, b, c in names * 8
        ]
    )
    q = torch.from_numpy(quads)

    def fixed_loss(model):
        model.eval()
        with torch.no_grad():
            e = model(q.reshape(-1, 21, 3)).reshape(len(q), 4, -1)
            return combined_loss(e[:, 0], e[:, 1], e[:, 2], e[:, 3], reduction="mean").item()

    from train.gesture.models import create_gesture_model

    torch.manual_seed(cfg.seed)
    before = fixed_loss(create_gesture_model("joint_mlp", n_coarse=7, n_fine=19))
    model, metrics = train_gesture_embedding(cfg, log=lambda *a: None)
    assert fixed_loss(model) < 0.8 * before
    (u,) = metrics["unseen"]
    assert set(u["recall_at"]) == {"1", "2", "4", "8"} and u["classes"] == len(vocab.UNSEEN)
    assert 0.0 <= u["nmi"] <= 1.0 and 0.0 <= u["shot_accuracy"] <= 1.0


def test_rendered_gesture_crops_feed_the_depth_embedding(tmp_path):
    from train.gesture.train import GestureTrainConfig, train_gesture_embedding

    d = vocab.gesture_crops(("fist", "gun"), 2, seed=3, size=32)
    assert d["crops"].shape == (4, 1, 32, 32) and list(d["label"]) == ["fist", "fist", "gun", "gun"]
    c = d["crops"]
    assert c.min() >= -1 and c.max() <= 1 and (c < 0.99).mean() > 0.02  # the hand is in the crop
    cfg = GestureTrainConfig(model="depth_cnn", steps=3, bank_per_class=3, pool_per_class=2, tuples=8)
    cfg.eval_per_class, cfg.crop_size, cfg.crop_cache = 12, 32, str(tmp_path)
    _, metrics = train_gesture_embedding(cfg, log=lambda *a: None)
    (u,) = metrics["unseen"]
    assert u["noise_mm"] is None and u["samples"] == 6 * len(vocab.UNSEEN)
    assert len(list(tmp_path.glob("crops_*.npz"))) == 2  # train and unseen crops cached for the next run


def test_other_skeletons_join_every_pool_in_their_share(tmp_path):
    """Another system's skeletons of the training classes (metres, another subject's hand): each pool draws
    its share of every class from them, fed canonicalised as they come, with their own class ids."""
    from stream.errors import InputError
    from train.gesture.train import Pools, other_skeletons

    d = vocab.gesture_dataset(vocab.TRAIN, 2, seed=5, noise_mm=0.0)
    path = tmp_path / "other.npz"
    np.savez(path, joints_xyz_mm=d["joints_xyz_mm"] / 1000.0, label=d["label"])
    other = other_skeletons(str(path))
    n_own = 3 * len(vocab.TRAIN)
    own_fine = np.repeat(np.arange(len(vocab.TRAIN)), 3)
    own = Pools(
        lambda idx: np.zeros((len(idx), 21, 3), np.float32),
        own_fine,
        vocab.FINE_TO_COARSE[[vocab.FINE.index(vocab.TRAIN[k]) for k in own_fine]],
        [np.flatnonzero(own_fine == k) for k in range(len(vocab.TRAIN))],
    )
    pools = own.with_other(other)
    rng = np.random.default_rng(0)
    pool = pools.draw(rng, 4, 0.5)
    assert len(pool) == 4 * len(vocab.TRAIN)
    theirs = pool[pool >= n_own]
    assert len(theirs) == 2 * len(vocab.TRAIN)  # half of every class's pool
    n = len(vocab.TRAIN)
    for k in range(n):  # class by class, ours then theirs: each class's draws hold that class only
        assert (
            set(pools.fine[pool[2 * k : 2 * k + 2]])
            == {k}
            == set(pools.fine[pool[2 * n + 2 * k : 2 * n + 2 * k + 2]])
        )
    x = pools.inputs(theirs)
    i = theirs - n_own
    np.testing.assert_allclose(x, canonical_joints(d["joints_xyz_mm"][i]), atol=1e-5)  # metres or mm alike
    assert (pools.inputs(pool[pool < n_own]) == 0).all()  # ours through our own inputs
    assert np.array_equal(
        pools.coarse[theirs], vocab.FINE_TO_COARSE[[vocab.FINE.index(f) for f in d["label"][i]]]
    )
    assert len(own.draw(np.random.default_rng(0), 3, 0.5)) == 3 * len(
        vocab.TRAIN
    )  # none to draw from: all ours
    np.savez(
        tmp_path / "bad.npz",
        joints_xyz_mm=d["joints_xyz_mm"],
        label=np.array(["fist_thumb_in"] * len(d["label"])),
    )
    with pytest.raises(InputError, match="not training classes"):
        other_skeletons(str(tmp_path / "bad.npz"))
    keep = d["label"] != vocab.TRAIN[0]
    np.savez(tmp_path / "few.npz", joints_xyz_mm=d["joints_xyz_mm"][keep], label=d["label"][keep])
    with pytest.raises(InputError, match=f"no skeletons of {vocab.TRAIN[0]}"):
        other_skeletons(str(tmp_path / "few.npz"))
    with pytest.raises(InputError, match="no such file"):
        other_skeletons(str(tmp_path / "missing.npz"))
    from train.gesture.train import GestureTrainConfig, train_gesture_embedding

    with pytest.raises(InputError, match="needs a joints model"):  # before any crop is rendered
        train_gesture_embedding(GestureTrainConfig(model="depth_cnn", other_skeletons=str(path)), log=print)
