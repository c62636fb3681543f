"""The report of a search folder (``kblocks report``, also written when a search ends).

Files written into the folder, each atomically:

* ``leaderboard.txt`` the table printed on screen: every trial, best first, with its fixed text,
  parameters, MACs, best validation accuracy, epochs and training time;
* ``trials.csv``      one row per trial with its hyperparameter values (JSON) as well;
* ``best.yaml``       the best architecture as a complete architecture file (``input``,
  ``classes``, ``blocks``, ``network``, no placeholders): ``kblocks summary best.yaml`` and
  ``kblocks train best.yaml`` take it as it is;
* ``search.png``      validation accuracy against cost (parameters, or what ``--minimize`` names)
  with the Pareto front and trial numbers, and validation accuracy in trial order with the
  running best;
* ``pareto.json``     the Pareto front: each member's trial number, objective values and fixed text.

Trials are numbered from 1 everywhere people read them (trial 1 is Keras Tuner's ``trial_0``).

Everything is read back from ``search.json`` and the Keras Tuner project, so a report can be made
while a search runs, after it crashed, or on another machine. The trials' ``trial.json`` files are
read as JSON, the way Keras Tuner writes them (:class:`_Trial`), so a report imports neither Keras
Tuner nor Keras nor TensorFlow: ``kblocks report`` took 37 s on a 2-trial folder, 31.6 s of them
importing Keras Tuner (issue 17, docs/BENCHMARKS.md).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from kblocks.common.numbers import si
from kblocks.search import pareto
from kblocks.search.budget import measure
from kblocks.search.record import load_record, shown, trial_number

#: the Keras Tuner project folder inside a search folder: :data:`kblocks.search.tuner.PROJECT`,
#: repeated here because that module imports Keras Tuner (a test checks they agree)
PROJECT = "kt"


@dataclass
class TrialRow:
    trial_id: str
    status: str
    values: dict
    score: float | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    seconds: float | None = None
    continues: str | None = None  # Hyperband: the trial whose weights this one continued
    text: str = ""
    params: int | None = None
    macs: int | None = None
    activation_mb: float | None = None
    message: str = ""
    latency_ms: float | None = None  # --minimize latency: measured inference time per image

    @property
    def number(self):
        """The trial's number, from 1 (Keras Tuner's id + 1)."""
        return trial_number(self.trial_id)

    def shown(self) -> str:
        """The architecture as the console shows it (:func:`kblocks.search.record.shown`)."""
        return shown(self.text, self.values)


@dataclass
class SearchReport:
    out: Path
    record: dict
    rows: list  # TrialRow, in trial order
    rejections: dict = field(default_factory=dict)
    stop_reason: str | None = None

    @property
    def objective(self) -> str:
        return self.record["tuner"].get("objective", "val_accuracy")

    @property
    def completed(self) -> list:
        return [r for r in self.rows if r.status == "COMPLETED" and r.score is not None]

    @property
    def best(self) -> TrialRow | None:
        done = self.completed
        if not done:
            return None
        maximise = "loss" not in self.objective
        return (max if maximise else min)(done, key=lambda r: r.score)

    @property
    def minimize(self) -> str | None:
        """The cost of an accuracy-versus-cost search (``macs``, ``params``, ``latency``), or None."""
        return self.record["tuner"].get("minimize")

    @property
    def cost_name(self) -> str:
        """What the front is drawn against: the search's cost, parameters without one."""
        return self.minimize or "params"

    def cost(self, row: TrialRow):
        return row.latency_ms if self.cost_name == "latency" else getattr(row, self.cost_name)

    def front(self) -> list:
        """The completed trials no other beats on both objectives (score and cost), cheapest
        first."""
        done = [r for r in self.completed if self.cost(r) is not None]
        points = [(self.cost(r), r.score) for r in done]
        return [done[i] for i in pareto.pareto_front(points, maximise="loss" not in self.objective)]

    def front_dict(self) -> dict:
        """The front as plain data (``pareto.json``)."""
        return {"objective": self.objective, "minimize": self.cost_name,
                "front": [{"trial": r.number, "kt_trial_id": r.trial_id, self.objective: r.score,
                           "params": r.params, "macs": r.macs, "latency_ms": r.latency_ms,
                           "text": r.text} for r in self.front()]}

    def ranked(self) -> list:
        maximise = "loss" not in self.objective
        done = sorted(self.completed, key=lambda r: r.score, reverse=maximise)
        return done + [r for r in self.rows if r not in done]

    def counts(self) -> dict:
        out = {}
        for r in self.rows:
            out[r.status.lower()] = out.get(r.status.lower(), 0) + 1
        return out

    # -- text -------------------------------------------------------------------------------------
    def table(self, limit: int | None = None):
        from rich.table import Table

        table = Table(title=f"search {self.out}: {self.objective}, best first", header_style="bold",
                      show_lines=False)
        latency = self.minimize == "latency"
        columns = [("#", "right"), ("trial", "right"), (self.objective, "right"),
                   ("params", "right"), ("MACs", "right")] + \
            ([("ms/image", "right")] if latency else []) + \
            [("epochs", "right"), ("time", "right"), ("status", "left"), ("architecture", "left")]
        for name, justify in columns:
            table.add_column(name, justify=justify, overflow="fold")
        on_front = {r.trial_id for r in self.front()} if self.minimize else set()
        for i, r in enumerate(self.ranked()[:limit], 1):
            note = f" (continues {trial_number(r.continues)})" if r.continues else ""
            note += ", on the front" if r.trial_id in on_front else ""
            cells = [str(i) if r.score is not None else "-", str(r.number),
                     f"{r.score:.4f}" if r.score is not None else "-", _num(r.params),
                     _num(r.macs)] + ([_ms(r.latency_ms)] if latency else []) + \
                [str(r.epochs) if r.epochs is not None else "-",
                 f"{r.seconds:.1f}s" if r.seconds is not None else "-",
                 r.status.lower() + note, r.shown() or r.message[:120]]
            table.add_row(*cells)
        return table

    def front_lines(self) -> list:
        """The Pareto front, one member a line (searches with a cost to minimise)."""
        if not self.minimize:
            return []
        front = self.front()
        lines = [f"Pareto front ({self.objective} against {self.cost_name}, cheapest first): "
                 f"{len(front)} trial{'s' if len(front) != 1 else ''} -> "
                 f"{self.out / 'pareto.json'}"]
        for r in front:
            cost = _ms(r.latency_ms) + " ms/image" if self.cost_name == "latency" else \
                f"{_num(self.cost(r))} {'MACs' if self.cost_name == 'macs' else 'params'}"
            lines.append(f"  trial {r.number}: {self.objective} {r.score:.4f}, {cost}  {r.shown()}")
        return lines

    def summary_lines(self) -> list:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))
        rej = self.rejections or {}
        lines = [f"{len(self.rows)} trials ({counts or 'none yet'}); "
                 f"{rej.get('count', 0)} architectures rejected before training"
                 + (" (" + ", ".join(f"{n} {k}" for k, n in sorted(rej.get("by_reason", {})
                                                                   .items())) + ")"
                    if rej.get("count") else "")]
        if self.stop_reason:
            lines.append(f"stopped early: {self.stop_reason}")
        lines += self.front_lines()
        best = self.best
        if best is not None:
            lines.append(f"best: trial {best.number}, {self.objective} {best.score:.4f}, "
                         f"{_num(best.params)} params -> {self.out / 'best.yaml'}")
            train = self.record.get("train", {})
            val = f" --val-split {train['val_split']}" if not train.get("val_data") else \
                f" --val-data {train['val_data']}"
            lines.append(f"train it: kblocks train {self.out / 'best.yaml'} --data "
                         f"{train.get('data')}{val} --seed {self.record.get('seed')} --epochs N")
        return lines

    def render(self, width: int = 160, limit: int | None = 30) -> str:
        from rich.console import Console

        console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
        console.print(self.table(limit))
        return console.export_text().rstrip() + "\n" + "\n".join(self.summary_lines())


