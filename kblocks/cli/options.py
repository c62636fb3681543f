"""Options shared by commands, declared once: the training options (one per ``TrainConfig`` field)
that ``kblocks train`` and ``kblocks search`` both take, the one ``--set`` parser, and the table
that turns the Python argument names in library errors into the flags of the command line.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields

import click

from kblocks.common.errors import ConfigError

_OPTIMIZERS = click.Choice(["sgd", "adam", "adamw"], case_sensitive=False)
_SCHEDULES = click.Choice(["constant", "step", "cosine", "onecycle", "plateau"],
                          case_sensitive=False)


_FIELD_DEFAULT = object()  # an option whose default is its TrainConfig field's


@dataclass(frozen=True)
class TrainOption:
    """One command-line option that sets the ``TrainConfig`` field of the same name.

    ``search`` holds what ``kblocks search`` changes (help, default); None means the option is
    ``kblocks train``'s only. The default is the field's own unless ``default`` is given.
    """

    name: str
    help: str | None = None
    type: object = None
    default: object = _FIELD_DEFAULT
    decls: tuple = ()
    search: dict | None = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_DATA = "digits | npz:PATH | cifar10:PATH | images:DIR | tfds:NAME | shapes | masks:DIR (segmentation)"

#: The training options, in the order ``--help`` lists them.
TRAIN_OPTIONS = (
    TrainOption("data", f"{_DATA} (or a path). Required unless --resume.", default=None,
                search={"help": f"{_DATA} (as kblocks train)."}),
    TrainOption("data_dir", "Folder of prepared TFDS data sets (tfds:)."),
    TrainOption("image_size", "Resize the images to H or HxW (any source).",
                search={"help": "Resize images:/tfds: data to H or HxW."}),
    TrainOption("val_split", "Validation count (5000) or fraction (0.1); stratified and seeded. "
                "0 for none.", type=str, default="0.1",
                search={"help": "Validation count (5000) or fraction (0.1); stratified and seeded."}),
    TrainOption("val_data", "A separate validation source instead of a split."),
    TrainOption("subset", "Train on a stratified subset (count or fraction).", type=str,
                search={"help": "Search on a stratified subset (count or fraction)."}),
    TrainOption("epochs", type=int, search={"default": 5, "help": "Epochs per trial (not hyperband)."}),
    TrainOption("batch_size", type=int),
    TrainOption("optimizer", type=_OPTIMIZERS),
    TrainOption("lr", "Peak learning rate [default: sgd 0.05, adam/adamw 0.001; x0.1 with "
                "--transfer]", type=float, search={"help": "Peak learning rate [trainer's default]."}),
    TrainOption("momentum", "SGD momentum.", type=float, search=None),
    TrainOption("nesterov", "Nesterov momentum for SGD.", decls=("--nesterov/--no-nesterov",),
                search=None),
    TrainOption("weight_decay", "Decoupled weight decay [default: sgd 5e-4 (PyTorch-equivalent), "
                "adam 0, adamw 0.05]", type=float, search={"help": None}),
    TrainOption("schedule", type=_SCHEDULES),
    TrainOption("warmup", "Warm-up epochs (cosine, onecycle).", type=float,
                search={"help": "Warm-up epochs."}),
    TrainOption("step_every", "Epochs between steps (step schedule).", type=int, search=None),
    TrainOption("step_gamma", "Factor per step (step schedule).", type=float, search=None),
    TrainOption("augment", "Comma list: flip, cropN, translateN, cutoutN."),
    TrainOption("label_smoothing", type=float),
    TrainOption("normalize", "Input layer: per-channel mean/std of the training split, 1/255, or "
                "nothing.", type=click.Choice(["standardize", "scale", "none"]),
                search={"help": None}),
    TrainOption("precision", "auto = bf16 on a GPU, fp32 on CPU.",
                type=click.Choice(["auto", "bf16", "fp16", "fp32"]), search={"help": None}),
    TrainOption("seed", "Random seed [default: a fresh one, saved].", type=int,
                search={"help": "Seed of the split and of the tuner [default: 1]."}),
    TrainOption("deterministic", "Deterministic ops (slower).", extra={"is_flag": True},
                search=None),
    TrainOption("early_stopping", "Patience in epochs (0 = off).", type=int,
                search={"help": "Patience within a trial (0 = off)."}),
    TrainOption("monitor", "Metric for best.keras/early stopping.", search=None),
    TrainOption("transfer", "Start from MODEL.keras or FILE.weights.h5.", search=None),
    TrainOption("freeze_until", "Freeze through the last layer matching an index, name or prefix "
                "('backbone' = all but the head).", search=None),
    TrainOption("reset_head", "New head even if the class count matches.",
                extra={"is_flag": True}, search=None),
    TrainOption("distribute", "Data-parallel over all local devices.", extra={"is_flag": True},
                search=None),
    TrainOption("feed", "How batches reach the model: device = uint8 data moved to the "
                "accelerator once and batched there; auto = device on JAX with a GPU/TPU, else host.",
                type=click.Choice(["auto", "host", "device"]),
                search={"help": "How batches reach each trial's model (see kblocks train --help)."}),
    TrainOption("steps_per_execution", "Training steps per compiled call [auto: 32 on a GPU/TPU, "
                "1 on CPU].", type=str, extra={"metavar": "N|auto"}),
)


def _field_defaults() -> dict:
    from kblocks.training import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def train_options(command: str):
    """Decorator adding the training options of ``command`` (``"train"`` or ``"search"``).

    The command receives each as a keyword named after its ``TrainConfig`` field; pass them to
    :func:`train_config_values`.
    """
    def decorate(fn):
        defaults = _field_defaults()
        for opt in reversed(TRAIN_OPTIONS):
            if command == "search" and opt.search is None:
                continue
            changes = opt.search if command == "search" else {}
            default = changes.get("default", defaults[opt.name] if opt.default is _FIELD_DEFAULT
                                  else opt.default)
            kwargs = {"default": default, "help": changes.get("help", opt.help), **opt.extra}
            if opt.type is not None:
                kwargs["type"] = opt.type
            fn = click.option(*(opt.decls or (opt.flag,)), opt.name, **kwargs)(fn)
        return fn
    return decorate


def train_config_values(options: dict) -> dict:
    """``TrainConfig`` keywords from the values :func:`train_options` passed to a command."""
    names = {opt.name for opt in TRAIN_OPTIONS}
    values = {k: v for k, v in options.items() if k in names}
    for name in ("optimizer", "schedule"):
        if isinstance(values.get(name), str):
            values[name] = values[name].lower()
    return values


# --- --set NAME=VALUE ------------------------------------------------------------------------------

def literal(value: str):
    """A ``--set`` value: true/false, a whole number, a number, or the text itself."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_assignments(pairs) -> dict:
    """``{name: value}`` of ``--set`` values; one value may hold several (``--set N=2 M=3``).

    Raises:
        ConfigError: a word that is not ``NAME=VALUE`` with NAME a Python identifier.
    """
    out = {}
    for pair in pairs:
        for item in str(pair).split():
            name, sep, value = item.partition("=")
            if not sep or not name.isidentifier():
                raise ConfigError(f"--set takes NAME=VALUE, got {item!r}", what="--set",
                                  hint="write NAME=VALUE, e.g. --set width=64")
            out[name] = literal(value)
    return out


