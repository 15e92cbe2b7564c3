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


def _ratio_reduce(total, ratios, maximums, values):
    """rich's ratio_reduce: take ``total`` off ``values`` in proportion to ``ratios``."""
    total_ratio = sum(r for r, m in zip(ratios, maximums) if m)
    result = []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and maximum and total_ratio > 0:
            distributed = min(maximum, round(ratio * total / total_ratio))
            result.append(value - distributed)
            total -= distributed
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _cell_widths(line_length, positions):
    """Content widths of the columns, as rich lays Keras' table out: each column asks for
    its share of line_length plus one space of padding each side; the borders' and the
    padding's excess is then taken off all columns evenly."""
    cols = []
    current = 0
    for pos in positions:
        width = int(pos * line_length) - current if pos <= 1 else int(pos) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        cols.append(width + 2)
        current += width
    excess = sum(cols) + len(cols) + 1 - line_length
    if excess > 0:
        cols = _ratio_reduce(excess, [1] * len(cols), cols, cols)
    content = [c - 2 for c in cols]
    if min(content) < 1:
        raise ValueError("Insufficient console width to print summary.")
    return content


def _wrap(text, width, ellipsis=False):
    """Word-wrapped lines; a word longer than the width is folded, or with ``ellipsis`` cut
    to width - 1 characters and '…' (rich's overflow modes)."""
    if not ellipsis:
        lines = textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)
        return lines or [""]
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return [l if len(l) <= width else l[:width - 1] + "…" for l in lines] or [""]


def _shape_text(shape):
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _sequential_like(model):
    """Keras' test: one node per depth, each with one input, and no layer used twice."""
    if not hasattr(model, "inputs") or type(model).__name__ == "Sequential":
        return True
    layers = model.layers
    for layer in layers:
        nodes = model.nodes_of(layer)
        if len(nodes) > 1 or any(len(n.input_tensors) > 1 for n in nodes):
            return False
    consumers = {}
    for layer in layers:
        for node in model.nodes_of(layer):
            for t in node.input_tensors:
                consumers[id(t)] = consumers.get(id(t), 0) + 1
    return all(c == 1 for c in consumers.values()) and len(model.inputs) == 1


def _connections(model, layer):
    out = []
    for node in model.nodes_of(layer):
        for t in node.input_tensors:
            src, node_index, tensor_index = t._keras_history
            out.append("%s[%d][%d]" % (src.name, model.node_index(src, node_index),
                                       tensor_index))
    return ", ".join(out) or "-"


def _layer_shape(model, layer):
    nodes = model.nodes_of(layer) if hasattr(model, "nodes_of") else []
    if nodes:
        return _shape_text(nodes[-1].output_tensors[0].shape)
    if layer.built and layer.output_shape:
        return _shape_text(layer.output_shape)
    return "?"


def print_summary(model, line_length=None, positions=None, print_fn=None,
                  expand_nested=False, show_trainable=False, layer_range=None):
    graph = not _sequential_like(model)
    default = 108 if graph else 88
    if show_trainable:
        default += 12
    if line_length is None:
        line_length = min(default, shutil.get_terminal_size().columns - 4)
    header = ["Layer (type)", "Output Shape", "Param #"]
    align = ["left", "left", "right"]
    base = [0.3, 0.56, 0.74, 1.0] if graph else [0.45, 0.80, 1.0]
    if graph:
        header.append("Connected to")
        align.append("left")
    if show_trainable:
        base = [p * 0.90 for p in base] + [1.0]
        header.append("Trainable")
        align.append("center")
    positions = positions or base
    if len(positions) != len(header):
        raise ValueError("summary: positions must have %d entries for these columns %s, got "
                         "%r" % (len(header), header, positions))
    widths = _cell_widths(line_length, positions)

    def border(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(cells):
        wrapped = [_wrap(c, w, h == "Connected to") for c, w, h in zip(cells, widths, header)]
        height = max(len(w) for w in wrapped)
        out = []
        for i in range(height):
            parts = []
            for lines, w, a in zip(wrapped, widths, align):
                text = lines[i] if i < len(lines) else ""
                text = (text.rjust(w) if a == "right" else text.center(w) if a == "center"
                        else text.ljust(w))
                parts.append(" " + text + " ")
            out.append("│" + "│".join(parts) + "│")
        return out

    def cells(owner, layer, prefix):
        name = "%s%s (%s)" % (prefix, layer.name, type(layer).__name__)
        params = "{:,}".format(layer.count_params()) if layer.built else "0 (unbuilt)"
        c = [name, _layer_shape(owner, layer), params]
        if graph:
            c.append(_connections(owner, layer) if hasattr(owner, "nodes_of") else "-")
        if show_trainable:
            c.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        return c

    entries = []

    def add(owner, prefix):
        for layer in owner.layers:
            entries.append((layer.name, cells(owner, layer, prefix)))
            if expand_nested and hasattr(layer, "layers") and hasattr(layer, "inputs"):
                add(layer, prefix + " └ ")
    add(model, "")
    if layer_range is not None:
        names = [n for n, _ in entries]
        if (not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2
                or layer_range[0] not in names or layer_range[1] not in names):
            raise ValueError("summary: layer_range must be [first layer name, last layer name] "
                             "of this model's layers %s, got %r" % (names, layer_range))
        lo, hi = names.index(layer_range[0]), names.index(layer_range[1])
        entries = entries[lo:hi + 1]

    lines = ['Model: "%s"' % model.name, border("┏", "━", "┳", "┓")]
    lines += [h.replace("│", "┃") for h in row(header)]
    lines.append(border("┡", "━", "╇", "┩"))
    for i, (_, c) in enumerate(entries):
        if i:
            lines.append(border("├", "─", "┼", "┤"))
        lines += row(c)
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

