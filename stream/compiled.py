"""Where numba keeps compiled kernels, and one line for the user while it compiles them the first time.

The per-hand kernels (model fitting, gestures) are compiled by numba when a stage is set up and cached on
disk: in NUMBA_CACHE_DIR when set, else beside their module (`__pycache__/NAME.*.nbi`), else, where the
package's folder is not writable, in numba's user-wide cache. The first run on a fresh install compiles for
tens of seconds before the first frame; a user staring at a silent terminal for that long thinks it hung, so
the stages say so once. Later runs load the cache in about a second and say nothing. Where numba cannot
compile a kernel on this machine, the stage says so once and runs its numpy reference: slower, never wrong
or stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("handstream.compiled")


def _cache_dirs(kernels) -> list[Path]:
    """Where numba keeps the caches of a kernel module: for an imported module, the directories its own
    dispatchers cache to (numba chooses them as the module docstring says); for a file path, the
    `__pycache__` beside it."""
    if isinstance(kernels, (str, Path)):
        return [Path(kernels).parent / "__pycache__"]
    dirs = {
        Path(obj._cache._cache_path)
        for obj in vars(kernels).values()
        if isinstance(getattr(getattr(obj, "_cache", None), "_cache_path", None), str)
    }
    return sorted(dirs) or [Path(kernels.__file__).parent / "__pycache__"]


def is_cached(kernels) -> bool:
    """Whether numba's index for the kernels of this module (an imported module, or its file) exists where
    numba caches them (written after a compile)."""
    stem = Path(kernels if isinstance(kernels, (str, Path)) else kernels.__file__).stem
    return any(any(d.glob(f"{stem}.*.nbi")) for d in _cache_dirs(kernels))


def announce_compile(kernels, what: str) -> bool:
    """One warning line (Python's last-resort handler prints it on stderr when nothing configured
    logging) when the kernels of `kernels` (the module, or its file) are not cached yet. Returns whether it
    announced."""
    if is_cached(kernels):
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
