"""The first-compile notice: said when numba has no cache of a kernel module, silent once it has one."""

from __future__ import annotations

import logging

from stream.compiled import announce_compile, is_cached


def test_announces_only_without_a_cache(tmp_path, caplog):
    kernel = tmp_path / "some_kernels.py"
    kernel.write_text("")
    with caplog.at_level(logging.WARNING, logger="handstream.compiled"):
        assert announce_compile(str(kernel), "test") is True
    assert "compiling the test kernels" in caplog.text
    assert not is_cached(str(kernel))
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "some_kernels.fit-1.py311.nbi").write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="handstream.compiled"):
        assert announce_compile(str(kernel), "test") is False
    assert caplog.text == ""


def test_the_shipped_kernels_are_cached_after_a_stage_compiled_them():
    from stream.fitting import fit

    assert fit.compile_kernels()
    assert is_cached(fit._kernels)


COMPILE_WITHOUT_SCIPY = """
import sys
sys.modules["scipy"] = None  # the runtime install has no scipy: numba's BLAS (np.dot, @) is out of reach
import engines
from stream.compiled import is_cached
from stream.fitting import kernels as fit_kernels
from stream.fitting.fit import compile_kernels
from stream.gestures import dynamic_kernels, kernels as gesture_kernels
from stream.gestures.dynamic_stage import DynamicGestureStage
from stream.gestures.stage import GestureStage
from stream.preprocess import HandSegmenter
from stream.preprocess.segment import arm_kernels, refine
from stream.size import kernels as size_kernels
from stream.size.measure import compile_kernels as compile_size_kernels

# NUMBA_CACHE_DIR is empty: nothing is cached where numba will look, whatever lies beside the modules
modules = (fit_kernels, gesture_kernels, dynamic_kernels, arm_kernels, size_kernels)
assert not any(is_cached(m) for m in modules), "a cache was found in an empty NUMBA_CACHE_DIR"
assert compile_kernels(), "the fitting kernels did not compile"
assert compile_size_kernels(), "the hand-size kernels did not compile"
with engines.load_engine("gesture", backend="onnxruntime", threads=1) as eng:
    assert GestureStage(eng).recognizer.runs_kernel, "the gesture kernel did not compile"
with engines.load_engine("dynamic_gesture", backend="onnxruntime", threads=1) as eng:
    assert DynamicGestureStage(eng).matcher.runs_kernel, "the dynamic-gesture kernels did not compile"
HandSegmenter()  # the learned segmenter compiles its forearm cut's kernel when it is set up
assert refine._arm_kernels is not None, "the forearm-cut kernel did not compile"
assert all(is_cached(m) for m in modules), "the compiled kernels are not found in NUMBA_CACHE_DIR"
print("compiled")
"""


def test_every_kernel_compiles_from_scratch_with_the_runtime_dependencies_only(tmp_path):
    """A fresh runtime install (numpy, OpenCV, ONNX Runtime, numba; no scipy) compiles every kernel: numba
    lowers `@` and np.dot to BLAS through scipy, so a kernel using them compiled here under the dev extras
    and failed on a user's first run. A cache directory of its own makes numba compile, not load."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_WITHOUT_SCIPY], cwd=root, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-2000:]
    assert "did not compile" not in done.stderr
    # each module said once that it compiles, since nothing was cached where numba looks
    for what in ("model-fitting", "gesture", "dynamic-gesture", "forearm-cut", "hand-size"):
        assert done.stderr.count(f"compiling the {what} kernels") == 1, done.stderr[-2000:]
