"""Static budgets: an architecture is measured from its layer graph before anything is trained.

``--max-params``, ``--max-macs`` and ``--max-activation-mb`` use the figures of
:mod:`kblocks.lang.analysis` (the numbers ``kblocks summary`` prints): parameters as Keras counts them,
multiply-adds per image, activation memory per image in MiB (float32, each tensor counted once).
An architecture whose shapes collapse (a compile error) is rejected the same way.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from kblocks.common.errors import ConfigError, KBlocksError


@dataclass(frozen=True)
class Budget:
    """Upper limits per architecture; ``None`` means no limit."""

    max_params: float | None = None
    max_macs: float | None = None
    max_activation_mb: float | None = None

    def __post_init__(self):
        for key, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{key}= must be a positive number, got {value!r}",
                                  what=key, hint="e.g. max_params=2e6")

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The static figures of one architecture and, if it is rejected, why."""

    ok: bool
    reason: str = ""  # "params 2,345,678 > 2,000,000", "shape: ..."
    params: int | None = None
    macs: int | None = None
    activation_mb: float | None = None


def measure(space, values, budget: Budget | None = None) -> Verdict:
    """Compile one architecture of ``space``, measure it and hold it against ``budget``."""
    from kblocks.lang.analysis import analyse

    try:
        graph = space.compile(values)
    except KBlocksError as err:
        first = str(err.message if hasattr(err, "message") else err).splitlines()[0]
        return Verdict(False, f"does not compile: {first}")
    a = analyse(graph)
    mb = a.activation_bytes / 2 ** 20
    verdict = dict(params=a.params, macs=a.macs, activation_mb=round(mb, 3))
    budget = budget or Budget()
    over = []
    if budget.max_params is not None and a.params > budget.max_params:
        over.append(f"params {a.params:,} > {budget.max_params:,.0f}")
    if budget.max_macs is not None and a.macs > budget.max_macs:
        over.append(f"MACs {a.macs:,} > {budget.max_macs:,.0f}")
    if budget.max_activation_mb is not None and mb > budget.max_activation_mb:
        over.append(f"activations {mb:,.1f} MiB > {budget.max_activation_mb:,g} MiB")
    if over:
        return Verdict(False, "; ".join(over), **verdict)
    return Verdict(True, "", **verdict)
