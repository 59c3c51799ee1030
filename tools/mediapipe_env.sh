#!/usr/bin/env bash
# Creates the MediaPipe Hands peer's own virtualenv (default .cache/mediapipe-venv, git-ignored) for
# `handstream bench --peers mediapipe`. MediaPipe is NEVER a project dependency: it pins an old numpy/protobuf
# that would fight the runtime's, so it lives in a venv of its own and is driven as a subprocess
# (tools/mediapipe_peer.py runs inside it).
#
# Version: mediapipe 0.10.21 is the last release that still ships the legacy `mediapipe.solutions.hands`
# with its .tflite models inside the wheel and has a CPython 3.11 manylinux wheel (0.10.30+ dropped
# `solutions`; checked with `pip index versions mediapipe` and by importing it). Its declared requirements
# pull jax/jaxlib, sentencepiece and sounddevice, which the hands solution never imports, so the wheel goes
# in with --no-deps and only what `import mediapipe` really imports is added (matplotlib: drawing_utils).
#
#   bash tools/mediapipe_env.sh            # create (or re-check) the venv, then print its versions
#   MEDIAPIPE_VENV=/tmp/mp bash tools/mediapipe_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MEDIAPIPE_VENV:-.cache/mediapipe-venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.10 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi

MEDIAPIPE_VERSION="0.10.21"
# What mediapipe.python + solutions.hands import at run time, with versions its wheel was built against.
DEPS=(
  "numpy<2"
  "protobuf>=4.25.3,<5"
  "absl-py>=2.1"
  "attrs>=19.1.0"
  "flatbuffers>=2.0"
  "opencv-contrib-python-headless<4.11"
  "matplotlib<3.10"
)

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pip_install "${DEPS[@]}"
pip_install --no-deps "mediapipe==${MEDIAPIPE_VERSION}"

# Fail here, not in the middle of a benchmark, if the legacy solution is not importable.
"$VENV/bin/python" - <<'EOF'
import sys

import mediapipe as mp
import numpy as np
from mediapipe.python.solutions import hands

with hands.Hands(static_image_mode=True, model_complexity=0, max_num_hands=1) as h:
    h.process(np.zeros((64, 64, 3), np.uint8))
print(f"mediapipe {mp.__version__} (solutions.hands ok), numpy {np.__version__}, python {sys.version.split()[0]}")
EOF
echo "peer venv ready: $VENV"
