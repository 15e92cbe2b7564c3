"""Layouts that turn a dilated or grouped Conv2D into plain ones (ops.conv orchestrates).

- Dilation (dh, dw) at stride 1 (space-to-batch): output pixel (a + dh*t, b + dw*u) reads
  only input pixels on one lattice, rows a - rh + dh*s and columns b - rw + dw*v (rh, rw:
  the padding modulo the rates), with tap (i, j) at s = t + i - pt // dh. So each of the
  dh*dw lattices, gathered as a sub-image, is an undilated convolution with the same
  kernel and padding (pt // dh, pl // dw); stacked along the batch they run as one plain
  conv2d (Winograd where it pays), whose kernel gradient sums over them too. The gathers
  and scatters are C copies (csrc/conv2d_grouped.c, fc_lattice_*).
- Groups with enough channels per group (where grouped Winograd does not apply, see
  ops.conv): one plain conv2d per group on that group's channel slice, instead of
  per-group GEMMs only ``filters / groups`` columns wide.

Only exact copies happen here (no arithmetic), so results keep the plain kernels' bits
whatever the thread count.
"""
from .. import _ext

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


class SubImages:
    """The space-to-batch geometry of one dilated convolution (stride 1).

    Args:
        x_shape: (N, H, W, C) of the input.
        kernel_shape: (kh, kw, C / groups, F).
        pads: (pad_top, pad_left) of the dilated convolution.
        out_hw: (OH, OW) of the dilated convolution.
        dilation: (dh, dw).

    Attributes:
        pads: (pad_top, pad_left) of the undilated convolution of the sub-images.
        x_shape: (dh * dw * N, hs, ws, C), the stacked sub-images of the input.
        y_shape: (dh * dw * N, ohs, ows, F), their outputs (every sub-image gets the
            outputs of the longest lattice; the extra ones are dropped).
    """

    def __init__(self, x_shape, kernel_shape, pads, out_hw, dilation):
        n, h, w, c = x_shape
        kh, kw, _, f = kernel_shape
        self.dilation = dh, dw = tuple(dilation)
        self.pads = (pads[0] // dh, pads[1] // dw)
        self.offsets = (pads[0] % dh, pads[1] % dw)
        ohs, ows = -(-out_hw[0] // dh), -(-out_hw[1] // dw)
        # the rows the outputs read, less those past every lattice's end (implicit zeros)
        hs = min(ohs + kh - 1 - self.pads[0], -(-(h + self.offsets[0]) // dh))
        ws = min(ows + kw - 1 - self.pads[1], -(-(w + self.offsets[1]) // dw))
        self.x_shape = (dh * dw * n, hs, ws, c)
        self.y_shape = (dh * dw * n, ohs, ows, f)

    def split_input(self, x, xs):
        """xs (x_shape) = the sub-images of x (N, H, W, C), zero where outside x."""
        _ext.lattice_gather(x, self.dilation, self.offsets, xs)
        return xs

    def merge_input_grad(self, dxs, dx):
        """dx (N, H, W, C) from the sub-images' input gradients dxs (x_shape): every input
        pixel lies on exactly one lattice (zero if no output reads it)."""
        _ext.lattice_scatter(dxs, self.dilation, self.offsets, dx)
        return dx

    def split_output_grad(self, dy, dys):
        """dys (y_shape) = dy (N, OH, OW, F) split into the sub-images' output gradients,
        zero for the dropped outputs."""
        _ext.lattice_gather(dy, self.dilation, (0, 0), dys)
        return dys

    def merge_output(self, ys, out):
        """out (N, OH, OW, F) from the sub-images' outputs ys (y_shape)."""
        _ext.lattice_scatter(ys, self.dilation, (0, 0), out)
        return out
