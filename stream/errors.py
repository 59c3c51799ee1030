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


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where SIGINT raises KeyboardInterrupt so a run stops the same clean way
    (capture stopped, JSON lines flushed, video and recording finished). The CLI installs the handler."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name


def interrupt_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by a signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(exc, "signum", 2)


def interrupted_how(exc: KeyboardInterrupt) -> str:
    name = getattr(exc, "name", None)
    return f"stopped by {name}" if name else "interrupted"
