"""ONNX export and import (the ``onnx`` extra: ``pip install "fastcnn[onnx]"``)."""
from .export import export_model
from .importer import load_model

__all__ = ["export_model", "load_model"]
