"""Layouts that turn a dilated or grouped Conv2D into plain ones (ops.conv orchestrates).

- Dilation (dh, dw) at stride 1 (space-to-batch): output pixel (a + dh*t, b + dw*u) reads
  only the input pixels on the lattice (a + dh*., b + dw*.) of the zero-padded input, with
  tap (i, j) at lattice step (t + i, u + j). So each of the dh*dw sub-images is an
  undilated 'valid' convolution with the same kernel; stacked along the batch they run as
  one plain conv2d (Winograd where it pays), whose kernel gradient sums over them too.
- Groups with enough channels per group: one plain conv2d per group on that group's
  channel slice, instead of per-group GEMMs only ``filters / groups`` columns wide.

Only exact copies happen here (no arithmetic), so results keep the plain kernels' bits
whatever the thread count.
"""
import numpy as np

__all__ = ["dilated_applies", "grouped_applies", "SubImages", "channel_slices"]

# Per group, at least this many input and output channels: below it the per-group
# convolutions are too narrow to beat conv2d_grouped.c's im2col over all groups.
MIN_GROUP_CHANNELS = 8


def dilated_applies(strides, dilation):
    """Whether a dilated conv runs as plain convolutions of its sub-images."""
    return tuple(strides) == (1, 1) and tuple(dilation) != (1, 1)


def grouped_applies(x_shape, kernel_shape, groups):
    """Whether a grouped (undilated) conv runs as one plain conv2d per group."""
    cg, fg = x_shape[3] // groups, kernel_shape[3] // groups
    return groups > 1 and min(cg, fg) >= MIN_GROUP_CHANNELS


def channel_slices(channels, groups):
    """The ``groups`` equal slices of ``channels`` channels, in order."""
    per = channels // groups
    return [slice(g * per, (g + 1) * per) for g in range(groups)]


def _lattice(phase, step, pad, size, count):
    """(t0, t1, r0): sub-image positions [t0, t1) of lattice ``phase`` whose source
    position phase + step*t - pad lies inside [0, size); r0 is that of t0."""
    t0 = max(0, -(-(pad - phase) // step))
    r0 = phase + step * t0 - pad
    if r0 >= size:
        return t0, t0, r0
    return t0, min(count, t0 + (size - 1 - r0) // step + 1), r0


class SubImages:
    """The space-to-batch geometry of one dilated convolution (stride 1).

    Args:
        x_shape: (N, H, W, C) of the input.
        kernel_size: (kh, kw).
        pads: (pad_top, pad_left) of the dilated convolution.
        out_hw: (OH, OW) of the dilated convolution.
        dilation: (dh, dw).
    """

    def __init__(self, x_shape, kernel_size, pads, out_hw, dilation):
        self.n, self.h, self.w, self.c = x_shape
        self.dh, self.dw = dilation
        self.pt, self.pl = pads
        self.oh, self.ow = out_hw
        # every sub-image gets the outputs of the longest lattice (the extra ones are
        # dropped) and the input rows those read
        self.ohs, self.ows = -(-self.oh // self.dh), -(-self.ow // self.dw)
        self.hs, self.ws = self.ohs + kernel_size[0] - 1, self.ows + kernel_size[1] - 1

    @property
    def batch(self):
        """Images in the stacked sub-image batch: dh * dw * N."""
        return self.dh * self.dw * self.n

    def _phases(self):
        for a in range(self.dh):
            for b in range(self.dw):
                yield a, b, (a * self.dw + b) * self.n

    def split_input(self, x):
        """x (N, H, W, C) as the zero-padded sub-images (dh*dw*N, hs, ws, C)."""
        xs = np.zeros((self.batch, self.hs, self.ws, self.c), np.float32)
        for a, b, k in self._phases():
            t0, t1, r0 = _lattice(a, self.dh, self.pt, self.h, self.hs)
            u0, u1, c0 = _lattice(b, self.dw, self.pl, self.w, self.ws)
            if t1 > t0 and u1 > u0:
                xs[k:k + self.n, t0:t1, u0:u1] = x[:, r0::self.dh, c0::self.dw][
                    :, :t1 - t0, :u1 - u0]
        return xs

    def merge_input_grad(self, dxs, dx):
        """dx (N, H, W, C) from the sub-images' input gradients: every input pixel lies on
        exactly one lattice, so each is copied once."""
        for a, b, k in self._phases():
            t0, t1, r0 = _lattice(a, self.dh, self.pt, self.h, self.hs)
            u0, u1, c0 = _lattice(b, self.dw, self.pl, self.w, self.ws)
            if t1 > t0 and u1 > u0:
                dx[:, r0::self.dh, c0::self.dw][:, :t1 - t0, :u1 - u0] = \
                    dxs[k:k + self.n, t0:t1, u0:u1]
        return dx

    def split_output_grad(self, dy):
        """dy (N, OH, OW, F) as the sub-images' output gradients (dh*dw*N, ohs, ows, F),
        zero for the dropped outputs."""
        dys = np.zeros((self.batch, self.ohs, self.ows, dy.shape[3]), np.float32)
        for a, b, k in self._phases():
            rows, cols = -(-(self.oh - a) // self.dh), -(-(self.ow - b) // self.dw)
            dys[k:k + self.n, :rows, :cols] = dy[:, a::self.dh, b::self.dw]
        return dys

    def merge_output(self, ys, out):
        """out (N, OH, OW, F) from the sub-images' outputs (dh*dw*N, ohs, ows, F)."""
        for a, b, k in self._phases():
            rows, cols = -(-(self.oh - a) // self.dh), -(-(self.ow - b) // self.dw)
            out[:, a::self.dh, b::self.dw] = ys[k:k + self.n, :rows, :cols]
        return out
