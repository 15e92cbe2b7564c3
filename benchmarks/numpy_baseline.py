"""A clean NumPy implementation of the seed model's layers: the speed baseline for fastcnn.

Everything is float32 NHWC with Keras layouts (conv kernel (kh, kw, C, F)), written the way
a careful NumPy programmer would: im2col through stride tricks + one ``np.matmul`` (which
runs on NumPy's multithreaded BLAS), col2im as kh*kw strided slice additions, max pooling
by reshape. It has no dependency on fastcnn so it can be timed (and checked) on its own.

    from numpy_baseline import conv2d_forward, conv2d_backward, max_pool2d_forward, ...
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["same_padding", "conv_output_hw", "im2col", "col2im", "conv2d_forward",
           "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward"]


def same_padding(size, window, stride):
    """Keras/TensorFlow `same`: (out, pad_before, pad_after), the odd extra at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def conv_output_hw(h, w, kh, kw, strides, padding):
    """(OH, OW, ((pt, pb), (pl, pr))) for a conv or pool window."""
    sh, sw = strides
    if padding == "same":
        oh, pt, pb = same_padding(h, kh, sh)
        ow, pl, pr = same_padding(w, kw, sw)
    elif padding == "valid":
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        pt = pb = pl = pr = 0
    else:
        raise ValueError("padding must be 'valid' or 'same', got %r" % (padding,))
    if oh < 1 or ow < 1:
        raise ValueError("window %dx%d larger than input %dx%d" % (kh, kw, h, w))
    return oh, ow, ((pt, pb), (pl, pr))


def _pad(x, pads):
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def im2col(x, kh, kw, strides=(1, 1), padding="valid"):
    """Column matrix (N*OH*OW, kh*kw*C) of x (N, H, W, C), and (OH, OW, pads)."""
    n, h, w, c = x.shape
    oh, ow, pads = conv_output_hw(h, w, kh, kw, strides, padding)
    xp = np.ascontiguousarray(_pad(x, pads))
    s_n, s_h, s_w, s_c = xp.strides
    windows = as_strided(xp, shape=(n, oh, ow, kh, kw, c),
                         strides=(s_n, s_h * strides[0], s_w * strides[1], s_h, s_w, s_c),
                         writeable=False)
    return windows.reshape(n * oh * ow, kh * kw * c), (oh, ow, pads)


def col2im(dcols, x_shape, kh, kw, strides, oh, ow, pads):
    """Adjoint of im2col: sum the (N*OH*OW, kh*kw*C) columns back into (N, H, W, C)."""
    n, h, w, c = x_shape
    (pt, pb), (pl, pr) = pads
    sh, sw = strides
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=dcols.dtype)
    d6 = dcols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += d6[:, :, :, i, j, :]
    return dxp[:, pt:pt + h, pl:pl + w, :]


def conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid", activation=None):
    """Keras Conv2D: act(conv(x, kernel) + bias), x (N,H,W,C), kernel (kh,kw,C,F)."""
    kh, kw, c, f = kernel.shape
    cols, (oh, ow, _) = im2col(x, kh, kw, strides, padding)
    y = np.matmul(cols, kernel.reshape(kh * kw * c, f))
    if bias is not None:
        y += bias
    if activation == "relu":
        np.maximum(y, 0, out=y)
    return y.reshape(x.shape[0], oh, ow, f)


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid", need_input_grad=True,
                    use_bias=True):
    """(dx | None, dkernel, dbias | None) given dy w.r.t. the pre-activation output."""
    kh, kw, c, f = kernel.shape
    cols, (oh, ow, pads) = im2col(x, kh, kw, strides, padding)
    dy2 = dy.reshape(-1, f)
    dkernel = np.matmul(cols.T, dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0) if use_bias else None
    dx = None
    if need_input_grad:
        dcols = np.matmul(dy2, kernel.reshape(kh * kw * c, f).T)
        dx = col2im(dcols, x.shape, kh, kw, strides, oh, ow, pads)
    return dx, dkernel, dbias


def max_pool2d_forward(x, pool_size=(2, 2)):
    """Non-overlapping `valid` max pooling (strides = pool_size) by reshape.

    Returns (y, argmax) where argmax (N, OH, OW, C) is the row-major position of the first
    maximum inside each window (what max_pool2d_backward needs).
    """
    n, h, w, c = x.shape
    ph, pw = pool_size
    oh, ow = h // ph, w // pw
    win = x[:, :oh * ph, :ow * pw, :].reshape(n, oh, ph, ow, pw, c)
    win = win.transpose(0, 1, 3, 2, 4, 5).reshape(n, oh, ow, ph * pw, c)
    argmax = win.argmax(axis=3)
    y = np.take_along_axis(win, argmax[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape, pool_size=(2, 2)):
    """Gradient of max_pool2d_forward: dy goes to the first maximum of each window."""
    n, h, w, c = x_shape
    ph, pw = pool_size
    _, oh, ow, _ = dy.shape
    onehot = argmax[:, :, :, None, :] == np.arange(ph * pw)[None, None, None, :, None]
    dwin = onehot * dy[:, :, :, None, :]
    dwin = dwin.reshape(n, oh, ow, ph, pw, c).transpose(0, 1, 3, 2, 4, 5)
    dx = np.zeros(x_shape, dtype=dy.dtype)
    dx[:, :oh * ph, :ow * pw, :] = dwin.reshape(n, oh * ph, ow * pw, c)
    return dx
