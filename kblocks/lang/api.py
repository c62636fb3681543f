"""The public pipeline: source (text, YAML file or zoo name) -> syntax tree -> expanded program ->
layer graph -> analysis -> Keras model. Each step is one module; this one only wires them."""
from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from kblocks.common.suggest import close_matches, did_you_mean
from kblocks.lang import lint, parser, syntax
from kblocks.lang.analysis import Analysis, analyse as _analyse
from kblocks.lang.blocks import BlockLibrary, builtin_library, block_from_mapping
from kblocks.common.errors import ArchitectureError, ConfigError, KBlocksError, ParseError
from kblocks.lang.expand import Expander, finalize_units
from kblocks.lang.graph import Graph, build_graph
from kblocks.lang.spec import ArchitectureFile, load_architecture
from kblocks.lang.table import Summary
from kblocks.lang.yamlfile import load_yaml_text, read_yaml_file


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
    data, lines = load_yaml_text(read_yaml_file(path, what="blocks file"), str(path))
    lib = BlockLibrary()
    body = data.get("blocks", {}) if isinstance(data, dict) else {}
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: 'blocks' must be a mapping name: body")
    for name, spec in body.items():
        lib.add(block_from_mapping(str(name), spec, source=str(path), line=lines.get(("blocks", name), 0)))
    return lib


def compile(source, *, input_shape=None, classes=None, blocks=None, resolver=None, variables=None,
            **legacy) -> Graph:
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
        variables: values of the variables the text uses, ``variables={"width": 64}``. (A
            variable passed as a keyword argument, ``compile(text, width=64)``, still works but
            is deprecated; any other keyword argument is refused, see :func:`_variables`.)

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
    variables = _variables(compile, source, variables, legacy)
    arch = _as_arch(source)
    text = arch.network
    src = arch.source if arch.source else ""
    try:
        tree = parser.parse(text, source=src)
    except ParseError as err:
        raise _zoo_hint(err, source) from None
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
    try:
        program = expander.expand(tree, text=text, source=src)
    except ArchitectureError as err:
        raise _zoo_hint(err, source) from None
    program = finalize_units(program, classes, text=text, source=src)
    shape = _input_shape(program.input_shape, input_shape, arch.input_shape)
    try:
        graph = build_graph(program, shape, text=text, source=src)
    except ArchitectureError as err:
        if shape is None or not lint.channels_first(shape) or err.hint:
            raise
        raise _rehint(err, lint.channels_hint(shape)) from None
    found = lint.check(graph, given=variables, used=expander.used)
    if found:
        graph = dataclasses.replace(graph, warnings=found)
        warnings.warn("\n".join(str(w) for w in found), lint.KBlocksWarning,
                      stacklevel=_caller_level(2))
    return graph


def _rehint(err: KBlocksError, hint: str) -> KBlocksError:
    """``err`` again, with another hint."""
    return type(err)(err.message, span=err.span, text=err.text, what=err.what, hint=hint)


#: A source that may be a misspelt zoo name: one word, with ``-`` or ``_`` (``resnet-50``).
_ZOO_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")


def zoo_names() -> list:
    """The names of the zoo's networks (its ``.yaml`` files), sorted."""
    import importlib.resources

    folder = importlib.resources.files(ZOO_PACKAGE) / "architectures"
    def natural(name):  # resnet18 before resnet101
        return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
    return sorted((e.name[:-5] for e in folder.iterdir() if e.name.endswith(".yaml")), key=natural)


def _zoo_hint(err: KBlocksError, source) -> KBlocksError:
    """``err`` with the zoo names close to ``source`` as its hint (``resnet`` -> resnet18, ...),
    when the source is one word that fails to compile; else ``err`` unchanged."""
    if not isinstance(source, str) or not _ZOO_LIKE.fullmatch(source.strip()) or not (
            isinstance(err, ParseError) or err.message.startswith("unknown layer")):
        return err
    key = source.strip().lower().replace("-", "").replace("_", "")
    names = zoo_names()
    plain = {n.lower().replace("_", ""): n for n in names}
    close = [n for n in names if len(key) >= 3 and n.lower().replace("_", "").startswith(key)]
    close += [plain[c] for c in close_matches(key, plain, n=3, cutoff=0.75) if plain[c] not in close]
    if not close:
        return err
    shown = close[:5]
    listed = ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]
    return _rehint(err, f"did you mean the zoo network {listed}? ('kblocks zoo' lists them)")


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


