"""Number formatting shared by the tables kblocks prints (summary, zoo, search report)."""
from __future__ import annotations

_UNITS = (("G", 1e9), ("M", 1e6), ("k", 1e3))


def si(n, *, sep: str = " ") -> str:
    """``n`` with an SI prefix and two decimals (``3.82 M``), or as it is below 1,000.

    Args:
        n: a count (parameters, multiply-adds).
        sep: between the number and the prefix (``""`` gives ``3.82M``).

    Returns:
        The text.
    """
    for unit, scale in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.2f}{sep}{unit}"
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)
