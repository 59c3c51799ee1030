"""`handstream`: one command, one verb per job (ultralytics style).

The top level only routes: each verb lives in its own module with a `main(argv) -> int`, imported when
the verb is used, so `handstream run` never imports torch and a missing optional dependency only
affects the verbs that need it. Errors derived from HandstreamError are printed as one line.

The root also does what every verb needs once: SIGTERM and SIGHUP stop a run like Ctrl-C (exit 128 +
the signal's number), an OSError that names a file (permission denied, a read-only or full disk) is one
line naming it, and OpenCV's and FFmpeg's own log lines are off (they would precede or interleave that
line; set OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL to see them).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import warnings

from .errors import HandstreamError, Interrupted, interrupt_status, interrupted_how

# verb -> (module with main(argv), one-line help). Modules import heavy dependencies inside main().
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("stream.app.demo", "play the built-in synthetic recording through the default engines"),
    "run": ("stream.app.run", "run the pipeline on a source (realsense, a recording, a video, synthetic)"),
    "record": ("stream.app.record", "write a RealSense recording (.db3) from any source, no camera needed"),
    "locate": ("stream.preprocess.locate", "find the hand in depth frames and print one JSON line each"),
    "calibrate": (
        "stream.app.calibrate",
        "measure the user's hand size from a few seconds of a source (user.json)",
    ),
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
    _quiet_native_logs()
    # Python warnings (numpy's, a library's) are held while the verb runs: on an error the one-line message
    # stands alone; on success they follow the output, once per place that warned
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        with _signals_interrupt():
            rc = _run_verb(verb, module_name, rest)
    if rc == 0:
        for w in caught:
            print(
                warnings.formatwarning(w.message, w.category, w.filename, w.lineno).rstrip(), file=sys.stderr
            )
    return rc


def _run_verb(verb: str, module_name: str, rest: list[str]) -> int:
    try:
        module = importlib.import_module(module_name)
        return int(module.main(rest) or 0)
    except HandstreamError as exc:
        print(f"handstream {verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"handstream {verb}: {interrupted_how(exc)}", file=sys.stderr)
        return interrupt_status(exc)
    except BrokenPipeError:
        # `handstream ... | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        print(
            f"handstream {verb}: error: missing module {missing!r} ({_install_hint(missing)})",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        if not (exc.filename and exc.strerror):
            raise
        print(f"handstream {verb}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _os_error_line(exc: OSError) -> str:
    """'cannot read PATH: Permission denied' / 'cannot write PATH: No space left on device'. Which of the
    two is told by the error (a full or read-only disk is a write) or by what the file allows."""
    path = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else str(exc.filename)
    if exc.errno in _WRITE_ERRNOS:
        how = "write"
    elif os.path.exists(path) and not os.access(path, os.R_OK):
        how = "read"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        how = "write"
    elif not os.path.exists(path):
        how = "write" if os.path.isdir(os.path.dirname(os.path.abspath(path))) else "read/write"
    else:
        how = "read/write"
    line = f"cannot {how} {path}: {exc.strerror}"
    if exc.filename2:
        line += f" ({exc.filename2})"
    return line


_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum, signal.Signals(signum).name)


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM and SIGHUP raise Interrupted (a KeyboardInterrupt) in the main thread while a verb runs, so
    every verb's Ctrl-C path (sinks closed, files finished) also serves them. The old handlers come back
    afterwards (the CLI is also called in-process, by tests)."""
    if sys.platform == "win32" or _not_main_thread():
        yield
        return
    old = {}
    for name in _STOP_SIGNALS:
        sig = getattr(signal, name)
        old[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _not_main_thread() -> bool:
    import threading

    return threading.current_thread() is not threading.main_thread()


def _quiet_native_logs() -> None:
    """OpenCV's [WARN]/[ERROR] lines and FFmpeg's log: off unless the user set them (read when first used)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


_TRAIN_MODULES = (
    "torch",
    "torchvision",
    "onnxslim",
    "optuna",
    "tensorboard",
    "matplotlib",
    "yaml",
    "scipy",
    "sklearn",
)


def _install_hint(module: str) -> str:
    top = module.split(".")[0]
    hints = {
        # the training extras (pyproject.toml's `train`): a runtime-only install (the demo's) has none
        **dict.fromkeys(_TRAIN_MODULES, "pip install 'handstream[train]'"),
        "pyrealsense2": "pip install 'handstream[realsense]' (and apt-get install libusb-1.0-0)",
        "tensorrt": "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU",
        "pycuda": "pip install 'handstream[tensorrt]' on a machine with an NVIDIA GPU",
    }
    return hints.get(top, "is the package installed? try `pip install -e .`")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
