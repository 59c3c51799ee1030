"""The stage registry: per-frame capabilities that plug in by name, and the contracts that chain them.

A stage class declares what it `reads` and `writes` on the FrameState (slot names such as "crop" or
"joints_mm", or keys it puts in `st.fields`), the engine it runs (a shipped name or a path; None for
none), the JSON-lines fields it adds (`record_fields`) and what it draws on the overlay (`draw`) -- the
declared-contract idea of MediaPipe's calculators and Holoscan's operator ports. `@register_stage("name")`
makes it selectable from `--models`; an engine given by path picks its stage class by its manifest's
`task`. `order_stages` puts the chosen stages after the ones that write what they read, and
`check_contracts` refuses a chain that reads something no earlier stage writes, once, at build time.

Adding a capability is one module that defines and registers its stage, plus its line in STAGE_MODULES.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Sequence

from .errors import InputError

# Modules whose import registers stages (imported on the first look-up, so the registry costs nothing
# until a pipeline is built). A new capability adds its module here.
STAGE_MODULES: tuple[str, ...] = (
    "stream.stages",
    "stream.gestures.stage",
    "stream.gestures.dynamic_stage",
    "stream.hands.handedness",
    "stream.fitting.stage",
    "stream.size.stage",
    "stream.size.fit_stage",
)

# What every frame carries before the first stage runs.
PROVIDED: tuple[str, ...] = ("frame",)

# The registry proper: name -> stage class. Filled by @register_stage when a module in STAGE_MODULES (or
# a user's own module, or a test) is imported; read through the functions below.
_REGISTRY: dict[str, type] = {}


def register_stage(name: str, *, tasks: Sequence[str] = ()) -> Callable[[type], type]:
    """Class decorator: make a stage selectable by `name` in `--models`; `tasks` are the manifest tasks
    whose engines, given by path, run in this stage class (e.g. a "pose" engine in the pose stage)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"a stage name is letters, digits, '_' or '-': got {name!r}")

    def add(cls: type) -> type:
        if not any(b.__module__ == "stream.stages" and b.__name__ == "Stage" for b in cls.__mro__):
            raise TypeError(f"@register_stage({name!r}): {cls.__qualname__} is not a stream.stages.Stage")
        old = _REGISTRY.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"stage {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        cls.kind = name
        cls.tasks = tuple(tasks)
        _REGISTRY[name] = cls
        return cls

    return add


def unregister_stage(name: str) -> None:
    """Forget a registered stage (tests that register their own)."""
    _REGISTRY.pop(name, None)


def registered_stages() -> dict[str, type]:
    """name -> stage class, every registered stage (built-in modules imported first)."""
    _load_builtin()
    return dict(_REGISTRY)


def stage_class(name: str, engines: Iterable[str] = ()) -> type:
    """The stage class registered as `name`, or a one-line InputError naming the closest match among the
    stages and `engines` (the shipped engine names, which --models accepts too)."""
    _load_builtin()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise InputError(unknown_message(name, engines))
    return cls


def stage_for_task(task: str) -> type | None:
    """The stage class that runs engines of this manifest task, None when no stage claims it."""
    _load_builtin()
    return next((c for c in _REGISTRY.values() if task in c.tasks), None)


def unknown_message(name: str, engines: Iterable[str] = ()) -> str:
    """The one line for a name that is neither a stage nor a shipped engine, with the closest match."""
    _load_builtin()
    stages = sorted(n for n, c in _REGISTRY.items() if not c.always)
    engines = sorted(engines)
    close = difflib.get_close_matches(name, list(dict.fromkeys(stages + engines)), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown stage or engine {name!r}{hint}; stages: {', '.join(stages) or 'none'}; "
        f"shipped engines: {', '.join(engines) or 'none'}; or give an engine's path"
    )


def describe_stages() -> list[str]:
    """One line per registered stage: name, reads -> writes, engine, what it is (`run --list-stages`)."""
    rows = []
    for name, cls in sorted(registered_stages().items()):
        if cls.needs_engine:
            engine = f"engine {cls.engine}" if cls.engine else "engine given by path"
        else:
            engine = "no engine"
        if cls.tasks:
            engine += f" (and engines of task {', '.join(cls.tasks)})"
        always = " [always in the pipeline]" if cls.always else ""
        uses = f" (uses {', '.join(cls.optional_reads)} when written)" if cls.optional_reads else ""
        rows.append(
            f"{name}: reads {', '.join(cls.reads) or '-'}{uses} -> writes {', '.join(cls.writes) or '-'}; "
            f"{engine}{always}. {_first_sentence(cls.__doc__)}".rstrip()
        )
    return rows


def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


def _reads(stage) -> tuple[str, ...]:
    return tuple(getattr(stage, "reads", ()))


def _optional_reads(stage) -> tuple[str, ...]:
    return tuple(getattr(stage, "optional_reads", ()))


def _writes(stage) -> tuple[str, ...]:
    return tuple(getattr(stage, "writes", ()))


def check_contracts(stages: Sequence, provided: Iterable[str] = PROVIDED) -> None:
    """Refuse, with one line, a chain in which a stage reads something no earlier stage writes. Stages
    without declarations (plain objects with `name` and `run`) read and write nothing."""
    have = set(provided)
    for s in stages:
        missing = [r for r in _reads(s) if r not in have]
        if missing:
            raise InputError(_missing_message(s, missing, have))
        have.update(_writes(s))


def order_stages(stages: Sequence, provided: Iterable[str] = PROVIDED) -> list:
    """The stages in an order that satisfies their contracts, keeping the given order wherever it already
    does: repeatedly take the first stage whose `reads` are written and whose `optional_reads` no stage
    still waiting writes. A read that no stage writes at all is a one-line InputError."""
    have = set(provided)
    written = have | {w for s in stages for w in _writes(s)}
    for s in stages:
        missing = [r for r in _reads(s) if r not in written]
        if missing:
            raise InputError(_missing_message(s, missing, written))
    waiting, ordered = list(stages), []
    while waiting:
        i = _first_ready(waiting, have)
        if i is None:
            names = ", ".join(getattr(s, "name", "?") for s in waiting)
            raise InputError(f"stages {names} read what each other writes: no order can run them")
        stage = waiting.pop(i)
        ordered.append(stage)
        have.update(_writes(stage))
    return ordered


def _first_ready(waiting: Sequence, have: set[str]) -> int | None:
    """Index of the first waiting stage whose reads are written and whose optional reads no other waiting
    stage still has to write."""
    pending = {w for s in waiting for w in _writes(s)}
    for i, s in enumerate(waiting):
        later = pending - set(_writes(s))
        if all(r in have for r in _reads(s)) and not any(r in later for r in _optional_reads(s)):
            return i
    return None


def _missing_message(stage, missing: list[str], have: set[str]) -> str:
    return (
        f"stage {getattr(stage, 'name', '?')!r} reads {', '.join(missing)}, which no earlier stage writes "
        f"(available: {', '.join(sorted(have))})"
    )


def _load_builtin() -> None:
    for mod in STAGE_MODULES:
        importlib.import_module(mod)
