"""Conv arithmetic: floor((i + 2p - k) / s) + 1, worked, and equal to what Keras computes."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import keras

from kblocks.cli import main
from kblocks.common.errors import KBlocksError
from kblocks.inspect.convsize import conv_output_size, explain_conv_size


def test_alexnet_first_layer():
    result = explain_conv_size(227, 11, 4, 0)
    assert result.output == 55
    assert "(227 + 2*0 - 11) / 4 + 1" in result.worked and result.worked.endswith("= 55")
    assert result.formula == "o = floor((i + 2p - k) / s) + 1"
    assert not result.note


def keras_size(i, k, s, p, d=1):
    """The output side Keras computes: explicit zero padding, then a 'valid' convolution."""
    x = keras.Input((i, i, 1))
    if isinstance(p, int) and p:
        x = keras.layers.ZeroPadding2D(p)(x)
    conv = keras.layers.Conv2D(1, k, strides=s, dilation_rate=d,
                               padding=p if isinstance(p, str) else "valid")
    return conv.compute_output_shape(tuple(x.shape))[1]


@pytest.mark.parametrize("i, k, s, p, d", [
    (227, 11, 4, 0, 1),
    (32, 3, 1, 1, 1),
    (32, 3, 2, 1, 1),  # 31 / 2: not exact, floor
    (28, 5, 2, 2, 1),
    (224, 7, 2, 3, 1),  # ResNet stem -> 112
    (13, 3, 1, 0, 2),  # dilation 2: effective kernel 5
    (32, 3, 2, "same", 1),
    (33, 4, 3, "same", 1),
    (30, 5, 1, "valid", 1),
])
def test_matches_keras_conv2d(i, k, s, p, d):
    assert conv_output_size(i, k, s, p, d) == keras_size(i, k, s, p, d)


def test_inexact_division_is_explained():
    result = explain_conv_size(32, 3, 2, 1)
    assert result.output == 16
    assert "floor(31 / 2)" in result.worked
    assert "not a multiple" in result.note


@pytest.mark.parametrize("args, needle", [
    ((5, 7, 1, 0), "larger than the padded input"),
    ((32, 0, 1, 0), "--kernel"),
    ((32, 3, 0, 0), "--stride"),
    ((32, 3, 1, -1), "--padding"),
    ((32, 3, 1, "full"), "--padding"),
])
def test_bad_values_are_user_errors(args, needle):
    with pytest.raises(KBlocksError, match=needle):
        explain_conv_size(*args)


def test_cli_prints_the_worked_formula():
    result = CliRunner().invoke(main, ["conv-size", "--input", "227", "--kernel", "11", "--stride", "4",
                                       "--padding", "0"])
    assert result.exit_code == 0, result.output
    assert "floor((i + 2p - k) / s) + 1" in result.stdout
    assert "(227 + 2*0 - 11) / 4 + 1 = 216 / 4 + 1 = 54 + 1 = 55" in result.stdout
    assert result.stdout.strip().endswith("output size: 55")
    same = CliRunner().invoke(main, ["conv-size", "--input", "32", "--kernel", "3", "--stride", "2",
                                     "--padding", "same"])
    assert same.exit_code == 0 and "output size: 16" in same.stdout


def test_cli_bad_value_exits_2():
    result = CliRunner().invoke(main, ["conv-size", "--input", "5", "--kernel", "7"])
    assert result.exit_code == 2
    assert "larger than the padded input" in result.stderr and "Traceback" not in result.output
