"""`handstream models [--json]`: the model table (name, task, input, output, parameter count, trade-off).

torch is imported only to count parameters, on the meta device (no weights are allocated)."""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handstream models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--joints", type=int, default=21, help="number of joints J (output 3J); default 21")
    args = parser.parse_args(argv)
    from .gesture.models import gesture_model_infos
    from .models import list_models

    infos = list_models(args.joints) + gesture_model_infos()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=1))
        return 0
    rows = [("name", "task", "input", "output", "params", "trade-off")]
    for i in infos:
        shape_in = "x".join(str(s) for s in i.input_shape[1:])
        rows.append(
            (i.name, i.task, shape_in, str(i.output_shape[1]), f"{i.params / 1e6:.2f} M", i.trade_off)
        )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(5)) + "  " + r[5])
    return 0
