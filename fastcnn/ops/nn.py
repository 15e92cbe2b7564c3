"""fastcnn.ops: nn kernels."""
__all__ = []
