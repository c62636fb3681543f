""""Did you mean ...?": the close matches of a misspelt name, worded once for every message."""
from __future__ import annotations

import difflib


def close_matches(name: str, choices, *, n: int = 3, cutoff: float = 0.5) -> list:
    """The names in ``choices`` closest to ``name``, best first (at most ``n``)."""
    return difflib.get_close_matches(str(name), list(choices), n=n, cutoff=cutoff)


def did_you_mean(name: str, choices, *, n: int = 1, cutoff: float = 0.5, prefix: str = "") -> str | None:
    """``"did you mean a or b?"`` for the close matches of ``name``, or None when there is none.

    Args:
        name: what was written.
        choices: the names it may have meant.
        n: how many matches to offer.
        cutoff: how close a match must be (0..1, as :func:`difflib.get_close_matches`).
        prefix: written before each match (``"@"`` for block names).

    Returns:
        The hint, or None.
    """
    close = close_matches(name, choices, n=n, cutoff=cutoff)
    if not close:
        return None
    return "did you mean " + " or ".join(prefix + c for c in close) + "?"
