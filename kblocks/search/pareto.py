"""Accuracy against cost: Pareto fronts and an NSGA-II-style oracle (``--minimize``).

A trial *dominates* another when it is at least as good on every objective and better on one. The
functions here work on plain tuples of numbers where every objective is to be **minimised** (an
accuracy enters as its negative):

* :func:`non_dominated_sort` splits points into fronts (Deb, Pratap, Agarwal and Meyarivan 2002,
  "A fast and elitist multiobjective genetic algorithm: NSGA-II", section III-A): front 0 holds the
  points nothing dominates, front 1 those only front 0 dominates, and so on;
* :func:`crowding_distance` (section III-B) measures how alone a point is within its front (the
  sum over objectives of the normalised gap between its two neighbours; the extremes get
  infinity), so that selection keeps the front spread out;
* :func:`pareto_front` is front 0 of (cost, score) pairs, cheapest first (the report and
  ``search.png`` draw it).

:class:`kblocks.search.evolution.ParetoOracle` is aging evolution's oracle with NSGA-II's
selection in place of the best-of-sample: the parents are the ``population_size`` best completed
trials by (front, crowding distance) over *all* completed trials (NSGA-II's elitist environmental
selection), and each parent is the winner of a tournament of ``sample_size`` members (binary by
default) compared by front first and crowding distance second. The child is one mutation of the
parent, as in evolution. Like every kblocks oracle it is a ``keras_tuner.Oracle`` whose state is
the trials themselves, so ``--resume`` and chief/worker distribution work unchanged. The cost of a
trial comes from ``cost(trial)``: multiply-adds or parameters from the fixed text before training
(kblocks' own analysis), or the ``latency_ms`` the trial measured (:mod:`kblocks.search.latency`).

This module imports neither Keras Tuner nor Keras: the report uses it.
"""
from __future__ import annotations

import math

#: what ``--minimize`` accepts: static figures of the fixed text, or measured inference time
COSTS = ("macs", "params", "latency")
#: the metric a trial records when it measures its latency (milliseconds per image)
LATENCY_METRIC = "latency_ms"


def dominates(a, b) -> bool:
    """Whether ``a`` dominates ``b`` (all objectives minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_sort(points) -> list:
    """Fronts of ``points`` (sequences of objectives, all minimised) as lists of indices, best
    front first; within a front, indices ascend."""
    n = len(points)
    dominated_by = [[] for _ in range(n)]  # i -> the points i dominates
    count = [0] * n  # how many points dominate i
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by[j].append(i)
                count[i] += 1
    fronts, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(sorted(current))
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = following
    return fronts


def crowding_distance(points, front) -> dict:
    """Index -> crowding distance of each member of ``front`` (indices into ``points``).

    Per objective, members are sorted by it; the two extremes get infinity, every other member
    adds ``(next - previous) / (max - min)`` (nothing when the objective is constant)."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for m in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, len(order) - 1):
            distance[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (high - low)
    return distance


def rank(points) -> list:
    """``(front, -crowding distance)`` per point: NSGA-II's crowded-comparison key (smaller is
    better)."""
    key = [None] * len(points)
    for f, front in enumerate(non_dominated_sort(points)):
        for i, d in crowding_distance(points, front).items():
            key[i] = (f, -d)
    return key


def select(points, size: int) -> list:
    """NSGA-II's environmental selection: indices of the ``size`` best points, whole fronts first,
    the last front cut by crowding distance (largest first; ties by index)."""
    chosen = []
    for front in non_dominated_sort(points):
        if len(chosen) + len(front) <= size:
            chosen += front
            continue
        distance = crowding_distance(points, front)
        chosen += sorted(front, key=lambda i: (-distance[i], i))[:size - len(chosen)]
        break
    return chosen


def pareto_front(points, maximise: bool = True) -> list:
    """Indices of the ``(cost, score)`` points that no other point beats on both (lower cost and a
    better score), in order of increasing cost. Equal points are kept once (the first)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0],
                                                     -points[i][1] if maximise else points[i][1], i))
    front, best = [], None
    for i in order:
        score = points[i][1]
        if best is None or (score > best if maximise else score < best):
            front.append(i)
            best = score
    return front