def _caller_level(start: int) -> int:
    """The ``stacklevel`` of the first frame outside kblocks from ``start`` up (public wrappers such
    as ``kblocks.summary`` add frames: the warning still points at the user's line)."""
    import sys

    level, frame = start, sys._getframe(start)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "kblocks":
        frame, level = frame.f_back, level + 1
    return level if frame is not None else start


def _variables(func, source, variables, legacy: dict, *, stacklevel: int = 3) -> dict:
    """The variables of a call to ``func`` (:func:`compile`, :func:`build`, :func:`summary`, ...).

    ``variables=`` is a mapping ``name: value``. A keyword argument that is not a parameter of
    ``func`` is, in the old form, a variable: it is taken when the source uses that name, with a
    ``DeprecationWarning`` saying to pass ``variables={...}``; otherwise it is refused with the
    parameter it was probably meant to be (``clases=3`` -> ``classes``).
    """
    if variables is None:
        variables = {}
    if not isinstance(variables, Mapping) or not all(isinstance(k, str) for k in variables):
        raise KBlocksError(f"variables= takes a mapping of names to values, got {variables!r}"[:300],
                           hint="e.g. variables={'N': 2, 'width': 64}")
    if not legacy:
        return dict(variables)
    params = [p.name for p in inspect.signature(func).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY]
    used = set() if isinstance(source, Graph) else _names_used(source, set(legacy))
    for name in legacy:
        if name not in used:
            hint = did_you_mean(name, params + sorted(used - set(legacy)))
            raise KBlocksError(
                f"kblocks.{func.__name__}() got an unexpected keyword argument {name!r}",
                hint=hint or f"its parameters are {', '.join(params)}; values of the text's "
                             f"variables go in variables={{...}}")
    both = sorted(set(legacy) & set(variables))
    if both:
        raise KBlocksError(f"kblocks.{func.__name__}(): {both[0]!r} is given twice, in variables= "
                           f"and as a keyword argument", hint="give it once, in variables={...}")
    written = ", ".join(f"{k!r}: {v!r}" for k, v in legacy.items())
    warnings.warn(f"kblocks.{func.__name__}(): variables given as keyword arguments "
                  f"({', '.join(f'{k}=' for k in legacy)}) are deprecated; pass "
                  f"variables={{{written}}}"[:400], DeprecationWarning,
                  stacklevel=_caller_level(stacklevel))
    return {**variables, **legacy}


def _names_used(source, wanted: set) -> set:
    """The bare words of a source that may be variables: its text's, its file's ``variables:``
    and, when some of ``wanted`` are not among those, the words of its blocks' bodies."""
    arch = _as_arch(source)
    names = set(arch.variables)
    _words(parser.parse(arch.network, source=arch.source or ""), names)
    if wanted <= names:
        return names
    lib = arch.blocks if arch.blocks.blocks or arch.blocks.parent else builtin_library()
    for block_name in lib.names():
        try:
            _words(parser.parse(lib.get(block_name).body), names)
        except KBlocksError:  # a broken block is reported where it is used
            pass
    return names


def _words(node, out: set) -> None:
    """Add the names of the :class:`~kblocks.lang.syntax.Word` nodes under ``node`` to ``out``."""
    if isinstance(node, syntax.Word):
        out.add(node.name)
    elif isinstance(node, (tuple, list)):
        for item in node:
            _words(item, out)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            _words(getattr(node, f.name), out)


def analyse(source, *, input_shape=None, classes=None, blocks=None, resolver=None, variables=None,
            **legacy) -> Analysis:
    """Parameters, activation memory, multiply-adds and receptive fields, layer by layer.

    Args:
        source: a :class:`~kblocks.lang.graph.Graph`, or any source :func:`compile` takes.
        input_shape, classes, blocks, resolver, variables: as :func:`compile` takes them, used
            when ``source`` is not a graph.

    Returns:
        The :class:`~kblocks.lang.analysis.Analysis` (totals and one ``LayerStats`` per node).

    Raises:
        KBlocksError: as :func:`compile` raises.
    """
    variables = _variables(analyse, source, variables, legacy)
    graph = source if isinstance(source, Graph) else compile(
        source, input_shape=input_shape, classes=classes, blocks=blocks, resolver=resolver,
        variables=variables)
    return _analyse(graph)


