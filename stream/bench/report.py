"""Bench report: the JSON document (all figures) and its markdown rendering for BENCHMARKS.md.

The markdown is rendered from the JSON-ready dict alone, so a report read back from disk renders the same
table as the run that wrote it. Every section is optional: a run without peers or variants simply has no
such table, and a skipped entry (`{"skipped": "why"}`) shows its reason instead of numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import InputError
from ..outputs import writing_failed
from .machine import describe

SCHEMA = "handstream.bench/1"


def write_json(report: dict, path: str | Path) -> Path:
    return write_text(path, json.dumps(report, indent=1, sort_keys=False, default=_jsonable) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """Write a report file; a missing folder is made, a failed write is the one-line error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise writing_failed(path, exc) from None
    return path


def read_json(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read bench report {path}: {exc}") from exc
    if data.get("schema") != SCHEMA:
        raise InputError(f"{path} is not a {SCHEMA} report (schema {data.get('schema')!r})")
    return data


def _jsonable(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def fmt_ms(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _pcts(stats: dict | None) -> list[str]:
    stats = stats or {}
    return [fmt_ms(stats.get("p50")), fmt_ms(stats.get("p95")), fmt_ms(stats.get("p99"))]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pipeline_section(title: str, run: dict) -> str:
    """Per-stage table of one timed pipeline loop, end-to-end, stage sum and overhead rows."""
    rows = [[name, *_pcts(s)] for name, s in run.get("stages_ms", {}).items()]
    rows.append(["**end-to-end**", *_pcts(run.get("end_to_end_ms"))])
    if run.get("end_to_end_cpu_ms"):
        rows.append(["end-to-end, CPU time of the pipeline thread", *_pcts(run.get("end_to_end_cpu_ms"))])
    rows.append(["sum of stages", *_pcts(run.get("stage_sum_ms"))])
    frac = run.get("overhead_fraction")
    frac_txt = (
        f" ({100 * frac:.1f} % of stage sum at p50)"
        if isinstance(frac, float) and math.isfinite(frac)
        else ""
    )
    rows.append([f"overhead{frac_txt}", *_pcts(run.get("overhead_ms"))])
    for name, st in (run.get("off_path_ms") or {}).items():  # overlapped with the pipeline: not summed
        rows.append([f"*{name}* (off the timed path)", *_pcts(st)])
    facts = [f"{run.get('frames', 0)} frames", f"sustained {run.get('fps', float('nan')):.0f} FPS"]
    facts.append(f"dropped {run.get('dropped_frames', 0)}")
    if "hand_frames" in run:
        facts.append(f"hand found in {run['hand_frames']}")
    if "peak_rss_mb" in run:
        facts.append(f"peak RSS {run['peak_rss_mb']:.0f} MB")
    what = f" — {run['description']}" if run.get("description") else ""
    return f"**{title}**{what} ({', '.join(facts)})\n\n" + table(
        ["stage", "p50 ms", "p95 ms", "p99 ms"], rows
    )


def _skip_row(name: str, entry: dict, width: int) -> list[str]:
    return [name, f"skipped: {entry['skipped']}", *([""] * (width - 2))]


def backends_section(backends: dict) -> str:
    header = ["backend", "engine p50 ms", "p95 ms", "p99 ms", "end-to-end p50 ms", "note"]
    rows = []
    for name, b in backends.items():
        if "skipped" in b:
            rows.append(_skip_row(name, b, len(header)))
            continue
        rows.append(
            [
                name,
                *_pcts(b.get("infer_ms")),
                fmt_ms((b.get("end_to_end_ms") or {}).get("p50")),
                b.get("note", ""),
            ]
        )
    return "**Backends** (same model, same frames)\n\n" + table(header, rows)


def variants_section(variants: dict) -> str:
    header = ["variant", "params", "engine p50 ms", "p95 ms", "p99 ms", "end-to-end p50 ms", "accuracy"]
    rows = []
    for name, v in variants.items():
        if "skipped" in v:
            rows.append(_skip_row(name, v, len(header)))
            continue
        params = v.get("params")
        acc = v.get("accuracy") or {}
        acc_txt = acc.get("text") or _accuracy_text(acc)
        model = v.get("model")
        rows.append(
            [
                f"{name} ({model})" if model and model != name else name,
                f"{params / 1e6:.2f} M" if isinstance(params, (int, float)) else "–",
                *_pcts(v.get("infer_ms")),
                fmt_ms((v.get("end_to_end_ms") or {}).get("p50")),
                acc_txt,
            ]
        )
    return "**Model variants** (ONNX Runtime; accuracy on the synthetic test set)\n\n" + table(header, rows)


def _accuracy_text(acc: dict) -> str:
    if "mean_error_mm" not in acc:
        return "–"
    txt = f"{acc['mean_error_mm']:.1f} mm mean 3D error"
    if "median_error_mm" in acc:
        txt += f" (median {acc['median_error_mm']:.1f}"
        txt += f", hand found {acc['found']}/{acc['frames']})" if "frames" in acc else ")"
    return txt


def peers_section(peers: dict, ours_p50: float | None) -> str:
    header = ["peer", "p50 ms", "p95 ms", "p99 ms", "hand found", "our p50 / peer p50", "speedup"]
    rows = []
    for name, p in peers.items():
        if "skipped" in p:
            rows.append(_skip_row(name, p, len(header)))
            continue
        rate = p.get("detection_rate")
        sp = p["p50"] / ours_p50 if ours_p50 else None
        rows.append(
            [
                name,
                *_pcts(p),
                f"{100 * rate:.0f} %" if rate is not None else "–",
                f"{1 / sp:.2f}" if sp else "–",
                f"{sp:.1f}×" if sp else "–",
            ]
        )
    what = "colour stream of the same frames, its own venv; ours = the default pose path's end-to-end p50"
    return f"**MediaPipe Hands** ({what})\n\n" + table(header, rows)


def two_hands_section(two: dict) -> str:
    """Each alternating round's one-hand and two-hand runs: end to end, and their ratio."""

    def cell(e: dict) -> str:
        return " / ".join(f"{e[k]:.2f}" for k in ("p50", "p95", "p99", "mean"))

    rows = [
        [
            str(i + 1),
            cell(r["one_hand"]["end_to_end_ms"]),
            cell(r["two_hands"]["end_to_end_ms"]),
            f"{r['ratio_p50']:.2f} / {r['ratio_mean']:.2f}",
        ]
        for i, r in enumerate(two["rounds"])
    ]
    last = two["rounds"][-1]
    stages = "; ".join(
        f"{who}: " + ", ".join(f"{k} {v:.2f}" for k, v in last[key]["stages_p50_ms"].items())
        for who, key in (("one hand", "one_hand"), ("two hands", "two_hands"))
    )
    head = [
        "round",
        "one hand: p50 / p95 / p99 / mean ms",
        "two hands: p50 / p95 / p99 / mean ms",
        "ratio p50 / mean",
    ]
    what = f"the default pose path, alternately on the input above and on {two['clip'].get('description')}"
    return (
        f"**Two hands against one** ({what}; {two.get('timed_through')})\n\n"
        + table(head, rows)
        + f"\n\nStage p50s of the last round, ms: {stages}."
    )


def targets_section(targets: list[dict]) -> str:
    rows = [
        [
            t["name"],
            t["target"],
            t["measured"],
            {True: "yes", False: "**no**"}.get(t.get("met"), "–"),
            t.get("note", ""),
        ]
        for t in targets
    ]
    return "**Targets**\n\n" + table(["target", "wanted", "measured", "met", "note"], rows)


def render_markdown(report: dict) -> str:
    """The markdown for BENCHMARKS.md: command, machine, then one table per section that ran."""
    parts = [f"Command: `{report.get('command', '?')}`", f"Machine: {describe(report.get('machine', {}))}"]
    if report.get("input"):
        inp = report["input"]
        parts[-1] += f"; input: {inp.get('description', inp.get('source'))}"
    if report.get("created_utc"):
        parts[-1] += f"; run {report['created_utc']}"
    parts = ["  \n".join(parts)]
    if report.get("pipeline"):
        parts.append(pipeline_section("Default pose path", report["pipeline"]))
    if report.get("pipeline_memory"):
        title = "Default pose path, frames from memory (no decoding thread)"
        parts.append(pipeline_section(title, report["pipeline_memory"]))
    if report.get("replay"):
        parts.append(pipeline_section("Replay with overlay + mp4 (run_stream)", report["replay"]))
    if report.get("replay_memory"):
        title = "Same replay, frames from memory, encoder inline (pipeline capacity)"
        parts.append(pipeline_section(title, report["replay_memory"]))
    if report.get("two_hands"):
        parts.append(two_hands_section(report["two_hands"]))
    if report.get("backends"):
        parts.append(backends_section(report["backends"]))
    if report.get("variants"):
        parts.append(variants_section(report["variants"]))
    if report.get("peers"):
        ours = ((report.get("pipeline") or {}).get("end_to_end_ms") or {}).get("p50")
        parts.append(peers_section(report["peers"], ours))
    if report.get("targets"):
        parts.append(targets_section(report["targets"]))
    if report.get("notes"):
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in report["notes"]))
    return "\n\n".join(parts) + "\n"
