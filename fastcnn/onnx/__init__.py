"""ONNX export and import (the ``onnx`` extra: ``pip install "fastcnn[onnx]"``)."""
