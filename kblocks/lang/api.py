"""The public pipeline: source (text, YAML file or zoo name) -> syntax tree -> expanded program ->
layer graph -> analysis -> Keras model. Each step is one module; this one only wires them."""
from __future__ import annotations

from pathlib import Path

from kblocks.lang import parser
from kblocks.lang.analysis import Analysis, analyse as _analyse
from kblocks.lang.blocks import BlockLibrary, builtin_library, block_from_mapping
from kblocks.common.errors import ArchitectureError, ConfigError, KBlocksError
from kblocks.lang.expand import Expander, finalize_units
from kblocks.lang.graph import Graph, build_graph
from kblocks.lang.spec import ArchitectureFile, load_architecture
from kblocks.lang.table import Summary
from kblocks.lang.yamlfile import load_yaml_text


def parse(text: str):
    """Parse architecture text into its syntax tree, before anything is expanded.

    Args:
        text: architecture text, e.g. ``"[CONV(32)-RELU]*2-POOL"``.

    Returns:
        The :class:`kblocks.lang.syntax.Seq` at the root of the tree (positions kept).

    Raises:
        ParseError: the text does not follow the grammar (with the line and a caret).
    """
    return parser.parse(text)


def _as_arch(source) -> ArchitectureFile:
    """Resolve a source to an ArchitectureFile: a YAML path, a zoo name, or architecture text."""
    if isinstance(source, ArchitectureFile):
        return source
    if isinstance(source, Path) or (isinstance(source, str) and source.strip().lower().endswith(
            (".yaml", ".yml")) and "\n" not in source.strip()):
        path = Path(source)
        try:
            found = path.exists()
        except (OSError, ValueError) as err:  # a name too long for the file system, a NUL byte
            reason = getattr(err, "strerror", None) or err
            raise ConfigError(f"architecture file {str(path)[:200]!r}: {reason}") from None
        if not found:
            raise ConfigError(f"architecture file {str(path)!r} does not exist")
        return load_architecture(path)
    if not isinstance(source, str):
        raise KBlocksError(f"an architecture is a text, a YAML path or a zoo name, got "
                           f"{type(source).__name__}")
    stripped = source.strip()
    if stripped.isidentifier():
        path = zoo_file(stripped)
        if path is not None:
            return load_architecture(path)
    return ArchitectureFile(name="kblocks", network=source)


#: The package whose ``architectures/`` folder holds the named networks. The language reads those
#: files as package data and imports no code of the zoo, which sits above it (it compiles them).
ZOO_PACKAGE = "kblocks.zoo"


def zoo_file(name: str) -> Path | None:
    """Path of the zoo's file for ``name``, or None. Case-insensitive; ``-`` and ``_`` are the same.

    Args:
        name: a network name such as ``"ResNet50"`` or ``"se-resnet50"``.

    Returns:
        The ``.yaml`` file in the zoo's folder, or None when no file has that name.
    """
    import importlib.resources

    key = name.lower().replace("-", "_")
    folder = importlib.resources.files(ZOO_PACKAGE) / "architectures"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml") and entry.name[:-5].lower().replace("-", "_") == key:
            return Path(str(entry))
    return None


def _blocks(arch: ArchitectureFile, blocks) -> BlockLibrary:
    lib = arch.blocks if arch.blocks.blocks or arch.blocks.parent else builtin_library().child()
    if blocks is None:
        return lib
    if isinstance(blocks, (str, Path)):
        extra = load_architecture_blocks(blocks)
    elif isinstance(blocks, BlockLibrary):
        extra = blocks
    elif isinstance(blocks, dict):
        extra = BlockLibrary()
        for name, spec in blocks.items():
            extra.add(block_from_mapping(name, spec, source="blocks="))
    else:
        raise KBlocksError("blocks= takes a YAML path, a mapping name: body, or a BlockLibrary")
    merged = lib.child()
    for block in extra.blocks.values():
        merged.add(block)
    return merged


