"""handstream runtime: frame types, camera geometry, sources, preprocessing, smoothing, overlay, sinks, CLI.

This package never imports torch: the pipeline runs with numpy, OpenCV and ONNX Runtime alone.
"""

__version__ = "0.1.0"
