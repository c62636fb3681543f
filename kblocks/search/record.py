"""The record of a search, ``search.json`` in its folder: what was searched and how.

The runner writes it and reads it back on ``--resume``; the report reads it. Both import it from
here, so neither imports the other's module. Trials are numbered from 1 wherever people read them
(:func:`trial_number`); Keras Tuner's ids and folders (``kt/trial_0``) start at 0.
"""
from __future__ import annotations

import json
from pathlib import Path

from kblocks.common.errors import ConfigError

FORMAT = 1  #: version of search.json
SEARCH_FILE = "search.json"


def trial_number(trial_id) -> int | str:
    """The number people read for Keras Tuner's trial id: 1-based (id ``"0"`` or ``"00"`` is trial
    1, in folder ``kt/trial_0``); an id that is not a number is given back as it is."""
    text = str(trial_id)
    return int(text) + 1 if text.isdigit() else text


#: an architecture text longer than this is shown on the console by its choices (:func:`shown`)
SHOWN_TEXT = 160


def shown(text: str, values: dict, width: int = SHOWN_TEXT) -> str:
    """A trial's architecture as a console line shows it: the fixed text when it is short, else
    the choices that made it (``e01=SKIP, e02=@nor_conv($C, 3), ...``: a cell space's text runs to
    thousands of characters). The full text stays in ``trials.csv``, ``pareto.json`` and
    ``best.yaml``."""
    if len(text) <= width or not values:
        return text
    return ", ".join(f"{k}={v}" for k, v in values.items())


def load_record(out) -> dict:
    """The record of the search in folder ``out``.

    Args:
        out: a search folder (the ``--out`` of ``kblocks search``).

    Returns:
        The parsed ``search.json``.

    Raises:
        ConfigError: the folder holds no ``search.json``, or it is not a kblocks search record.
    """
    path = Path(out) / SEARCH_FILE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: {out} is not a search folder", what="out",
                          hint="give the out= folder of a kblocks search")
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON", what="out") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a kblocks search record (format {FORMAT})",
                          what="out")
    return record
