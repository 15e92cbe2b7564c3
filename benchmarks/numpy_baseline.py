"""A clean NumPy implementation of the seed model's layers: the speed baseline for fastcnn.

Everything is float32 NHWC with Keras layouts (conv kernel (kh, kw, C, F)), written the way
a careful NumPy programmer would: im2col through stride tricks + one ``np.matmul`` (which
runs on NumPy's multithreaded BLAS), col2im as kh*kw strided slice additions, max pooling
by reshape. It has no dependency on fastcnn so it can be timed (and checked) on its own.

    from numpy_baseline import conv2d_forward, conv2d_backward, max_pool2d_forward, ...
    from numpy_baseline import TutorialModel   # the whole Keras CIFAR-10 tutorial model

``TutorialModel`` trains the Keras CIFAR-10 tutorial CNN end to end (forward, softmax
cross-entropy, backward, Adam) in the same style, so it is both the speed baseline for a
whole training step and a test oracle for fastcnn's Sequential model.
"""
import ctypes
import glob
import os

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["same_padding", "conv_output_hw", "im2col", "col2im", "conv2d_forward",
           "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward", "TutorialModel",
           "set_blas_threads"]


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


# ----------------------------------------------------------------------------- whole model
def _glorot_uniform(rng, shape, dtype):
    """Keras' GlorotUniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), receptive field
    (kh*kw) multiplied into both fans for conv kernels."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class TutorialModel:
    """The Keras CIFAR-10 tutorial CNN in plain NumPy (float32, NHWC, Keras layouts)::

        Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2)
        -> Conv2D(64, 3x3, relu) -> Flatten -> Dense(64, relu) -> Dense(10)   (logits)

    compiled with Adam (Keras' form: lr 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7) and
    sparse softmax cross-entropy on the logits. Kernels are Glorot-uniform, biases zero;
    ``get_weights``/``set_weights`` use Keras' order (per layer: kernel, bias), so weights can
    be exchanged with ``fastcnn.models.Sequential`` (or Keras) of the same layers.

    The convolutions are im2col + one ``np.matmul`` each way (the forward's column matrix is
    kept for the weight gradient), col2im by strided slice additions. ``dtype=np.float64``
    gives a float64 twin (for finite-difference checks of the backward pass).
    """

    CONVS = ((3, 32), (32, 64), (64, 64))
    DENSES = ((1024, 64), (64, 10))

    def __init__(self, seed=0, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.dtype = dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError("TutorialModel: dtype must be float32 or float64, got %s" % dt)
        self.weights = []
        for c, f in self.CONVS:
            self.weights += [_glorot_uniform(rng, (3, 3, c, f), dt), np.zeros(f, dt)]
        for i, o in self.DENSES:
            self.weights += [_glorot_uniform(rng, (i, o), dt), np.zeros(o, dt)]
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon = epsilon
        self.iterations = 0
        self._m = [np.zeros_like(w) for w in self.weights]
        self._v = [np.zeros_like(w) for w in self.weights]

    # -- weights (Keras order) ------------------------------------------------------------
    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError("TutorialModel.set_weights: expected %d arrays, got %d"
                             % (len(self.weights), len(weights)))
        for w, new in zip(self.weights, weights):
            if np.shape(new) != w.shape:
                raise ValueError("TutorialModel.set_weights: shape %s where %s was expected"
                                 % (np.shape(new), w.shape))
        for w, new in zip(self.weights, weights):
            w[...] = new

    # -- layers ---------------------------------------------------------------------------
    @staticmethod
    def _conv_relu(x, kernel, bias):
        """Returns (y, cols): y = relu(im2col(x) @ kernel + bias), cols kept for dW."""
        kh, kw, c, f = kernel.shape
        cols, (oh, ow, _) = im2col(x, kh, kw)
        y = np.matmul(cols, kernel.reshape(-1, f))
        y += bias
        np.maximum(y, 0, out=y)
        return y.reshape(x.shape[0], oh, ow, f), cols

    @staticmethod
    def _conv_relu_backward(dy, y, cols, x_shape, kernel, need_input_grad):
        """(dx | None, dkernel, dbias) given dy w.r.t. the ReLU output y."""
        kh, kw, c, f = kernel.shape
        dz = (dy * (y > 0)).reshape(-1, f)
        dkernel = np.matmul(cols.T, dz).reshape(kernel.shape)
        dbias = dz.sum(axis=0)
        dx = None
        if need_input_grad:
            dcols = np.matmul(dz, kernel.reshape(-1, f).T)
            dx = col2im(dcols, x_shape, kh, kw, (1, 1), y.shape[1], y.shape[2],
                        ((0, 0), (0, 0)))
        return dx, dkernel, dbias

    def _forward(self, x):
        w = self.weights
        x = np.ascontiguousarray(x, dtype=self.dtype)
        cache = {"x0": x}
        h = x
        for k in range(3):
            h_in = h
            h, cols = self._conv_relu(h_in, w[2 * k], w[2 * k + 1])
            cache["conv%d" % k] = (h_in.shape, cols, h)
            if k < 2:
                h_pre = h
                h, argmax = max_pool2d_forward(h_pre, (2, 2))
                cache["pool%d" % k] = (h_pre.shape, argmax)
        flat = h.reshape(h.shape[0], -1)  # NHWC order, as Keras' Flatten
        cache["flat_shape"] = h.shape
        z1 = np.matmul(flat, w[6])
        z1 += w[7]
        a1 = np.maximum(z1, 0)
        logits = np.matmul(a1, w[8])
        logits += w[9]
        cache.update(flat=flat, a1=a1)
        return logits, cache

    def forward(self, x):
        """Logits (N, 10) of a float batch x (N, 32, 32, 3)."""
        return self._forward(x)[0]

    __call__ = forward

    # -- training -------------------------------------------------------------------------
    @staticmethod
    def loss_and_grad(logits, labels):
        """Mean sparse softmax cross-entropy and its gradient w.r.t. the logits."""
        labels = np.asarray(labels).reshape(-1).astype(np.intp)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, labels]))
        dlogits = e / s
        dlogits[rows, labels] -= 1.0
        dlogits /= dlogits.dtype.type(n)
        return loss, dlogits

    def gradients(self, x, y):
        """(loss, [gradients in get_weights order]) of one batch, weights unchanged."""
        w = self.weights
        logits, cache = self._forward(x)
        loss, dlogits = self.loss_and_grad(logits, y)
        grads = [None] * len(w)
        a1, flat = cache["a1"], cache["flat"]
        grads[8] = np.matmul(a1.T, dlogits)
        grads[9] = dlogits.sum(axis=0)
        dz1 = np.matmul(dlogits, w[8].T)
        dz1 *= a1 > 0
        grads[6] = np.matmul(flat.T, dz1)
        grads[7] = dz1.sum(axis=0)
        g = np.matmul(dz1, w[6].T).reshape(cache["flat_shape"])
        for k in (2, 1, 0):
            x_shape, cols, y_out = cache["conv%d" % k]
            g, grads[2 * k], grads[2 * k + 1] = self._conv_relu_backward(
                g, y_out, cols, x_shape, w[2 * k], need_input_grad=k > 0)
            if k > 0:
                pool_in_shape, argmax = cache["pool%d" % (k - 1)]
                g = max_pool2d_backward(g, argmax, pool_in_shape, (2, 2))
        return loss, grads

    def apply_gradients(self, grads):
        """One Adam step, Keras' form: lr_t = lr*sqrt(1-b2^t)/(1-b1^t);
        m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; w -= lr_t*m/(sqrt(v)+eps)."""
        self.iterations += 1
        t = self.iterations
        b1, b2 = self.beta_1, self.beta_2
        f = self.dtype.type
        lr_t = f(self.learning_rate * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))
        b1, b2, eps = f(b1), f(b2), f(self.epsilon)
        for w, g, m, v in zip(self.weights, grads, self._m, self._v):
            g = g.astype(self.dtype, copy=False)
            m *= b1
            m += (f(1) - b1) * g
            v *= b2
            v += (f(1) - b2) * (g * g)
            w -= lr_t * m / (np.sqrt(v) + eps)

    def train_step(self, x, y):
        """Forward, loss, backward and one Adam step on (x, integer labels y); returns the
        batch's mean loss (before the update)."""
        loss, grads = self.gradients(x, y)
        self.apply_gradients(grads)
        return loss


# ----------------------------------------------------------------------------- BLAS threads
def set_blas_threads(n):
    """Best effort: set the thread count of NumPy's OpenBLAS (no threadpoolctl needed).

    Returns True if a known ``*set_num_threads*`` entry point was found and called.
    """
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                    "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn(int(n))
                return True
    return False