def _num(v) -> str:
    return "-" if v is None else si(v, sep="")


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3g}"


class _Trial:
    """What the report reads of a Keras Tuner ``trial.json`` (``keras_tuner`` ``Trial.get_state``):
    id, status, score, message, hyperparameter values and metric observations."""

    def __init__(self, state: dict):
        self.trial_id = str(state["trial_id"])
        self.status = state.get("status") or "RUNNING"
        self.score = state.get("score")
        self.message = state.get("message")
        self.values = dict((state.get("hyperparameters") or {}).get("values") or {})
        self.metrics = ((state.get("metrics") or {}).get("metrics")) or {}

    @classmethod
    def load(cls, path) -> "_Trial":
        return cls(json.loads(Path(path).read_text()))

    def last_value(self, name):
        """The mean of the last step's values, as ``MetricsTracker.get_last_value`` gives it."""
        observations = (self.metrics.get(name) or {}).get("observations") or []
        if not observations:
            return None
        last = max(observations, key=lambda o: o.get("step", 0))
        values = [float(v) for v in (last.get("value") or [])]
        return sum(values) / len(values) if values else None


def _metric(trial: _Trial, name):
    try:
        value = trial.last_value(name)
    except (TypeError, ValueError, AttributeError):  # a metric without usable observations
        return None
    return None if value is None else float(value)


