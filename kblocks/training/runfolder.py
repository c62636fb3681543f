"""The run folder: atomic file writes, ``history.csv``, ``curves.png``, ``run.json``.

Every file is written under a temporary name in the same folder and moved into place with
``os.replace``, so a reader (or a crash) never sees half a file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

from kblocks.common import atomic
from kblocks.common.atomic import atomic_path
from kblocks.common.errors import ConfigError

RUN_FILES = ("best.keras", "last.keras", "history.csv", "curves.png", "run.json",
             "architecture.txt", "summary.txt", "logs", "state.json")


def write_text(path, text: str, *, kept=None):
    """``text`` to ``path`` atomically (:mod:`kblocks.common.atomic`). A failed write (a full
    disk) says what the run folder still holds (``kept``, default :func:`checkpoints_kept`)."""
    atomic.write_text(path, text, kept=kept or (lambda: checkpoints_kept(Path(path).parent)))


def write_json(path, obj, *, kept=None):
    write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n", kept=kept)


def checkpoints_kept(run_dir) -> str | None:
    """What the checkpoints of run folder ``run_dir`` hold, as its ``state.json`` records them:
    ``"runs/x/last.keras still holds epoch 3, runs/x/best.keras epoch 2 (resume with kblocks
    train --resume runs/x)"``; None when no epoch has been saved. For the message of a write
    that failed (a full disk): the files named are complete, whatever failed after them."""
    run_dir = Path(run_dir)
    try:
        state_path = run_dir / "state.json"
        if not state_path.is_file() or state_path.stat().st_size > 1 << 20:
            return None
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    return epochs_kept(run_dir, state.get("epochs_done"), state.get("best_epoch"))


def epochs_kept(run_dir, last_epoch, best_epoch) -> str | None:
    """``"RUN/last.keras still holds epoch N, RUN/best.keras epoch M (resume with ...)"``, naming
    only the files that exist and the epochs known; None when there is nothing."""
    run_dir = Path(run_dir)
    parts = []
    last = isinstance(last_epoch, int) and last_epoch > 0 and (run_dir / "last.keras").is_file()
    if last:
        parts.append(f"{run_dir / 'last.keras'} still holds epoch {last_epoch}")
    if isinstance(best_epoch, int) and best_epoch > 0 and (run_dir / "best.keras").is_file():
        parts.append(f"{run_dir / 'best.keras'} {'' if parts else 'still holds '}epoch {best_epoch}")
    if not parts:
        return None
    return ", ".join(parts) + (f" (resume with kblocks train --resume {run_dir})" if last else "")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        try:
            obj = obj.item()
        except (ValueError, TypeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def write_history(path, rows: list):
    """Rows of ``{epoch, metric: value}`` -> CSV with a stable column order."""
    columns = ["epoch"]
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    write_text(path, buf.getvalue())


def read_history(path) -> list:
    """``history.csv`` back as rows of ``{column: float or None}`` (``epoch`` an int)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if key is None:
                    continue
                try:
                    row[key] = int(value) if key == "epoch" else float(value)
                except (TypeError, ValueError):
                    row[key] = None if value in ("", None) else value
            rows.append(row)
    return rows


def read_resume_state(path) -> dict:
    """What ``kblocks train --resume`` continues from: ``run.json`` (the run's options), ``state.json``
    (epochs done, best value; absent if no epoch finished) and the rows of ``history.csv``."""
    path = Path(path)
    record_path, state_path = path / "run.json", path / "state.json"
    if not record_path.is_file():
        raise ConfigError(f"{path} is not a run folder: it has no run.json", what="resume",
                          hint="give the out= folder of an earlier kblocks train")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{record_path} is not a kblocks run record", what="resume") from None
    state = {}
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except ValueError:
            raise ConfigError(f"{state_path} is damaged", what="resume") from None
    done = int(state.get("epochs_done") or 0)
    if done and not (path / "last.keras").is_file():
        raise ConfigError(f"{path}/state.json says {done} epoch(s) finished but last.keras is "
                          f"missing", what="resume")
    rows = [r for r in read_history(path / "history.csv") if (r.get("epoch") or 0) <= done]
    return {"record": record, "state": state, "epochs_done": done, "rows": rows}


