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
    assert is_cached(fit._kernels.__file__)
