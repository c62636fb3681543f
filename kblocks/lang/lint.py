"""Warnings about texts that compile but are probably not what was meant (issue 17).

Never errors: each is a :class:`TextWarning` (a message and the place it is about), kept in
``Graph.warnings``; the summary prints them under its last lines, the command line on stderr, and
``kblocks.compile`` (so ``build``, ``summary``, ``analyse``) gives Python users one
``warnings.warn(..., KBlocksWarning)`` per call. The checks:

* a window (CONV, POOL, ...) with ``padding=valid`` whose stride does not tile its input, so that
  rows or columns are never seen (CS231n's "7x7 input, 3x3 filter, stride 3 doesn't fit"), when
  they are at least :data:`UNUSED_FRACTION` of the input;
* a convolution kernel larger than its input (with ``padding=same`` it mostly sees zeros);
* a CONV whose first two numbers look like PyTorch's ``Conv2d(in_channels, out_channels, ...)``;
* a softmax straight after a softmax;
* an input shape that looks channels-first (``3,32,32``): kblocks takes H,W,C;
* a variable given (``--set``, ``variables=``) that the text never reads.

A graph without warnings costs one pass over its nodes and no text is formatted.
"""
from __future__ import annotations

from dataclasses import dataclass

from kblocks.common.errors import Span
from kblocks.lang.graph import INPUT, Graph
from kblocks.lang.shapes import dims

#: A kernel side this large written as CONV's second number is taken for PyTorch's out_channels.
PYTORCH_KERNEL_MIN = 12

#: A window whose stride leaves rows or columns unused is warned of when they are at least this
#: fraction of the input's side (CS231n's 1 of 7; not ResNet's 1 of 230, which torchvision has too).
UNUSED_FRACTION = 0.1

#: Channel counts a channels-first image input starts with (grey, RGB, RGBA).
IMAGE_CHANNELS = (1, 3, 4)


class KBlocksWarning(UserWarning):
    """A text that compiles but is probably not what was meant (see :mod:`kblocks.lang.lint`)."""


@dataclass(frozen=True)
class TextWarning:
    """One warning: what is suspicious and where it was written."""

    message: str
    span: Span = Span()

    def __str__(self) -> str:
        where = self.span.describe() if self.span.line or self.span.source else ""
        return f"{where}: {self.message}" if where else self.message


def _written(node) -> str:
    return node.text or node.dsl


def _is_softmax(node) -> bool:
    if node.spec.keras_class == "Softmax":
        return True
    values = dict(node.spec.fixed)
    values.update(dict(node.extra))
    return str(values.get("activation", "")) == "softmax"


def _window_warning(node, in_shape) -> str | None:
    rank = len(in_shape) - 1
    params = dict(node.params)
    win = node.spec.kind.window(params, rank) if rank > 0 else None
    if win is None or win.kernel is None or win.transposed:
        return None
    sizes, kernel, stride = in_shape[:-1], win.kernel, win.stride
    if node.token in ("CONV", "CONV1D", "CONV3D") and params.get("filters") == in_shape[-1] \
            and max(kernel) >= PYTORCH_KERNEL_MIN:
        k = max(kernel)
        return (f"{_written(node)} makes {params['filters']} filters of size {k}: kblocks writes "
                f"CONV(filters, kernel, stride), while PyTorch's Conv2d(in_channels, out_channels, "
                f"kernel_size) puts the input channels first; Conv2d({in_shape[-1]}, {k}, K) is "
                f"CONV({k}, K)")
    if params.get("padding") == "valid":
        left = [(i - k) % s for i, k, s in zip(sizes, kernel, stride) if s > 1 and i >= k
                and (i - k) % s >= UNUSED_FRACTION * i]
        if any(left):
            n = max(left)
            return (f"{_written(node)} on {dims(sizes)} leaves {n} row{'s' if n > 1 else ''}/"
                    f"column{'s' if n > 1 else ''} unused: (input - window) is not a multiple of "
                    f"the stride {_axes(stride)}; use padding=same or an input that fits")
    elif any(k > i for i, k in zip(sizes, kernel)):
        return (f"{_written(node)}: its {dims(kernel)} window is larger than its {dims(sizes)} "
                f"input, so most of it only sees padding")
    return None


def _axes(values) -> str:
    return str(values[0]) if len(set(values)) == 1 else dims(values)


def channels_first(shape) -> bool:
    """Whether an image input shape looks channels-first (``(3, 32, 32)``: kblocks takes H,W,C)."""
    return (len(shape) == 3 and shape[0] in IMAGE_CHANNELS and shape[-1] not in IMAGE_CHANNELS
            and shape[1] > max(IMAGE_CHANNELS))


def channels_hint(shape) -> str:
    """The fix for a channels-first input shape."""
    h, w, c = shape[1], shape[2], shape[0]
    return (f"the input shape {dims(shape)} looks channels-first; kblocks takes H,W,C (channels "
            f"last): {h},{w},{c}, not {c},{h},{w}")


def check(graph: Graph, *, given=(), used=()) -> tuple:
    """The :class:`TextWarning` s of a graph, in the order of the text.

    Args:
        graph: the compiled graph.
        given: the names of the variables the caller gave (``--set``, ``variables=``).
        used: the names the text read.

    Returns:
        A tuple of warnings (empty for an ordinary text).
    """
    out = []
    if channels_first(graph.input_shape):
        out.append(TextWarning(channels_hint(graph.input_shape)))
    for node in graph.nodes:
        in_shape = graph.shape_of(node.inputs[0])
        if node.spec.kind.window is not None and len(in_shape) > 1:
            message = _window_warning(node, in_shape)
            if message:
                out.append(TextWarning(message, node.span))
        if len(node.inputs) == 1 and node.inputs[0] != INPUT and _is_softmax(node):
            before = graph.nodes[node.inputs[0]]
            if _is_softmax(before):
                at = f" at {before.span.describe()}" if before.span.line else ""
                out.append(TextWarning(
                    f"{_written(node)} follows another softmax ({_written(before)}{at}): a second "
                    f"softmax squeezes the probabilities towards uniform; keep one", node.span))
    for name in sorted(set(given) - set(used) - {"classes"}):
        out.append(TextWarning(f"the variable {name!r} is given but the architecture never uses "
                               f"it"))
    return tuple(dict.fromkeys(out))  # a block used five times warns once per place
