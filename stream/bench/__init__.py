"""`handstream bench`: stage-by-stage latency, backends and model variants side by side, and peers.

Pure pieces (stats, report, machine info, plots) live in their own modules so tools and tests can use them
without running a benchmark. Nothing here imports torch at import time: the PyTorch-eager comparison
imports it inside the function that times it and is skipped with a note when it is absent.
"""
