#!/usr/bin/env bash
# One command per job on a fresh machine with Python 3.11 + pip:
#   bash tools/quickstart.sh demo   -> sets up the runtime (numpy, OpenCV, ONNX Runtime, numba) and runs the demo
#   bash tools/quickstart.sh test   -> sets up runtime + test/training tooling + librealsense, runs lint and tests
# Everything the project needs is installed here (pip packages and, for pyrealsense2, libusb-1.0-0).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-demo}"; shift || true
PY="${PYTHON:-python3}"
VENV="${HANDSTREAM_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

need_libusb() {
  ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' && return 0
  echo "installing libusb-1.0-0 (needed by pyrealsense2)" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq libusb-1.0-0 >/dev/null
}

case "$what" in
  demo)
    pip_install -e .
    exec "$VENV/bin/handstream" demo "$@"
    ;;
  test)
    need_libusb
    # The CPU build of torch first (a local wheel where the machine has one), so that the dev extra's
    # range is already satisfied and pip does not fetch the multi-GB CUDA build.
    pip_install "torch==2.13.0" || pip_install torch
    pip_install -e ".[dev]"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    exec "$VENV/bin/python" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash tools/quickstart.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
