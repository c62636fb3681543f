"""Output shapes of each layer kind, from the conv arithmetic of the course notes.

Shapes exclude the batch axis: ``(H, W, C)`` for a 2-D feature map, ``(C,)`` for a vector. For a
window of size k, stride s, dilation d and input size i (seeds, "conv arithmetic"):

* ``valid``: ``floor((i - d*(k-1) - 1) / s) + 1``   (= ``floor((i - k)/s) + 1`` for d = 1)
* ``same``: ``ceil(i / s)``
* ``P`` pixels of explicit zero padding: ``floor((i + 2P - k) / s) + 1`` (a ZEROPAD then ``valid``)
* transposed convolution: ``i * s`` (same) or ``(i - 1) * s + k`` (valid)
"""
from __future__ import annotations

import math


class ShapeError(Exception):
    """A layer cannot take its input; the graph builder adds the place to the message."""


def dims(x) -> str:
    return "x".join(str(v) for v in x)


def _tuple(value, rank):
    if isinstance(value, tuple):
        if len(value) == 1:
            return value * rank
        if len(value) != rank:
            raise ShapeError(f"needs {rank} values, got {list(value)}")
        return value
    return (value,) * rank


def expect_map(token, shape, rank):
    if len(shape) != rank + 1:
        have = "a vector of " + str(shape[0]) if len(shape) == 1 else f"a {len(shape) - 1}-D map {dims(shape)}"
        want = {1: "a sequence (L, C)", 2: "a feature map (H, W, C)", 3: "a volume (D, H, W, C)"}[rank]
        raise ShapeError(f"{token} needs {want} but gets {have}")


def window(token, shape, kernel, stride, padding, dilation=1, *, what="kernel", count=None):
    """Spatial output sizes of a sliding window (convolution or pooling)."""
    rank = len(shape) - 1
    k = _tuple(kernel, rank)
    s = _tuple(stride, rank)
    d = _tuple(dilation, rank)
    out = []
    for i, kk, ss, dd in zip(shape[:-1], k, s, d):
        span = dd * (kk - 1) + 1
        if padding == "same":
            out.append(math.ceil(i / ss))
        else:
            out.append((i - span) // ss + 1)
    if any(o < 1 for o in out):
        eff = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        after = f" after {count} {token.lower()}s" if count and count > 1 else ""
        raise ShapeError(f"input {dims(shape[:-1])} is smaller than the {dims(eff)} {what} "
                         f"(output would be {dims(out)}{after}); use padding=same, a smaller "
                         f"{what} or fewer downsampling layers")
    return tuple(out)


def conv_transpose(shape, kernel, stride, padding):
    rank = len(shape) - 1
    k = _tuple(kernel, rank)
    s = _tuple(stride, rank)
    if padding == "same":
        return tuple(i * ss for i, ss in zip(shape[:-1], s))
    return tuple((i - 1) * ss + kk for i, kk, ss in zip(shape[:-1], k, s))


def zero_pad(shape, pad):
    rank = len(shape) - 1
    p = _tuple(pad, rank)
    return tuple(i + 2 * pp for i, pp in zip(shape[:-1], p)) + (shape[-1],)


def upsample(shape, size):
    rank = len(shape) - 1
    return tuple(i * ss for i, ss in zip(shape[:-1], _tuple(size, rank))) + (shape[-1],)


def broadcast(a, b):
    """Right-aligned broadcasting of two shapes (numpy rules); raises ShapeError on mismatch."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise ShapeError(f"shapes {dims(a)} and {dims(b)} do not match")
        out.append(max(x, y))
    return tuple(reversed(out))