def load_architecture_blocks(path) -> BlockLibrary:
    """The ``blocks:`` of a YAML file (a file holding only blocks needs no ``network``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"blocks file {str(path)!r} does not exist")
    data, lines = load_yaml_text(path.read_text(encoding="utf-8", errors="replace"), str(path))
    lib = BlockLibrary()
    body = data.get("blocks", {}) if isinstance(data, dict) else {}
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: 'blocks' must be a mapping name: body")
    for name, spec in body.items():
        lib.add(block_from_mapping(str(name), spec, source=str(path), line=lines.get(("blocks", name), 0)))
    return lib


def compile(source, *, input_shape=None, classes=None, blocks=None, resolver=None, **variables) -> Graph:
    """Compile a source to its layer graph: parse, expand, give the FCs their units, build the graph.

    No Keras object is made and Keras is not imported.

    Args:
        source: architecture text, a path to a YAML architecture file, a zoo name, or an
            already loaded :class:`~kblocks.lang.spec.ArchitectureFile`.
        input_shape: the input without the batch axis, e.g. ``(32, 32, 3)``; needed unless the text
            starts with ``INPUT(...)`` or the file has ``input:``.
        classes: units of the last FC written without units (and of each AUX head's).
        blocks: extra named blocks: a YAML path, a mapping ``name: body`` or a ``BlockLibrary``.
        resolver: chooses the values of ``{...}`` placeholders (default: each one's default).
        **variables: values of the variables the text uses (``build(text, width=64)``).

    Returns:
        The :class:`~kblocks.lang.graph.Graph`: one node per Keras layer, with shapes.

    Raises:
        ParseError: the text does not follow the grammar (with the line and a caret).
        ArchitectureError: an unknown layer, block or variable, a bad argument, or a layer that
            cannot take its input shape; :class:`LimitError` (a subclass) for a network over the
            size limits.
        ConfigError: an architecture file that cannot be read or has a key of the wrong form.
        KBlocksError: ``classes`` or ``input_shape`` of the wrong form, or a source of the wrong type.
    """
    arch = _as_arch(source)
    text = arch.network
    src = arch.source if arch.source else ""
    tree = parser.parse(text, source=src)
    env = dict(arch.variables)
    env.update(variables)
    if classes is None:
        classes = env.get("classes", arch.classes)
    if classes is not None:
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise KBlocksError(f"classes must be a positive whole number, got {classes!r}")
        env["classes"] = classes
    expander = Expander(variables=env, blocks=_blocks(arch, blocks), resolver=resolver,
                        defaults=arch.defaults)
    program = expander.expand(tree, text=text, source=src)
    program = finalize_units(program, classes, text=text, source=src)
    shape = _input_shape(program.input_shape, input_shape, arch.input_shape)
    return build_graph(program, shape, text=text, source=src)


def _input_shape(written, given, from_file):
    if given is not None:
        try:
            given = tuple(int(d) for d in given)
        except (TypeError, ValueError):
            raise KBlocksError(f"input_shape must be a list of whole numbers, got {given!r}") from None
        if any(d < 1 for d in given):
            raise KBlocksError(f"input_shape must hold positive sizes, got {given}")
        if written is not None and tuple(written) != given:
            raise ArchitectureError(f"the text says INPUT{tuple(written)} but input_shape={given} was "
                                    f"given; remove one of them")
        return given
    return written if written is not None else from_file


def analyse(source, **kwargs) -> Analysis:
    """Parameters, activation memory, multiply-adds and receptive fields, layer by layer.

    Args:
        source: a :class:`~kblocks.lang.graph.Graph`, or any source :func:`compile` takes.
        **kwargs: passed to :func:`compile` when ``source`` is not a graph.

    Returns:
        The :class:`~kblocks.lang.analysis.Analysis` (totals and one ``LayerStats`` per node).

    Raises:
        KBlocksError: as :func:`compile` raises.
    """
    graph = source if isinstance(source, Graph) else compile(source, **kwargs)
    return _analyse(graph)


def format_text(source, **kwargs) -> str:
    """Canonical text: repetitions, variables, blocks and placeholders written out.

    Parsing the canonical text gives the same graph (tests/test_roundtrip.py).

    Args:
        source: a :class:`~kblocks.lang.graph.Graph`, or any source :func:`compile` takes.
        **kwargs: passed to :func:`compile` when ``source`` is not a graph.

    Returns:
        The text, starting with ``INPUT(...)`` when the input shape is known.

    Raises:
        KBlocksError: as :func:`compile` raises.
    """
    graph = source if isinstance(source, Graph) else compile(source, **kwargs)
    return graph.canonical_text()


def build(source, *, input_shape=None, classes=None, blocks=None, name=None, resolver=None,
          classifier_activation=None, normalize=None, normalize_stats=None, weights=None,
          **variables):
    """Build a :class:`kblocks.lang.models.Network` (a functional ``keras.Model``) from architecture
    text, a YAML file or a zoo name.

    >>> model = build("[[CONV(64)-RELU]*2-POOL]*2-FC(10)", input_shape=(32, 32, 3))

    Output: the network ends as the text says, so a final ``FC`` emits **logits** and a final
    ``SOFTMAX`` probabilities. ``classifier_activation="softmax"`` appends a softmax (as
    ``keras.applications`` does; ``None``, the default, keeps the text's head). The model's
    ``compile()`` defaults match its head (``SparseCategoricalCrossentropy(from_logits=...)``,
    Adam, accuracy), ``fit`` without ``compile`` uses them, and a ``compile`` whose cross-entropy
    contradicts the head is corrected with a warning.

    Input: taken as given (no normalisation inside) unless ``normalize`` is ``"standardize"``
    (per-channel, with ``normalize_stats=`` the training images 0..255 or a ``(mean, variance)``
    pair), ``"scale"`` (divide by 255) or ``"none"``: then the model takes pixels 0..255 and
    normalises them inside, as the models ``kblocks train`` saves do.

    Args:
        source: architecture text, a path to a YAML architecture file, a zoo name, or an
            already loaded :class:`~kblocks.lang.spec.ArchitectureFile`.
        input_shape: the input without the batch axis, e.g. ``(32, 32, 3)``; needed unless the text
            starts with ``INPUT(...)`` or the file has ``input:``.
        classes: units of the last FC written without units (and of each AUX head's).
        blocks: extra named blocks: a YAML path, a mapping ``name: body`` or a ``BlockLibrary``.
        name: the model's name (default: the file's ``name:`` or stem, else ``kblocks``).
        resolver: chooses the values of ``{...}`` placeholders (default: each one's default).
        classifier_activation: ``None`` (the default) keeps the text's head; ``"softmax"``
            appends a softmax to each output that does not already end in one.
        normalize: ``None`` (input taken as given), ``"standardize"``, ``"scale"`` or
            ``"none"``: then the model takes pixels 0..255 and normalises inside.
        normalize_stats: for ``"standardize"``: training images 0..255 or ``(mean, variance)``.
        weights: a Keras weight file (``.h5`` as ``keras.applications`` downloads, or
            ``.weights.h5``) loaded layer for layer (:mod:`kblocks.lang.weights`): the zoo's twins
            of ``keras.applications`` networks take their files.
        **variables: values of the variables the text uses (``build(text, width=64)``).

    Returns:
        A :class:`kblocks.Network` (a functional ``keras.Model``) whose layers are named as the
        graph's nodes (``conv_3``), with one output, or named outputs ``output``, ``aux1``, ... when the text has ``AUX[...]`` heads.

    Raises:
        ParseError: the text does not follow the grammar (with the line and a caret).
        ArchitectureError: an unknown layer, block or variable, a bad argument, or a layer that
            cannot take its input shape; :class:`LimitError` (a subclass) for a network over the
            size limits.
        ConfigError: an architecture file that cannot be read or has a key of the wrong form.
        KBlocksError: ``classes`` or ``input_shape`` of the wrong form, or a source of the wrong type;
            :class:`~kblocks.lang.weights.WeightsError` for a ``weights`` file that does not fit.
    """
    from kblocks.lang.conventions import CLASSIFIER_ACTIVATIONS, normalization_layer
    from kblocks.lang.emit import emit

    if classifier_activation not in CLASSIFIER_ACTIVATIONS:
        raise KBlocksError(f"classifier_activation={classifier_activation!r}: use None (logits, "
                           f"the default) or \"softmax\" (probabilities)")
    if weights is not None:  # the file is checked before the model is made
        from kblocks.lang.weights import check_weight_file, load_weight_file

        weights = check_weight_file(weights)
    graph = compile(source, input_shape=input_shape, classes=classes, blocks=blocks, resolver=resolver,
                    **variables)
    arch = _as_arch(source)
    preprocess = None
    if normalize is not None:
        stats = {}
        if normalize_stats is not None:
            if isinstance(normalize_stats, (tuple, list)) and len(normalize_stats) == 2:
                stats = {"mean": normalize_stats[0], "variance": normalize_stats[1]}
            else:
                stats = {"data": normalize_stats}
        preprocess = normalization_layer(normalize, **stats)
    model = emit(graph, name=name or _model_name(arch), classifier_activation=classifier_activation,
                 preprocess=preprocess)
    model._kblocks_graph = graph  # the summary of a model built here reads it back
    if weights is not None:
        load_weight_file(model, weights)
    return model


def _model_name(arch: ArchitectureFile) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in (arch.name or "kblocks"))
    return name or "kblocks"


def summary(model_or_source, **kwargs) -> Summary:
    """The per-layer summary of a model built by kblocks, or of a text, YAML file or zoo name.

    Its last lines state the conventions: what input the model takes and what it outputs.

    Args:
        model_or_source: a model :func:`build` made in this process, or any source
            :func:`compile` takes.
        **kwargs: passed to :func:`compile` when a source is given.

    Returns:
        The :class:`~kblocks.lang.table.Summary`: ``str()`` is the table, its fields the numbers.

    Raises:
        KBlocksError: a Keras model kblocks did not build, or as :func:`compile` raises.
    """
    graph = getattr(model_or_source, "_kblocks_graph", None)
    model = None
    if graph is None:
        if hasattr(model_or_source, "layers"):
            raise KBlocksError("this Keras model was not built by kblocks in this process; pass the "
                               "architecture text, YAML file or zoo name instead")
        graph = compile(model_or_source, **kwargs)
    else:
        model = model_or_source
    return Summary(_analyse(graph), model=model)