def load_report(out, *, space=None) -> SearchReport:
    """Read a search folder into a :class:`SearchReport` (no files written)."""
    from kblocks.search.space import SearchSpace

    out = Path(out)
    record = load_record(out)
    if space is None:
        space = SearchSpace.from_dict(record["space"])
    project = out / PROJECT
    oracle_state = {}
    if (project / "oracle.json").exists():
        oracle_state = json.loads((project / "oracle.json").read_text())
    rows = []
    paths = sorted(project.glob("trial_*/trial.json"), key=lambda p: _trial_key(p.parent.name))
    for path in paths:
        trial = _Trial.load(path)
        values = trial.values
        own = {k: v for k, v in values.items() if not str(k).startswith("tuner/")}
        row = TrialRow(trial.trial_id, trial.status, own, message=(trial.message or "").strip())
        if trial.status == "COMPLETED":
            row.score = None if trial.score is None else float(trial.score)
        epochs = _metric(trial, "epochs")
        row.epochs = int(epochs) if epochs is not None else None
        best_epoch = _metric(trial, "best_epoch")
        row.best_epoch = int(best_epoch) if best_epoch is not None else None
        row.seconds = _metric(trial, "seconds")
        row.latency_ms = _metric(trial, pareto.LATENCY_METRIC)
        row.continues = values.get("tuner/trial_id")
        verdict = measure(space, own)
        row.params, row.macs, row.activation_mb = verdict.params, verdict.macs, \
            verdict.activation_mb
        if verdict.ok or verdict.params is not None:
            row.text = space.fixed(own)
        if row.message:
            row.message = row.message.splitlines()[-1]
        rows.append(row)
    own_state = oracle_state.get("kblocks") or {}
    return SearchReport(out, record, rows, own_state.get("rejections") or {},
                        own_state.get("stop_reason") or record.get("stop_reason"))


def _trial_key(name: str):
    tail = name.split("_", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, tail)


def write_report(out, *, space=None) -> SearchReport:
    """Read the folder and write leaderboard.txt, trials.csv, best.yaml and search.png."""
    from kblocks.common import atomic
    from kblocks.search.space import SearchSpace

    out = Path(out)
    record = load_record(out)
    space = space or SearchSpace.from_dict(record["space"])
    report = load_report(out, space=space)
    atomic.write_text(out / "leaderboard.txt", report.render(limit=None) + "\n")
    atomic.write_text(out / "trials.csv", _csv(report))
    best = report.best
    if best is not None:
        atomic.write_text(out / "best.yaml", best_yaml(space, best, report))
    if report.minimize:
        atomic.write_json(out / "pareto.json", report.front_dict(), indent=1)
    plot_search(report, out / "search.png")
    return report


def _csv(report: SearchReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", "status", report.objective, "params", "macs", "activation_mib",
                     "epochs", "best_epoch", "seconds", "continues", "architecture",
                     "hyperparameters", "message", "latency_ms", "kt_trial_id"])
    for r in report.rows:
        writer.writerow([r.number, r.status, "" if r.score is None else repr(r.score),
                         _blank(r.params), _blank(r.macs), _blank(r.activation_mb),
                         _blank(r.epochs), _blank(r.best_epoch), _blank(r.seconds),
                         trial_number(r.continues) if r.continues else "", r.text,
                         json.dumps(r.values, sort_keys=True), r.message,
                         _blank(r.latency_ms), r.trial_id])
    return buf.getvalue()


def _blank(v):
    return "" if v is None else v


def best_yaml(space, best: TrialRow, report: SearchReport) -> str:
    import yaml

    doc = (f"Best architecture of the search in {report.out} (trial {best.number}, "
           f"{report.objective} {best.score:.4f} after {best.epochs} epochs, "
           f"{best.params:,} parameters, {best.macs:,} MACs). Hyperparameters: "
           + ", ".join(f"{k}={v}" for k, v in best.values.items()) + ".")
    data = space.architecture(best.values, name=f"{space.name}-best", doc=doc)
    return ("# Written by kblocks search; a complete architecture file with no placeholders.\n"
            + yaml.safe_dump(data, sort_keys=False, width=96, allow_unicode=True))


