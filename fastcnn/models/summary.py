"""``model.summary()``: the table Keras 3 prints (rich's box style, rendered without rich).

Keras prints a 3-column table ("Layer (type)", "Output Shape", "Param #") whose default
width is ``min(88, terminal columns - 4)``; with an 80-column terminal (or no terminal, the
usual case in logs and notebooks) that is 76 characters, cell widths 31 / 22 / 13.
"""
import shutil
import textwrap

__all__ = ["print_summary", "readable_memory_size"]


def readable_memory_size(size):
    """Bytes -> '478.79 KB' (powers of 1024, two decimals, as Keras)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return "%.2f %s" % (size, unit)
        size /= 1024
    return "%.2f %s" % (size, "PB")


def _cell_widths(line_length, positions):
    cols = []
    current = 0
    for pos in positions:
        width = int(pos * line_length) - current if pos <= 1 else int(pos) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        cols.append(width)
        current += width
    # borders (4) + one space of padding each side of each cell (6) come out of the columns
    content = [cols[0] - 3, cols[1] - 4]
    content.append(line_length - 10 - sum(content))
    if min(content) < 1:
        raise ValueError("Insufficient console width to print summary.")
    return content


def _wrap(text, width):
    lines = textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)
    return lines or [""]


def _shape_text(shape):
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def print_summary(model, line_length=None, positions=None, print_fn=None):
    if line_length is None:
        line_length = min(88, shutil.get_terminal_size().columns - 4)
    widths = _cell_widths(line_length, positions or [0.45, 0.80, 1.0])
    align = ("left", "left", "right")

    def border(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(cells):
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
        height = max(len(w) for w in wrapped)
        out = []
        for i in range(height):
            parts = []
            for lines, w, a in zip(wrapped, widths, align):
                text = lines[i] if i < len(lines) else ""
                parts.append(" " + (text.rjust(w) if a == "right" else text.ljust(w)) + " ")
            out.append("│" + "│".join(parts) + "│")
        return out

    lines = ['Model: "%s"' % model.name,
             border("┏", "━", "┳", "┓")]
    head = row(["Layer (type)", "Output Shape", "Param #"])
    lines += [h.replace("│", "┃") for h in head]
    lines.append(border("┡", "━", "╇", "┩"))
    body = []
    for layer in model.layers:
        name = "%s (%s)" % (layer.name, type(layer).__name__)
        shape = _shape_text(layer.output_shape) if layer.built and layer.output_shape \
            else "?"
        params = "{:,}".format(layer.count_params()) if layer.built else "0 (unbuilt)"
        body.append(row([name, shape, params]))
    for i, r in enumerate(body):
        if i:
            lines.append(border("├", "─", "┼", "┤"))
        lines += r
    lines.append(border("└", "─", "┴", "┘"))

    trainable = [w for w in model.weights if w.trainable]
    non_trainable = [w for w in model.weights if not w.trainable]
    n_train = sum(w.size for w in trainable)
    n_non = sum(w.size for w in non_trainable)
    opt_vars = None
    opt = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and opt is not None and opt.built:
        opt_vars = opt.variables
    n_opt = sum(v.size for v in opt_vars) if opt_vars else 0
    mem_train, mem_non = 4 * n_train, 4 * n_non
    mem_opt = sum(v.size * v.itemsize for v in opt_vars) if opt_vars else 0
    lines.append(" Total params: {:,} ({})".format(
        n_train + n_non + n_opt, readable_memory_size(mem_train + mem_non + mem_opt)))
    lines.append(" Trainable params: {:,} ({})".format(n_train, readable_memory_size(mem_train)))
    lines.append(" Non-trainable params: {:,} ({})".format(n_non, readable_memory_size(mem_non)))
    if opt_vars:
        lines.append(" Optimizer params: {:,} ({})".format(n_opt, readable_memory_size(mem_opt)))
    text = "\n".join(lines)
    if print_fn is None:
        print(text)
    else:
        print_fn(text)
    return text

