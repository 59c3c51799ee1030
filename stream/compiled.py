"""Where numba keeps compiled kernels, and one line for the user while it compiles them the first time.

The per-hand kernels (model fitting, gestures) are compiled by numba when a stage is set up and cached on
disk beside their module (`__pycache__/NAME.*.nbi`). The first run on a fresh install compiles for tens of
seconds before the first frame; a user staring at a silent terminal for that long thinks it hung, so the
stages say so once. Later runs load the cache in about a second and say nothing. Where numba cannot compile a kernel on this
machine, the stage says so once and runs its numpy reference: slower, never wrong or stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("handstream.compiled")


def is_cached(kernel_file: str) -> bool:
    """Whether numba's index for the kernels of this module exists beside it (written after a compile)."""
    path = Path(kernel_file)
    return any((path.parent / "__pycache__").glob(f"{path.stem}.*.nbi"))


def announce_compile(kernel_file: str, what: str) -> bool:
    """One warning line (Python's last-resort handler prints it on stderr when nothing configured
    logging) when the kernels of `kernel_file` are not cached yet. Returns whether it announced."""
    if is_cached(kernel_file):
        return False
    log.warning("compiling the %s kernels with numba (first run only, up to a minute)", what)
    return True


def not_compiled(what: str, exc: BaseException) -> None:
    """One warning line: the `what` kernels failed to compile here, so their numpy reference runs."""
    log.warning(
        "the %s kernels did not compile (%s: %s); running their numpy version",
        what,
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )
