"""Exceptions that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations


class HandstreamError(Exception):
    """Base class: the message is shown to the user as-is, on one line."""


class InputError(HandstreamError):
    """Bad user input: a missing, corrupt or malformed file, an absurd value, a wrong option."""


class MissingDependencyError(HandstreamError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not available: install it with `{install}`")
        self.what = what
        self.install = install


def require(module: str, install: str, what: str | None = None):
    """Import an optional module or raise a one-line MissingDependencyError saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(what or module, install) from exc