def format_text(source, *, input_shape=None, classes=None, blocks=None, resolver=None, variables=None,
                **legacy) -> str:
    """Canonical text: repetitions, variables, blocks and placeholders written out.

    Parsing the canonical text gives the same graph (tests/test_roundtrip.py).

    Args:
        source: a :class:`~kblocks.lang.graph.Graph`, or any source :func:`compile` takes.
        input_shape, classes, blocks, resolver, variables: as :func:`compile` takes them, used
            when ``source`` is not a graph.

    Returns:
        The text, starting with ``INPUT(...)`` when the input shape is known.

    Raises:
        KBlocksError: as :func:`compile` raises.
    """
    variables = _variables(format_text, source, variables, legacy)
    graph = source if isinstance(source, Graph) else compile(
        source, input_shape=input_shape, classes=classes, blocks=blocks, resolver=resolver,
        variables=variables)
    return graph.canonical_text()


def build(source, *, input_shape=None, classes=None, blocks=None, name=None, resolver=None,
          classifier_activation=None, normalize=None, normalize_stats=None, input_tensor=None,
          weights=None, variables=None, **legacy):
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
        input_tensor: a Keras tensor (``keras.Input(...)`` or a layer's output) to use as the
            model's input, as in ``keras.applications``: the model's inputs are the inputs
            ``input_tensor`` comes from, and ``input_shape`` defaults to its shape.
        variables: values of the variables the text uses, ``variables={"width": 64}``
            (``build(text, width=64)`` still works but is deprecated; any other keyword argument
            is refused with the parameter it was probably meant to be).
        weights: a Keras weight file (``.h5`` as ``keras.applications`` downloads, or
            ``.weights.h5``) loaded layer for layer (:mod:`kblocks.lang.weights`): the zoo's twins
            of ``keras.applications`` networks take their files.

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
    variables = _variables(build, source, variables, legacy)
    if input_tensor is not None:
        input_shape = _tensor_shape(input_tensor, input_shape)
    if weights is not None:  # the file is checked before the model is made
        from kblocks.lang.weights import check_weight_file, load_weight_file

        weights = check_weight_file(weights)
    graph = compile(source, input_shape=input_shape, classes=classes, blocks=blocks, resolver=resolver,
                    variables=variables)
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
                 preprocess=preprocess, input_tensor=input_tensor)
    model._kblocks_graph = graph  # the summary of a model built here reads it back
    if weights is not None:
        load_weight_file(model, weights)
    return model


def _tensor_shape(tensor, input_shape):
    """The input shape (without the batch axis) of ``build(input_tensor=...)``."""
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) < 2 or any(d is None for d in tuple(shape)[1:]):
        raise KBlocksError(f"input_tensor must be a Keras tensor with a batch axis and fixed sizes, "
                           f"got {shape if shape is not None else type(tensor).__name__}",
                           hint="e.g. input_tensor=keras.Input((32, 32, 3))")
    own = tuple(int(d) for d in tuple(shape)[1:])
    if input_shape is not None and tuple(input_shape) != own:
        raise KBlocksError(f"input_shape={tuple(input_shape)} but input_tensor has the shape {own}",
                           hint="give one of them")
    return own


def _model_name(arch: ArchitectureFile) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in (arch.name or "kblocks"))
    return name or "kblocks"


def summary(model_or_source, *, input_shape=None, classes=None, blocks=None, resolver=None,
            variables=None, **legacy) -> Summary:
    """The per-layer summary of a model built by kblocks, or of a text, YAML file or zoo name.

    Its last lines state the conventions: what input the model takes and what it outputs.

    Args:
        model_or_source: a model :func:`build` made in this process, or any source
            :func:`compile` takes.
        input_shape, classes, blocks, resolver, variables: as :func:`compile` takes them, used
            when a source is given.

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
        graph = compile(model_or_source, input_shape=input_shape, classes=classes, blocks=blocks,
                        resolver=resolver, variables=_variables(summary, model_or_source, variables,
                                                                legacy))
    else:
        model = model_or_source
    return Summary(_analyse(graph), model=model)

