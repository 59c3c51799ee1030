"""The runtime must never import torch: a user running the pipeline installs numpy, OpenCV and ONNX Runtime."""

import pkgutil
import subprocess
import sys

import stream


def test_stream_never_imports_torch():
    modules = [m.name for m in pkgutil.walk_packages(stream.__path__, "stream.")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'torchvision', 'train'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"stream imported {out.stdout.strip()}"
    assert len(modules) >= 3


def test_cli_help_and_unknown_verb():
    from stream.cli import main

    assert main(["--help"]) == 0
    assert main(["no-such-verb"]) == 2
