"""ONNX export and import (the ``onnx`` extra: ``pip install "fastcnn[onnx]"``)."""
from .export import export_model

__all__ = ["export_model"]
