"""The architecture zoo: one YAML file per network in ``architectures/`` (package data of this package).

Owns the files, their names and their catalogue (:func:`entry`: metadata and figures). May import
:mod:`kblocks.lang` (to read and compile the files) and :mod:`kblocks.common`; never training,
search, inspect or cli. The language finds a named file by itself (:func:`kblocks.lang.api.zoo_file`,
reading this folder as data), so the zoo sits above the language with no cycle.

    >>> import kblocks
    >>> kblocks.zoo.names()[:3]
    ['alexnet', 'allcnn_c', 'conv_autoencoder']
    >>> model = kblocks.build("resnet50", classes=10)      # any zoo name builds

:func:`entry` reads one file and computes its figures at the file's default input (no Keras model is
made); :func:`loss_weights` gives the paper's weighting of auxiliary heads (GoogLeNet) for
``model.compile``.
"""
from __future__ import annotations

import textwrap
import importlib.resources
import re
from dataclasses import dataclass, field
from pathlib import Path

from kblocks.common.errors import ConfigError
from kblocks.common.numbers import si
from kblocks.common.suggest import did_you_mean

AUX_WEIGHT = 0.3  #: weight of each auxiliary loss in GoogLeNet (Szegedy et al. 2015, section 5)


def _dir():
    return importlib.resources.files("kblocks.zoo") / "architectures"


def _natural(name: str):
    """Sort key putting resnet18 before resnet101: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def names() -> list:
    """Names of the zoo's networks (file names without ``.yaml``), in natural order."""
    return sorted((p.name[:-5] for p in _dir().iterdir() if p.name.endswith(".yaml")), key=_natural)


def path(name: str) -> Path | None:
    """Path of a zoo network's file, or None. Case-insensitive; ``-`` and ``_`` are the same."""
    from kblocks.lang.api import zoo_file

    return zoo_file(name)


def load(name: str):
    """The parsed :class:`~kblocks.lang.spec.ArchitectureFile` of a zoo network.

    Raises ``ConfigError`` naming the closest zoo names when ``name`` is not in the zoo.
    """
    from kblocks.lang.spec import load_architecture

    found = path(name)
    if found is None:
        hint = did_you_mean(name.lower(), names(), n=3) or "'kblocks zoo' lists them"
        raise ConfigError(f"{name!r} is not in the zoo; {hint}")
    return load_architecture(found)


@dataclass(frozen=True)
class Entry:
    """One zoo network: its metadata and its figures at the file's default input and classes."""

    name: str
    family: str
    source: str
    doc: str
    reference: dict = field(default_factory=dict)
    input_shape: tuple = ()
    classes: int | None = None
    params: int = 0
    trainable: int = 0
    macs: int = 0
    outputs: int = 1  # 1 + number of auxiliary heads
    inference_params: int = 0  # parameters of the main output's network (AUX-only layers left out)
    inference_macs: int = 0  # its multiply-adds per image
    network: str = ""  # the architecture text as written in the file
    path: Path | None = None

    @property
    def params_text(self) -> str:
        """The parameters as tables show them: ``6,998,552 (13,378,280 with AUX heads)`` when
        training-only AUX heads add some, else ``11,699,112``."""
        if self.outputs > 1 and self.inference_params != self.params:
            return f"{self.inference_params:,} ({self.params:,} with AUX heads)"
        return f"{self.params:,}"

    @property
    def macs_text(self) -> str:
        """The multiply-adds as tables show them: ``1.58 G (1.59 G with AUX heads)`` or ``1.82 G``."""
        if self.outputs > 1 and self.inference_macs != self.macs:
            return f"{si(self.inference_macs)} ({si(self.macs)} with AUX heads)"
        return si(self.macs)

    @property
    def short_source(self) -> str:
        """The paper part of ``source`` (before the seeds), for tables."""
        text = " ".join(self.source.split())
        return text.split("; seeds:")[0].split("; Seeds:")[0].strip()


def entry(name: str) -> Entry:
    """Metadata and figures of a zoo network (compiles the layer graph; makes no Keras objects)."""
    from kblocks.lang.analysis import main_totals
    from kblocks.lang.api import analyse, compile as compile_graph

    arch = load(name)
    graph = compile_graph(arch)
    stats = analyse(graph)
    main = main_totals(stats)
    meta = arch.meta
    reference = meta.get("reference") or {}
    if not isinstance(reference, dict):
        reference = {"params": reference}
    return Entry(name=Path(arch.source).stem, family=str(meta.get("family", "")),
                 source=" ".join(str(meta.get("source", "")).split()),
                 doc=" ".join(str(meta.get("doc", "")).split()), reference=dict(reference),
                 input_shape=tuple(graph.input_shape), classes=arch.classes, params=stats.params,
                 trainable=stats.trainable, macs=stats.macs, outputs=len(graph.outputs),
                 inference_params=main.params, inference_macs=main.macs,
                 network=_network_as_written(Path(arch.source), arch.network),
                 path=Path(arch.source))


def _network_as_written(file: Path, folded: str) -> str:
    """The ``network:`` value with the file's own line breaks (YAML ``>`` folds them away)."""
    lines = file.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("network:"):
            inline = line[len("network:"):].strip()
            if inline and inline not in (">", "|", ">-", "|-"):
                return inline.strip("\"'")
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and not nxt.startswith((" ", "\t")):
                    break
                body.append(nxt)
            text = "\n".join(body)
            return textwrap.dedent(text).strip()
    return folded.strip()


def entries() -> list:
    """:func:`entry` for every zoo network, in name order."""
    return [entry(n) for n in names()]


def output_names(model) -> list:
    """Names of a kblocks model's outputs: ``["output", "aux1", ...]``, or ``["output"]``."""
    out = model.output
    if isinstance(out, dict):
        return list(out)
    return ["output"]


def loss_weights(model, aux: float = AUX_WEIGHT):
    """Loss weights for a model with auxiliary heads: ``{"output": 1.0, "aux1": aux, ...}``.

    GoogLeNet adds the auxiliary classifiers' losses "with a discount weight (0.3)" (Szegedy et al.
    2015, section 5). Returns None for a single-output model, so it can always be passed on::

        weights = kblocks.zoo.loss_weights(model)
        loss = {k: "sparse_categorical_crossentropy" for k in weights} if weights else \
            "sparse_categorical_crossentropy"
        model.compile("sgd", loss=loss, loss_weights=weights)
        model.fit(x, {k: y for k in weights} if weights else y)
    """
    if isinstance(aux, bool) or not isinstance(aux, (int, float)) or aux < 0:
        raise ValueError(f"aux must be a non-negative number, received aux={aux!r}")
    heads = output_names(model)
    if len(heads) == 1:
        return None
    return {k: (1.0 if k == "output" else float(aux)) for k in heads}


def table_rows(items=None) -> list:
    """Rows (name, family, input, params, MACs, source) of the zoo table, as strings; a network with
    AUX heads shows its inference network's figures first (:attr:`Entry.params_text`)."""
    items = entries() if items is None else items
    rows = []
    for e in items:
        shape = "x".join(str(d) for d in e.input_shape)
        rows.append((e.name, e.family, shape, e.params_text, e.macs_text, e.short_source))
    return rows
