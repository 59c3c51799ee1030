"""Evaluation of an embedding engine on labelled skeletons (`handstream gesture eval`): the seed's Recall@K
and NMI, and K-shot enrollment accuracy with the engine's rejection distance.

Needs scipy for k-means (the train extra); the engine runs through the runtime's own interface."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def embed_all(engine, canonical: np.ndarray) -> np.ndarray:
    out = engine.output_names[0]
    return np.concatenate([np.asarray(engine.infer(c[None])[out]) for c in canonical.astype(np.float32)])


def evaluate_engine(engine_name: str, joints: np.ndarray, labels: np.ndarray, shots: int, seed: int) -> dict:
    import engines

    from ..gestures import canonical_joints

    try:
        from train.gesture.metrics import embedding_report
    except ImportError as exc:
        raise InputError(
            f"gesture eval needs the train extra ({exc}); pip install 'handstream[train]'"
        ) from None
    classes = np.unique(labels)
    if len(classes) < 2:
        raise InputError(f"evaluation needs at least two classes, got {len(classes)}")
    with engines.load_engine(engine_name, backend="onnxruntime") as engine:
        emb = embed_all(engine, canonical_joints(joints))
        reject = engine.manifest.metrics.get("reject_distance")
    report = embedding_report(emb, labels, shots=shots, seed=seed, reject_distance=reject)
    report.setdefault("shot_accuracy_with_rejection", None)  # an engine without a rejection distance
    return report
