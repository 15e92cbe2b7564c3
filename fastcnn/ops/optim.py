"""fastcnn.ops: optim kernels."""
__all__ = []
