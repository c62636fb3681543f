"""The architecture zoo: YAML files in ``architectures/`` (installed as ``kblocks.architectures``)."""
from __future__ import annotations

import importlib.resources
from pathlib import Path


def _dir():
    return importlib.resources.files("kblocks.architectures")


def names() -> list:
    """Names of the zoo's networks (file names without ``.yaml``), sorted."""
    return sorted(p.name[:-5] for p in _dir().iterdir() if p.name.endswith(".yaml"))


def path(name: str) -> Path | None:
    """Path of a zoo network's file, or None. Case-insensitive; ``-`` and ``_`` are the same."""
    key = name.lower().replace("-", "_")
    for n in names():
        if n.lower().replace("-", "_") == key:
            return Path(str(_dir().joinpath(n + ".yaml")))
    return None
