"""A recipe's options: defaults from `configs/NAME.yaml`, then `key=value` words, then `--flags`.

The YAML file is the one place a recipe's defaults are written (the parser shows them in --help); a
`key=value` word on the command line overrides one of them (`minutes=60` is `--minutes 60`), and an explicit
`--flag` wins over both. Values are read as YAML (`lr=2e-3`, `shifts=...`, `resume=true`). An unknown key
is a one-line error naming the closest known one.
"""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path

from stream.errors import InputError

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs"
_OVERRIDE = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$", re.S)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def read_yaml(path: str | Path) -> dict:
    """A YAML (or JSON) mapping from `path`, or a one-line InputError."""
    import yaml

    d = _read_config_file(path, yaml.safe_load, yaml.YAMLError)
    if d is None:
        return {}
    return d


def _read_config_file(path: str | Path, parse, errors) -> object:
    """`parse` of the text of the config file `path`; a missing file or a parse error (`errors`) is one
    line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such config file: {p}")
    try:
        return parse(p.read_text())
    except errors as exc:
        raise InputError(f"{p}: cannot parse config ({str(exc).splitlines()[0]})") from None


def recipe_defaults(recipe: str, section: str | None = None) -> dict:
    """`configs/RECIPE.yaml` (or one section of it: a staged recipe keeps one mapping per stage)."""
    d = read_yaml(CONFIG_DIR / f"{recipe}.yaml")
    if section is None:
        return d
    sub = d.get(section, {})
    if not isinstance(sub, dict):
        raise InputError(f"configs/{recipe}.yaml: `{section}` must be a mapping")
    return sub


def parse_value(text: str):
    """`key=value`'s value as YAML would read it (numbers, booleans, lists), else the plain string. YAML
    1.1 reads `1e-3` (no dot) as a string; a learning rate is how people write it, so it is a number here."""
    import yaml

    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return value


def split_overrides(argv: list[str], parser: argparse.ArgumentParser | None = None) -> tuple[list, dict]:
    """(the words argparse reads, {key: value} of the `key=value` words). A word right after an option
    that takes a value is that value, even with an `=` in it (`--out a=b.pt`)."""
    takes_value = set()
    if parser is not None:
        takes_value = {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}
    rest, overrides = [], {}
    prev = ""
    for word in argv:
        m = _OVERRIDE.match(word)
        if m and prev not in takes_value:
            overrides[m.group(1)] = parse_value(m.group(2))
        else:
            rest.append(word)
        prev = word if word.startswith("-") and "=" not in word else ""
    return rest, overrides


def _closest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def apply_defaults(parser: argparse.ArgumentParser, values: dict, origin: str) -> None:
    """Set parser defaults from a mapping whose keys are option names (`fc_width` or `fc-width`)."""
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in dests:
            raise InputError(f"{origin}: unknown option {key!r}{_closest(dest, sorted(dests))}")
        action = next(a for a in parser._actions if a.dest == dest)
        if not action.help:
            action.help = f"from {origin}"  # a help text lets --help show the default beside it
        if isinstance(value, str) and action.type is not None and value is not None:
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise InputError(f"{origin}: {key}={value!r}: {exc}") from None
        parser.set_defaults(**{dest: value})


def parse_recipe_args(
    parser: argparse.ArgumentParser,
    argv: list[str],
    recipe: str,
    section: str | None = None,
    repo_paths: tuple[str, ...] = (),
) -> argparse.Namespace:
    """Parse `argv` for a recipe: configs/RECIPE.yaml [section], then key=value words, then --flags.
    The options named in `repo_paths` are paths: relative ones in the YAML file mean the repository's
    folders (data/, runs/, checkpoints/), relative ones on the command line the working directory's."""
    defaults = recipe_defaults(recipe, section)
    for key in repo_paths:
        if isinstance(defaults.get(key), str) and not Path(defaults[key]).is_absolute():
            defaults[key] = str(REPO / defaults[key])
    apply_defaults(parser, defaults, f"configs/{recipe}.yaml")
    rest, overrides = split_overrides(argv, parser)
    apply_defaults(parser, overrides, "key=value")
    return parser.parse_args(rest)


def parse_with_run_overrides(
    parser: argparse.ArgumentParser, argv: list[str], recipe: str
) -> tuple[argparse.Namespace, dict]:
    """As parse_recipe_args for a recipe that also takes a run config: `key=value` words naming one of
    the recipe's options set it, the others are returned to override the run config's fields."""
    rest, overrides = split_overrides(argv, parser)
    dests = {a.dest for a in parser._actions}
    own = {k: v for k, v in overrides.items() if k.replace("-", "_") in dests}
    apply_defaults(parser, recipe_defaults(recipe), f"configs/{recipe}.yaml")
    apply_defaults(parser, own, "key=value")
    return parser.parse_args(rest), {k: v for k, v in overrides.items() if k not in own}


def set_nested(d: dict, dotted: str, value) -> dict:
    """A copy of `d` with `a.b.c` set to `value` (nested mappings are copied, not shared)."""
    out = dict(d)
    head, _, tail = dotted.partition(".")
    if tail:
        inner = out.get(head) or {}
        if not isinstance(inner, dict):
            raise InputError(f"{dotted}: {head} is not a mapping")
        out[head] = set_nested(inner, tail, value)
    else:
        out[head] = value
    return out


def config_with_overrides(path: str | Path, overrides: dict) -> dict:
    """A run config (train.trainer.TrainConfig fields) from `path` with `key=value` / `a.b=value` set."""
    d = read_yaml(path) if Path(path).suffix in (".yaml", ".yml") else _read_json(path)
    for k, v in overrides.items():
        d = set_nested(d, k, v)
    return d


def _read_json(path: str | Path) -> dict:
    import json

    d = _read_config_file(path, json.loads, json.JSONDecodeError)
    if not isinstance(d, dict):
        raise InputError(f"{path}: a config must be a mapping of keys to values")
    return d
