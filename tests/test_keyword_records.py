"""Issue 21, point 7: the summary counts the model Keras builds, for every pass-through keyword.

Every keyword the static table (kblocks/lang/keras_keywords.py) lets through for every token is built on a
one-layer model, each with the representative values listed below; the summary's parameters
(trainable and not) and output shape must equal Keras' own ``count_params()`` / ``output_shape``, or
the keyword must be refused with a kblocks error. A keyword with no value listed fails the test, so
a keyword added to the table cannot be skipped silently.
"""
import math

import pytest

import kblocks
from kblocks.common.errors import ArchitectureError, KBlocksError
from kblocks.lang.expand import _keras_keywords
from kblocks.lang.vocab import VOCAB

# keyword -> DSL values to try (as written in the text)
VALUES = {
    "activation": ["relu"], "activity_regularizer": ["l2"], "autocast": ["false"],
    "dtype": ["float32"], "name": ["custom_layer"], "trainable": ["false"],
    "bias_constraint": ["non_neg"], "bias_initializer": ["ones"], "bias_regularizer": ["l2"],
    "kernel_constraint": ["non_neg"], "kernel_initializer": ["zeros"], "kernel_regularizer": ["l1"],
    "depthwise_constraint": ["non_neg"], "depthwise_initializer": ["ones"],
    "depthwise_regularizer": ["l2"], "pointwise_constraint": ["non_neg"],
    "pointwise_initializer": ["ones"], "pointwise_regularizer": ["l2"],
    "beta_constraint": ["non_neg"], "beta_initializer": ["ones"], "beta_regularizer": ["l2"],
    "gamma_constraint": ["non_neg"], "gamma_initializer": ["ones"], "gamma_regularizer": ["l2"],
    "moving_mean_initializer": ["ones"], "moving_variance_initializer": ["ones"],
    "alpha_constraint": ["non_neg"], "alpha_initializer": ["ones"], "alpha_regularizer": ["l2"],
    "data_format": ["channels_last", "channels_first"],
    "lora_rank": ["2"], "lora_alpha": ["2"], "quantization_config": ["int8"], "rank": ["2"],
    "pool_dimensions": ["2"], "pool_mode": ["max"], "output_padding": ["1"],
    "dilation_rate": ["1", "2"], "depth_multiplier": ["1", "2"], "axis": ["-1", "1"],
    "keepdims": ["false", "true"], "shared_axes": ["[1, 2]"], "renorm": ["false", "true"],
    "renorm_clipping": ["rmax"],  # unused without renorm; Keras keeps it as given
    "renorm_momentum": ["0.9"], "synchronized": ["true"],
    "epsilon": ["0.01"], "momentum": ["0.9"], "noise_shape": ["[1, 1, 1, 4]"], "seed": ["7"],
    "interpolation": ["bilinear"],
}
# (keyword, value) pairs that must be refused; every other value must be honoured exactly
REFUSED = {
    ("data_format", "channels_first"), ("lora_rank", "2"), ("lora_alpha", "2"),
    ("quantization_config", "int8"), ("rank", "2"), ("pool_dimensions", "2"),
    ("pool_mode", "max"), ("output_padding", "1"), ("dilation_rate", "2"),
    ("depth_multiplier", "2"), ("axis", "1"), ("keepdims", "true"), ("shared_axes", "[1, 2]"),
    ("renorm", "true"),
}
MAP = (6, 6, 4)
# token -> (layer text without its closing parenthesis, input shape)
BASE = {
    "CONV": ("CONV(4", MAP), "CONV1D": ("CONV1D(4", (6, 4)), "CONV3D": ("CONV3D(2", (4, 4, 4, 2)),
    "DWCONV": ("DWCONV(3", MAP), "SEPCONV": ("SEPCONV(4", MAP), "CONVT": ("CONVT(4, 3, 2", MAP),
    "POOL": ("POOL(2", MAP), "AVGPOOL": ("AVGPOOL(2", MAP), "GAP": ("GAP(", MAP),
    "GMP": ("GMP(", MAP), "FC": ("FC(3", (5,)), "FLATTEN": ("FLATTEN(", MAP),
    "DROPOUT": ("DROPOUT(0.1", MAP), "SDROPOUT": ("SDROPOUT(0.1", MAP), "BN": ("BN(", MAP),
    "LN": ("LN(", MAP), "GN": ("GN(2", MAP), "LRN": ("LRN(3", MAP), "LRELU": ("LRELU(0.1", MAP),
    "ELU": ("ELU(1.0", MAP), "PRELU": ("PRELU(", MAP), "ZEROPAD": ("ZEROPAD(1", MAP),
    "UPSAMPLE": ("UPSAMPLE(2", MAP), "RESHAPE": ("RESHAPE([36, 4]", MAP),
    "ZERO": ("ZERO(2", MAP), "CROP": ("CROP(4, 3", MAP), "HIGHWAY": ("HIGHWAY(4, kernel=3", MAP),
    "BWCONV": ("BWCONV(4", MAP), "XNORCONV": ("XNORCONV(4", MAP), "BWFC": ("BWFC(3", (5,)),
    "XNORFC": ("XNORFC(3", (5,)),
    "WEIGHT": ("WEIGHT(init=1.0", MAP), "RESCALE": ("RESCALE(0.5", MAP), "NORMALIZE": ("NORMALIZE(", MAP),
    "CHANNEL_SHUFFLE": ("CHANNEL_SHUFFLE(2", MAP), "SPLIT": ("SPLIT(1, 2", MAP),
}
TOKENS = sorted(s.token for s in VOCAB if s.user and s.keras_class)


