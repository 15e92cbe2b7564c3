"""ONNX export and import (the ``onnx`` extra: ``pip install "fastcnn[onnx]"``)."""
from .importer import load_model  # noqa: E402,F401
