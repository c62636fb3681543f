"""How many architectures a search space holds (:meth:`SearchSpace.size`), counted without building any.

An architecture is an assignment of the hyperparameters that are used. A name is used when any of
its places is reached, and a place is reached when every condition around it holds (the counts
reach its repetition index, the alternatives around it are chosen, the optional items around it
are present): a disjunction over places of conjunctions, evaluated exactly here (Keras Tuner's
conditions can only hold a conjunction; see :func:`kblocks.search.resolver.conditions_of`).

The names fall into independent groups (no condition links one group to another), whose counts
multiply. Inside a group, the assignments of the names that others depend on (counts, operation
choices, optional items with placeholders inside) are walked one by one; every other name only
multiplies the count of an assignment by its number of values when it is used there. A
NAS-Bench-201 cell (six independent edges of five operations each) is therefore 5**6 = 15,625
without walking anything.
"""
from __future__ import annotations

import math

from kblocks.common.errors import KBlocksError

#: Assignments walked at most before giving up (the independent parts are multiplied, not walked).
MAX_WALK = 1_000_000


def _groups(names, parents_of) -> list:
    """The names in groups linked by conditions, each in the order of ``names``."""
    root = {n: n for n in names}

    def find(n):
        while root[n] != n:
            root[n] = root[root[n]]
            n = root[n]
        return n

    for name in names:
        for parent in parents_of[name]:
            if parent in root:
                root[find(name)] = find(parent)
    groups: dict = {}
    for name in names:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())


def _parents_first(names, parents_of) -> list:
    done, order, pending = set(), [], list(names)
    while pending:
        ready = [n for n in pending if all(p in done or p not in parents_of for p in parents_of[n])]
        ready = ready or pending[:1]  # a cycle of conditions: keep the written order
        for name in ready:
            done.add(name)
            order.append(name)
            pending.remove(name)
    return order


def _used(uses, values) -> bool:
    """Whether any place of a name is reached under ``values`` (absent: not used)."""
    return any(all(p in values and values[p] in allowed for p, allowed in use.items())
               for use in uses)


def _values(spec) -> list:
    """Every value of a name that others depend on (a count, a choice or an optional item)."""
    from kblocks.search.resolver import BOOLEAN

    if spec.kind == BOOLEAN:
        return [True, False]
    if spec.kind == "choice":
        return list(spec.tuner_values)
    counts = spec.possible_counts()
    if counts is None:  # a float range as a condition's parent cannot come out of the expander
        raise KBlocksError(f"cannot count the values of {spec.name!r}", what=spec.name)
    return counts


def count_space(specs: dict, uses: dict):
    """The number of architectures (see the module doc): an int, or ``math.inf``.

    Args:
        specs: ``{name: HPSpec}`` in the space's order.
        uses: ``{name: [{parent: allowed values}, ...]}``, one mapping per place the name is written.
    """
    names = list(specs)
    parents_of = {n: sorted({p for use in uses[n] for p in use if p in specs}) for n in names}
    is_parent = {p for n in names for p in parents_of[n]}
    total = 1
    walked = [0]
    for group in _groups(names, parents_of):
        order = _parents_first(group, parents_of)
        inner = [n for n in order if n in is_parent]
        leaves = [n for n in order if n not in is_parent]
        total *= _count_group(inner, leaves, specs, uses, walked)
    return total


def _count_group(inner, leaves, specs, uses, walked):
    def leaves_factor(values):
        out = 1
        for leaf in leaves:
            if _used(uses[leaf], values):
                out *= specs[leaf].size()
        return out

    def walk(i, values):
        walked[0] += 1
        if walked[0] > MAX_WALK:
            raise KBlocksError(f"the space nests its counts and choices into more than "
                               f"{MAX_WALK:,} combinations; its size is not counted",
                               what="size()", hint="count a smaller space, or multiply the parts "
                                                   "by hand")
        if i == len(inner):
            return leaves_factor(values)
        name = inner[i]
        if not _used(uses[name], values):
            return walk(i + 1, values)
        out = 0
        for value in _values(specs[name]):
            values[name] = value
            out += walk(i + 1, values)
        del values[name]
        return out

    result = walk(0, {})
    return result if result == math.inf or isinstance(result, int) else int(result)
