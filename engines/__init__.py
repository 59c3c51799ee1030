"""Engines: export PyTorch -> ONNX, build TensorRT engines, one inference interface over TensorRT,
ONNX Runtime and PyTorch, and the shipped default engines with their manifests.

Importing this package never imports torch; the PyTorch backend and the exporter import it lazily.
"""
