"""format(parse(text)) re-parses to the same graph: a property test over generated texts (DAGs with
AS/FROM included)."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kblocks

SHAPE = (16, 16, 4)
shape_keeping = st.sampled_from([
    "CONV({f})", "CONV({f}, 3, padding=same)", "CONV({f}, kernel=[1, 3])", "CONV({f}, 1, use_bias=false)",
    "BN", "RELU", "LRELU(0.1)", "PRELU", "ELU", "SWISH", "DROPOUT(0.25)", "SDROPOUT(0.1)", "LRN",
    "SEPCONV({f})", "DWCONV(3)", "GN(groups=2)", "LN", "CONV({f}, 3, dilation=2)",
    "CONV({f}, kernel_initializer=he_normal)", "ZERO",
])
downsampling = st.sampled_from(["POOL", "AVGPOOL(2)", "CONV({f}, 3, stride=2)", "POOL(3, 2, padding=same)",
                                "CONV({f}, 3, padding=1)"])
filters = st.sampled_from([4, 8, 16])


@st.composite
def chain(draw, depth=0):
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 5 if depth < 2 else 2))
        f = draw(filters)
        if kind <= 2:
            parts.append(draw(shape_keeping).format(f=f))
        elif kind == 3:
            parts.append(f"[{draw(chain(depth + 1))}]*{draw(st.integers(0, 2))}")
        elif kind == 4:
            op = draw(st.sampled_from(["|", "+", "&"]))
            n = draw(st.integers(2, 3))
            if op == "|":
                branches = [draw(chain(depth + 1)) for _ in range(n)]
            else:  # add and multiply need equal shapes: end each branch with the same width
                branches = ["SKIP"] + [draw(chain(depth + 1)) + f"-CONV({f}, 1)" for _ in range(n - 1)]
            parts.append("(" + f" {op} ".join(branches) + ")")
        else:
            parts.append(f"{draw(shape_keeping).format(f=f)}?")
    return "-".join(parts)


@st.composite
def network(draw):
    body = draw(chain())
    if draw(st.booleans()):  # a named tensor (DSL 4b): the chain keeps height and width
        name = draw(st.sampled_from(["x", "e1", "skip_0"]))
        merge = draw(st.sampled_from(["(SKIP | FROM({n}))", "(FROM({n}) | SKIP)",
                                      "AS(y) - (FROM({n}) - CONV(4, 1) + FROM(y) - CONV(4, 1))"]))
        body = f"AS({name}) - {body} - " + merge.format(n=name)
    if draw(st.booleans()):
        body += "-" + draw(downsampling).format(f=draw(filters))
    if draw(st.booleans()):
        body += "-AUX[GAP-FC(3)]"
    return body + "-" + draw(st.sampled_from(["GAP-FC(5)", "FC(5)-SOFTMAX", "FLATTEN-FC", "GMP-FC"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network())
def test_format_reparses_to_the_same_graph(text):
    g1 = kblocks.compile(text, input_shape=SHAPE, classes=5)  # the generator only writes valid texts
    canon = g1.canonical_text()
    g2 = kblocks.compile(canon, classes=5)
    assert g2.program.nodes == g1.program.nodes
    assert [(n.token, n.params, n.extra, n.inputs, n.shape) for n in g2.nodes] == \
        [(n.token, n.params, n.extra, n.inputs, n.shape) for n in g1.nodes]
    assert g2.canonical_text() == canon  # a fixed point


def test_canonical_text_examples():
    assert kblocks.format_text("[CONV(16)-RELU]*2-POOL-FC(10)", input_shape=(8, 8, 1)) == \
        "INPUT(8, 8, 1) - CONV(16) - RELU - CONV(16) - RELU - POOL(2) - FC(10)"
    assert kblocks.format_text("(SKIP + CONV(8)-BN)-AUX[FC(2)]-LRELU(0.2)", input_shape=(4, 4, 8)) == \
        "INPUT(4, 4, 8) - (SKIP + CONV(8) - BN) - AUX[FC(2)] - LRELU(0.2)"
