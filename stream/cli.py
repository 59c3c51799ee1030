"""`handstream`: one command, one verb per job (ultralytics style).

The top level only routes: each verb lives in its own module with a `main(argv) -> int`, imported when
the verb is used, so `handstream run` never imports torch and a missing optional dependency only
affects the verbs that need it. Errors derived from HandstreamError are printed as one line.
"""

from __future__ import annotations

import importlib
import sys

from .errors import HandstreamError

# verb -> (module with main(argv), one-line help). Modules import heavy dependencies inside main().
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("stream.app.demo", "play the built-in synthetic recording through the default engines"),
    "run": ("stream.app.run", "run the pipeline on a source (realsense, a recording, a video, synthetic)"),
    "record": ("stream.app.record", "write a RealSense recording (.db3) from any source, no camera needed"),
    "locate": ("stream.preprocess.locate", "find the hand in depth frames and print one JSON line each"),
    "gesture": ("stream.app.gesture", "enroll, list, remove and evaluate gestures (embeddings + a gallery)"),
    "synth": ("stream.synth.cli", "write a synthetic RGB-D hand dataset or a preview sheet"),
    "models": ("train.cli_models", "list every model the project defines"),
    "train": ("train.cli_train", "training recipes: pose, detector, search, ... (`handstream train --help`)"),
    "eval": ("train.cli_eval", "evaluate predictions (NYU protocol) or a model on synthetic data"),
    "export": ("engines.cli_export", "export a model to ONNX with its manifest"),
    "build": ("engines.cli_build", "build a TensorRT engine from an exported ONNX directory"),
    "bench": ("stream.bench.cli", "benchmark the pipeline stage by stage, backends and peers side by side"),
}


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = ["usage: handstream VERB [options]   (handstream VERB --help for a verb's options)", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {help_}" for verb, (_, help_) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"handstream {__version__}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"handstream: error: unknown verb {verb!r}; choose from {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module_name = VERBS[verb][0]
    try:
        module = importlib.import_module(module_name)
        return int(module.main(rest) or 0)
    except HandstreamError as exc:
        print(f"handstream {verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"handstream {verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `handstream ... | head`: the reader left; stop quietly like other Unix tools.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        print(
            f"handstream {verb}: error: missing module {missing!r} ({_install_hint(missing)})",
            file=sys.stderr,
        )
        return 2


def _install_hint(module: str) -> str:
    top = module.split(".")[0]
    hints = {
        "torch": "pip install 'handstream[train]'",
        "torchvision": "pip install 'handstream[train]'",
        "onnx": "pip install 'handstream[train]'",
        "optuna": "pip install 'handstream[train]'",
        "pyrealsense2": "pip install 'handstream[realsense]' (and apt-get install libusb-1.0-0)",
        "tensorrt": "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU",
        "pycuda": "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU",
    }
    return hints.get(top, "is the package installed? try `pip install -e .`")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