def _text(token, keyword, value):
    if token in BASE:
        head, shape = BASE[token]
    else:  # the Activation tokens: RELU, GELU, ...
        head, shape = f"{token}(", MAP
    sep = "" if head.endswith("(") else ", "
    return f"{head}{sep}{keyword}={value})", shape


def _weights(variables):
    return sum(math.prod(v.shape) for v in variables)


def test_every_token_is_covered():
    missing = [t for t in TOKENS if t not in BASE and VOCAB[t].keras_class != "Activation"]
    assert not missing, f"no base text for {missing}"


def test_every_keyword_has_a_value():
    keywords = {k for t in TOKENS for k in _keras_keywords(VOCAB[t])}
    missing = sorted(keywords - set(VALUES))
    assert not missing, f"tests/test_keyword_records.py lists no value for {missing}"
    assert {k for k, _ in REFUSED} <= set(VALUES)


@pytest.mark.parametrize("token", TOKENS)
def test_summary_counts_what_keras_builds(token):
    problems = []
    for keyword in sorted(_keras_keywords(VOCAB[token])):
        for value in VALUES[keyword]:
            text, shape = _text(token, keyword, value)
            try:
                model = kblocks.build(text, input_shape=shape)
            except KBlocksError as err:
                if (keyword, value) not in REFUSED:
                    problems.append(f"{text}: refused but should be honoured: {err}")
                continue
            if (keyword, value) in REFUSED:
                problems.append(f"{text}: accepted but must be refused")
                continue
            analysis = kblocks.analyse(text, input_shape=shape)
            graph = analysis.graph
            got = (analysis.trainable, analysis.non_trainable,
                   tuple(graph.nodes[graph.outputs[0]].shape))
            want = (_weights(model.trainable_weights), _weights(model.non_trainable_weights),
                    tuple(model.output_shape[1:]))
            if analysis.params != model.count_params() or got != want:
                problems.append(f"{text}: summary (trainable, frozen, shape) {got}, Keras {want}")
    assert not problems, "\n".join(problems)


def test_data_format_is_refused_with_position_and_hint():
    text = "INPUT(8, 8, 3)-CONV(8, data_format=channels_first)-FC(2)"
    with pytest.raises(ArchitectureError) as info:
        kblocks.analyse(text)
    err = info.value
    assert "data_format" in str(err) and "CONV" in str(err)
    assert err.span.line == 1 and text[err.span.column - 1:].startswith("data_format")
    assert "leave data_format out" in str(err)


def test_refused_keyword_through_a_variable():
    with pytest.raises(ArchitectureError, match="lora_rank"):
        kblocks.analyse("FC(4, lora_rank=r)", input_shape=(5,), r=4)


def test_table_lists_only_what_keras_accepts():
    """A keyword in the table that the Keras constructor refuses (SpatialDropout2D took no
    noise_shape/trainable/autocast) would pass the analysis and fail only when the model is built."""
    from kblocks.lang.expand import _installed_keras_keywords
    from kblocks.lang.keras_keywords import KERAS_KEYWORDS

    for spec in VOCAB:
        if spec.keras_class in KERAS_KEYWORDS:
            installed = _installed_keras_keywords(spec) | {a.keras for a in spec.args if a.keras}
            assert KERAS_KEYWORDS[spec.keras_class] <= installed, spec.token  # newer Keras: more
