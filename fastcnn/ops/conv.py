"""fastcnn.ops: conv kernels."""
__all__ = []
