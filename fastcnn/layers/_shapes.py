"""Output-shape arithmetic shared by the layers (conv and pooling windows)."""
from ..ops._validation import conv_output_size

__all__ = ["conv_output_shape"]


def conv_output_shape(layer, input_shape, window, strides, padding, what):
    """(None, H, W, C) -> (OH, OW) as Keras, or ValueError naming the layer."""
    h, w = input_shape[1], input_shape[2]
    out = []
    for size, k, s in zip((h, w), window, strides):
        if size is None:
            out.append(None)
            continue
        o = conv_output_size(size, k, s, padding)[0]
        if o <= 0:
            raise ValueError(
                "Computed output size would be negative in layer \"%s\": input shape %s is too "
                "small for %s %s with padding='%s' (each spatial size must be >= the window, "
                "or use padding='same')"
                % (layer.name, "(None, %s, %s, %s)" % tuple(input_shape[1:]), what,
                   window, padding))
        out.append(o)
    return tuple(out)
