"""fastcnn.ops: pool kernels."""
__all__ = []
