"""Structural identity with ``keras.applications`` of the zoo files added for issue 14 (part B):
DenseNet169/201 and the pre-activation ResNet50V2/101V2/152V2.

The checks and helpers are those of tests/test_keras_identity.py: the parameter count at 224x224x3
and 1000 classes equals Keras' own (read from the layer graph, no Keras model), and Keras' weights
(random, with random batch-norm statistics) copied layer by layer into the kblocks model give the
same class probabilities and pooled features at 32x32x3 with 10 classes (max abs diff < 1e-5).

ResNet V2 differs from v1 in ways a wrong file would still survive a count check, and the weight
identity catches: the stem has no BN - ReLU after it, each unit pre-activates (BN - ReLU before its
convolutions, no ReLU after the add), the 1x1 convolution shortcut reads the pre-activated input,
a stage halves the map in its last unit (a 1x1 max pool of stride 2 on the identity), and a final
BN - ReLU comes before the pooling.
"""
from __future__ import annotations

import pytest

import kblocks
from test_keras_identity import SIZE, check_twin

# zoo name -> (keras.applications function, parameters at 224x224x3 / 1000 classes, features)
GAP_HEADED = {
    "densenet169": ("DenseNet169", 14_307_880, 1664),
    "densenet201": ("DenseNet201", 20_242_984, 1920),
    "resnet50v2": ("ResNet50V2", 25_613_800, 2048),
    "resnet101v2": ("ResNet101V2", 44_675_560, 2048),
    "resnet152v2": ("ResNet152V2", 60_380_648, 2048),
}
HEAVY = {"densenet169", "densenet201", "resnet101v2", "resnet152v2"}  # 10-40 s each on 2 cores


@pytest.mark.parametrize("name", list(GAP_HEADED))
def test_parameter_count_equals_keras_applications(name):
    """At 224x224x3 and 1000 classes, from the layer graph alone."""
    assert kblocks.summary(name, input_shape=(224, 224, 3), classes=1000).params == \
        GAP_HEADED[name][1]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in GAP_HEADED])
def test_weights_copy_over_and_predictions_match(name):
    check_twin(name, GAP_HEADED[name], SIZE, seed=3, min_pairs=100)


def test_resnet50v2_halves_the_map_in_the_last_unit_of_a_stage_as_keras_does():
    """The layer graph, beside the weight identity: where the maps shrink, and what the stride-2
    shortcuts are (a parameter-free 1x1 max pool of the unit's input)."""
    nodes = kblocks.compile("resnet50v2").nodes
    pools = [n for n in nodes if n.token == "POOL" and n.get("size") == 1]
    assert [n.shape for n in pools] == [(28, 28, 256), (14, 14, 512), (7, 7, 1024)]
    assert all(n.get("stride") == 2 for n in pools)
    adds = [n for n in nodes if n.token == "ADD"]
    assert len(adds) == 16 and [a.shape[0] for a in adds] == [56] * 2 + [28] * 4 + [14] * 6 + [7] * 4
    # No BN or ReLU between the stem and its pool: the first unit pre-activates the pooled map.
    assert [n.token for n in nodes[:6]] == ["ZEROPAD", "CONV", "ZEROPAD", "POOL", "BN", "RELU"]