def _fmt(v):
    if isinstance(v, float):
        return repr(v)
    return v


def plot_curves(path, rows: list, title: str = ""):
    """``curves.png``: loss and accuracy per epoch, train against validation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "val", "--")):
            values = [r.get(key) for r in rows]
            if any(isinstance(v, (int, float)) for v in values):
                ax.plot(epochs, [v if isinstance(v, (int, float)) else float("nan") for v in values],
                        style, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png", kept=lambda: checkpoints_kept(Path(path).parent)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def default_run_dir(name: str, root="runs") -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40] or "run"
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"


def recorded_files(path) -> list:
    """The names kblocks wrote in run folder ``path``, as its ``run.json`` records them.

    Only names of :data:`RUN_FILES` count, whatever the record says, so a damaged or edited
    ``run.json`` can never make ``--overwrite`` remove anything else. A record from before the
    ``files`` list existed owns every run file name."""
    record_path = Path(path) / "run.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    listed = record.get("files") if isinstance(record, dict) else None
    if not isinstance(listed, list):
        return list(RUN_FILES)
    return [name for name in RUN_FILES if name in listed]


def _names(paths) -> str:
    return ", ".join(p.name + ("/" if p.is_dir() else "") for p in paths)


def check_run_dir(path, *, overwrite=False, protect=()) -> Path:
    """Refuse (before any work) a run folder that is a file, already holds a run, or holds files
    of the user's under the names a run writes.

    ``overwrite`` allows replacing a run kblocks wrote: only the files its ``run.json`` records
    are removed, never one of ``protect`` (the files the run reads, such as a ``--transfer``
    model inside that folder)."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"{path} exists and is not a folder", what="out",
                          hint="give a folder for the run")
    if not path.is_dir():
        return path
    if (path / "run.json").exists():
        if not overwrite:
            raise ConfigError(f"run folder {path} already holds a run", what="out",
                              hint="pass a new out= folder, or overwrite=True to replace it")
        owned = recorded_files(path)
        foreign = [path / name for name in RUN_FILES
                   if name not in owned and os.path.lexists(path / name)]
        if foreign:
            raise ConfigError(f"{path} holds {_names(foreign)}, which its run.json does not list "
                              f"as written by kblocks; a new run would write into them",
                              what="out", hint="move them out of the folder, or pass a new out=")
        doomed = [path / name for name in owned if os.path.lexists(path / name)]
        protected = {Path(p).resolve() for p in protect if p}
        hit = [p for p in doomed if p.resolve() in protected or
               any(q.is_relative_to(p.resolve()) for q in protected)]
        if hit:
            raise ConfigError(f"overwrite=True would remove {_names(hit)} in {path}, which this run "
                              f"reads", what="out",
                              hint="copy the file out of the folder first, or pass a new out= folder")
        return path
    foreign = [path / name for name in RUN_FILES if os.path.lexists(path / name)]
    if foreign:
        raise ConfigError(f"{path} holds {_names(foreign)}, which kblocks did not write (the folder "
                          f"has no run.json); a run would replace them", what="out",
                          hint="pass a new or empty out= folder")
    return path


def prepare_run_dir(path, *, overwrite=False, protect=()) -> Path:
    """Create the run folder; refuse to mix a new run into an old one unless ``overwrite``, and
    then remove only what the old run's ``run.json`` says kblocks wrote."""
    path = check_run_dir(path, overwrite=overwrite, protect=protect)
    if overwrite and (path / "run.json").exists():
        import shutil

        for name in recorded_files(path):
            target = path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif os.path.lexists(target):
                target.unlink()  # a symlink is removed, never followed
    path.mkdir(parents=True, exist_ok=True)
    try:  # a fresh O_EXCL name: never a file (or a link) that is already there
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"cannot write in {path}: {err.strerror}", what="out") from None
    return path
