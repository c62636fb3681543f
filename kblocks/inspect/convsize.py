"""Convolution arithmetic: how big is the output of a convolution or pooling window?

For an input of size ``i`` (one spatial side), kernel ``k``, stride ``s``, zero padding ``p`` on
each side and dilation ``d`` (``d = 1``: an ordinary kernel), the number of window positions is

    o = floor((i + 2p - d(k - 1) - 1) / s) + 1        which for d = 1 is   floor((i + 2p - k) / s) + 1

Reference: V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
arXiv:1603.07285 (2016), relationship 6; the AlexNet example (227 input, 11x11 kernel, stride 4,
no padding -> 55) is the one of the CS231n lecture notes on ConvNets.

Keras names two paddings: ``"valid"`` is ``p = 0``; ``"same"`` pads so that ``o = ceil(i / s)``
(TensorFlow puts the odd extra pixel at the end, so ``p`` need not be a whole number per side).
Pure Python; no Keras needed.
"""
from __future__ import annotations

from dataclasses import dataclass

from kblocks.common.errors import KBlocksError

__all__ = ["ConvSize", "conv_output_size", "explain_conv_size"]


@dataclass(frozen=True)
class ConvSize:
    """The inputs of the formula, its result, and the worked arithmetic as text."""

    input: int
    kernel: int
    stride: int
    padding: int | str
    dilation: int
    output: int
    formula: str
    worked: str
    note: str = ""

    def text(self) -> str:
        lines = [self.formula, self.worked]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _check(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise KBlocksError(f"{name} must be a whole number >= {minimum}, got {value!r}",
                           hint=f"give {name} as an integer, e.g. {name} {max(minimum, 1)}")
    return value


def conv_output_size(input: int, kernel: int, stride: int = 1, padding: int | str = 0,
                     dilation: int = 1) -> int:
    """The output size ``floor((i + 2p - d(k-1) - 1)/s) + 1`` (or ``ceil(i/s)`` for ``"same"``)."""
    return explain_conv_size(input, kernel, stride, padding, dilation).output


def explain_conv_size(input: int, kernel: int, stride: int = 1, padding: int | str = 0,
                      dilation: int = 1) -> ConvSize:
    """Work the formula with the numbers, e.g. ``(227 + 2*0 - 11) / 4 + 1 = 54 + 1 = 55``.

    ``padding`` is a number of zeros added on each side, or ``"valid"`` (0) or ``"same"``.
    Raises ``KBlocksError`` when a value is not a positive whole number or when the (dilated)
    kernel does not fit in the padded input.
    """
    i = _check("--input", input, 1)
    k = _check("--kernel", kernel, 1)
    s = _check("--stride", stride, 1)
    d = _check("--dilation", dilation, 1)
    if isinstance(padding, str):
        word = padding.strip().lower()
        if word == "valid":
            padding = 0
        elif word == "same":
            out = -(-i // s)
            return ConvSize(
                i, k, s, "same", d, out,
                formula="padding 'same': o = ceil(i / s)",
                worked=f"ceil({i} / {s}) = {out}",
                note=(f"'same' pads {max((out - 1) * s + d * (k - 1) + 1 - i, 0)} zeros in total"
                      " (the odd one at the end) so that every input position starts a window"))
        else:
            try:
                padding = int(word)
            except ValueError:
                raise KBlocksError(f"--padding must be a whole number, 'valid' or 'same', got {padding!r}",
                                   hint="for example --padding 0, --padding 2 or --padding same") from None
    p = _check("--padding", padding, 0)
    span = d * (k - 1) + 1  # the extent of the (dilated) kernel
    numerator = i + 2 * p - span
    if numerator < 0:
        raise KBlocksError(
            f"the kernel ({span} pixels{' dilated' if d > 1 else ''}) is larger than the padded input "
            f"({i} + 2*{p} = {i + 2 * p}): no output position",
            hint="use a smaller --kernel, more --padding, or a larger --input")
    out = numerator // s + 1
    if d == 1:
        formula = "o = floor((i + 2p - k) / s) + 1"
        head = f"({i} + 2*{p} - {k}) / {s} + 1"
    else:
        formula = "o = floor((i + 2p - d(k - 1) - 1) / s) + 1"
        head = f"({i} + 2*{p} - {d}*({k} - 1) - 1) / {s} + 1"
    if numerator % s == 0:
        worked = f"{head} = {numerator} / {s} + 1 = {numerator // s} + 1 = {out}"
        note = ""
    else:
        worked = (f"{head} = floor({numerator} / {s}) + 1 = floor({numerator / s:g}) + 1"
                  f" = {numerator // s} + 1 = {out}")
        note = (f"note: {numerator} is not a multiple of {s}; the last {numerator % s} pixel(s) of the "
                "padded input are never covered by a window")
    return ConvSize(i, k, s, p, d, out, formula=formula, worked=worked, note=note)