def number(text, option):
    """``2e6``, ``2000000``, ``2M`` or ``300k`` -> a float (None stays None)."""
    if text is None:
        return None
    raw = str(text).strip()
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(raw[-1:].lower(), 1.0)
    if scale != 1.0:
        raw = raw[:-1]
    try:
        return float(raw) * scale
    except ValueError:
        raise ConfigError(f"{option} takes a number like 2e6 or 300k, got {text!r}",
                          what=option) from None


# --- library argument names -> command-line flags ------------------------------------------------

#: Library argument names whose option has another name on the command line. Every other
#: argument is the option of the same name (``batch_size`` is ``--batch-size``).
FLAG_EXCEPTIONS = {"variables": "--set", "tensorboard": "--no-tensorboard", "verbose": "-q",
                   "tuner": "--tuner", "chief": "--chief", "source": "SOURCE", "space": "SPACE",
                   "model_path": "MODEL"}


def flags_of(command) -> dict:
    """``{argument name: flag}`` for a click command: each option under its parameter name, plus
    :data:`FLAG_EXCEPTIONS`."""
    out = dict(FLAG_EXCEPTIONS)
    for param in getattr(command, "params", ()):
        if isinstance(param, click.Option):
            out[param.name] = max(param.opts, key=len)
    return out


_ARG = re.compile(r"(?<![\w.-])([a-z][a-z0-9_]*)=(True\b)?")


def as_flags(text: str | None, flags: dict) -> str | None:
    """Library wording -> command-line wording, for the arguments in ``flags``: ``transfer=``
    reads ``--transfer``, ``resume=True`` reads ``--resume``, ``val_split=5000`` reads
    ``--val-split 5000``."""
    if not text:
        return text

    def swap(m):
        name, true = m.group(1), m.group(2)
        if name not in flags:
            return m.group(0)
        following = text[m.end():m.end() + 1]
        if true or not following.strip() or following in ",.;:)":
            return flags[name]
        return flags[name] + " "
    return _ARG.sub(swap, text)


def in_flags(err, flags: dict) -> str:
    """The text of library error ``err`` as the command line prints it (see :func:`as_flags`)."""
    kept = err.what, err.message, err.hint
    try:
        if err.what and err.what.isidentifier() and err.what in flags:
            err.what = flags[err.what]
        err.message, err.hint = as_flags(err.message, flags), as_flags(err.hint, flags)
        return err.render()
    finally:
        err.what, err.message, err.hint = kept