def pareto_front(points):
    """Indices of ``(cost, score)`` points no other point beats on both (lower cost, higher
    score), cheapest first (:func:`kblocks.search.pareto.pareto_front`)."""
    return pareto.pareto_front(points)


#: at most this many trials get their number written beside their point (beyond it, only the
#: front's members and the best trial, so the picture stays readable)
LABEL_ALL_UP_TO = 40
_COST_LABELS = {"params": "parameters", "macs": "multiply-adds per image",
                "latency": "latency (ms per image)"}


def y_range_note(report: SearchReport, scores) -> str:
    """What a reader must know about a y axis fitted to ``scores``: the span it shows, and how
    many validation images that span is (for an accuracy), when it is not the full 0..1 range."""
    if not scores or "loss" in report.objective:
        return ""
    low, high = min(scores), max(scores)
    if low <= 0.05 and high >= 0.95:
        return ""
    note = f"y axis zoomed to {low:.3f}..{high:.3f}"
    samples = ((report.record.get("data") or {}).get("val") or {}).get("samples")
    if samples and "acc" in report.objective:
        note += f" (a span of {round((high - low) * samples)} of {samples} validation images)"
    return note


def plot_search(report: SearchReport, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from kblocks.common import atomic

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), dpi=100)
    _plot_against_cost(report, axes[0])
    _plot_in_order(report, axes[1])
    rej = (report.rejections or {}).get("count", 0)
    done = [r.score for r in report.completed]
    note = y_range_note(report, done)
    fig.suptitle(f"{report.out}: {len(report.rows)} trials, {rej} rejected before training"
                 + (f"; {note}" if note else ""), fontsize=9)
    fig.tight_layout()
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _plot_against_cost(report: SearchReport, ax):
    """Score against cost: every trial numbered, the front as a step line, the best trial ringed
    (a hollow marker, so the front's point stays visible under it)."""
    import matplotlib.ticker

    done = [r for r in report.completed if report.cost(r) is not None]
    if done:
        costs, scores = [report.cost(r) for r in done], [r.score for r in done]
        ax.scatter(costs, scores, s=18, alpha=0.6, color="C0", label="trial", zorder=2)
        front = report.front()
        maximise = "loss" not in report.objective
        fx, fy = [report.cost(r) for r in front], [r.score for r in front]
        ax.step(fx + [max(costs)], fy + fy[-1:], where="post", color="C3", linewidth=1.4,
                zorder=3, label=f"Pareto front ({len(front)})")
        ax.scatter(fx, fy, s=30, color="C3", zorder=4)
        best = report.best
        ax.scatter([report.cost(best)], [best.score], marker="o", s=190, facecolors="none",
                   edgecolors="C2", linewidths=2.0, zorder=5, label=f"best (trial {best.number})")
        shown = {r.trial_id for r in front} | {best.trial_id}
        for r, x, y in zip(done, costs, scores):
            if len(done) <= LABEL_ALL_UP_TO or r.trial_id in shown:
                ax.annotate(str(r.number), (x, y), xytext=(7, 5), textcoords="offset points",
                            fontsize=7, color="C3" if r.trial_id in shown else "0.3", zorder=6)
        if min(costs) > 0 and max(costs) > 10 * min(costs):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if report.cost_name != "latency":
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 20k, 1.5M
        ax.legend(fontsize=8, loc="lower right" if maximise else "upper right")
    ax.set_xlabel(_COST_LABELS.get(report.cost_name, report.cost_name))
    ax.set_ylabel(report.objective)
    ax.set_title(f"{report.objective} against {_COST_LABELS.get(report.cost_name)} "
                 f"(labels: trial numbers)", fontsize=10)
    ax.grid(True, alpha=0.3)


def _plot_in_order(report: SearchReport, ax):
    """Score by trial number, with the running best."""
    import matplotlib.ticker

    order = [r for r in report.rows if r.status == "COMPLETED" and r.score is not None]
    if order:
        xs = [r.number if isinstance(r.number, int) else i for i, r in enumerate(order, 1)]
        ys = [r.score for r in order]
        ax.plot(xs, ys, "o", markersize=4, alpha=0.7, label="trial")
        better = max if "loss" not in report.objective else min
        running = [ys[0]]
        for y in ys[1:]:
            running.append(better(running[-1], y))
        ax.step(xs, running, where="post", color="C3", label="best so far")
        ax.legend(fontsize=8)
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(report.objective)
    ax.set_title("by trial number (failed trials left out)", fontsize=10)
    ax.grid(True, alpha=0.3)
