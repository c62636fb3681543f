"""The report of a search folder (``kblocks report``, also written when a search ends).

Files written into the folder, each atomically:

* ``leaderboard.txt`` the table printed on screen: every trial, best first, with its fixed text,
  parameters, MACs, best validation accuracy, epochs and training time;
* ``trials.csv``      one row per trial with its hyperparameter values (JSON) as well;
* ``best.yaml``       the best architecture as a complete architecture file (``input``,
  ``classes``, ``blocks``, ``network``, no placeholders): ``kblocks summary best.yaml`` and
  ``kblocks train best.yaml`` take it as it is;
* ``search.png``      validation accuracy against parameters with the Pareto front marked, and
  validation accuracy in trial order with the running best.

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
from kblocks.search.budget import measure
from kblocks.search.record import load_record

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
        for name, justify in (("#", "right"), ("trial", "right"), (self.objective, "right"),
                              ("params", "right"), ("MACs", "right"), ("epochs", "right"),
                              ("time", "right"), ("status", "left"), ("architecture", "left")):
            table.add_column(name, justify=justify, overflow="fold")
        for i, r in enumerate(self.ranked()[:limit], 1):
            note = f" (continues {r.continues})" if r.continues else ""
            table.add_row(str(i) if r.score is not None else "-", r.trial_id,
                          f"{r.score:.4f}" if r.score is not None else "-", _num(r.params),
                          _num(r.macs), str(r.epochs) if r.epochs is not None else "-",
                          f"{r.seconds:.1f}s" if r.seconds is not None else "-",
                          r.status.lower() + note, r.text or r.message[:120])
        return table

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
        best = self.best
        if best is not None:
            lines.append(f"best: trial {best.trial_id}, {self.objective} {best.score:.4f}, "
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
    plot_search(report, out / "search.png")
    return report


def _csv(report: SearchReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", "status", report.objective, "params", "macs", "activation_mib",
                     "epochs", "best_epoch", "seconds", "continues", "architecture",
                     "hyperparameters", "message"])
    for r in report.rows:
        writer.writerow([r.trial_id, r.status, "" if r.score is None else repr(r.score),
                         _blank(r.params), _blank(r.macs), _blank(r.activation_mb),
                         _blank(r.epochs), _blank(r.best_epoch), _blank(r.seconds),
                         r.continues or "", r.text, json.dumps(r.values, sort_keys=True),
                         r.message])
    return buf.getvalue()


def _blank(v):
    return "" if v is None else v


def best_yaml(space, best: TrialRow, report: SearchReport) -> str:
    import yaml

    doc = (f"Best architecture of the search in {report.out} (trial {best.trial_id}, "
           f"{report.objective} {best.score:.4f} after {best.epochs} epochs, "
           f"{best.params:,} parameters, {best.macs:,} MACs). Hyperparameters: "
           + ", ".join(f"{k}={v}" for k, v in best.values.items()) + ".")
    data = space.architecture(best.values, name=f"{space.name}-best", doc=doc)
    return ("# Written by kblocks search; a complete architecture file with no placeholders.\n"
            + yaml.safe_dump(data, sort_keys=False, width=96, allow_unicode=True))


def pareto_front(points):
    """Indices of ``(params, score)`` points no other point beats on both (fewer params, higher
    score), in order of increasing parameters."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_search(report: SearchReport, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from kblocks.common import atomic

    done = [r for r in report.completed if r.params is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    ax = axes[0]
    if done:
        pts = [(r.params, r.score) for r in done]
        ax.scatter([p for p, _ in pts], [s for _, s in pts], s=18, alpha=0.6, label="trial")
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "-o", color="C3",
                markersize=6, label="Pareto front")
        best = report.best
        ax.scatter([best.params], [best.score], marker="*", s=160, color="C2", zorder=5,
                   label=f"best (trial {best.trial_id})")
        if max(p for p, _ in pts) > 10 * max(1, min(p for p, _ in pts)):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 20k, 1.5M
        ax.legend(fontsize=8)
    ax.set_xlabel("parameters")
    ax.set_ylabel(report.objective)
    ax.set_title("accuracy against size")
    ax.grid(True, alpha=0.3)
    ax = axes[1]
    order = [r for r in report.rows if r.status == "COMPLETED" and r.score is not None]
    if order:
        xs = list(range(1, len(order) + 1))
        ys = [r.score for r in order]
        ax.plot(xs, ys, "o", markersize=4, alpha=0.7, label="trial")
        better = max if "loss" not in report.objective else min
        running = [ys[0]]
        for y in ys[1:]:
            running.append(better(running[-1], y))
        ax.step(xs, running, where="post", color="C3", label="best so far")
        ax.legend(fontsize=8)
    ax.set_xlabel("completed trial (in order)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(report.objective)
    ax.set_title("accuracy in trial order")
    ax.grid(True, alpha=0.3)
    rej = (report.rejections or {}).get("count", 0)
    fig.suptitle(f"{report.out}: {len(report.rows)} trials, {rej} rejected before training",
                 fontsize=9)
    fig.tight_layout()
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
