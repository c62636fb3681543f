"""Export for serving: a TensorFlow SavedModel, a TFLite (LiteRT) file or an ONNX file, each written
with Keras' own ``model.export`` and checked against the Keras model.

    from kblocks.training.export import export_model
    report = export_model(model, "serving/m.tflite", format="tflite")
    print("\\n".join(report.lines()))

Every format is written atomically: into a temporary beside the target, renamed onto it only when
complete, so the target never holds half an artifact. An existing target is an error unless
``overwrite``; then only a SavedModel folder (``savedmodel``) or a file of the format's suffix
(``.tflite``, ``.onnx``) is replaced, never a folder holding other files or the model being
exported (``reads``).

The parity check (``check=True``) runs the Keras model and the exported artifact on the same
:data:`PARITY_BATCH` random images in the model's input convention (pixels 0..255 for a model with
a ``kblocks_normalize`` layer, values 0..1 otherwise; :mod:`kblocks.lang.conventions`) and compares
every output: the largest absolute difference must be at most :data:`PARITY_TOLERANCE` times the
outputs' scale (``max(1, max |Keras output|)``). Over it, :class:`ExportParityError` is raised and
the artifact is **kept** at its path (the message says so), for inspection.

The serving signature (input name, dtype, shape and range; output names and kind, logits or
probabilities) is read from the artifact and the model: :attr:`ExportReport.signature`.

Runtimes: SavedModel needs TensorFlow; TFLite is written by TensorFlow's converter (Keras'
``"litert"`` format) and checked with ``ai_edge_litert`` if installed, else ``tf.lite.Interpreter``;
ONNX is written through ``tf2onnx`` and checked with ``onnxruntime`` (``pip install 'kblocks[onnx]'``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kblocks.common.atomic import atomic_path
from kblocks.common.errors import KBlocksError
from kblocks.common.files import UserFileError, worded_disk_full, writing

FORMATS = ("savedmodel", "tflite", "onnx")
#: the file suffix each single-file format needs (Keras' LiteRT export insists on ``.tflite``)
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
#: what ``model.export`` writes in a SavedModel folder; ``overwrite`` replaces nothing else
SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb"}
#: images in the batch the parity check runs through the Keras model and the artifact
PARITY_BATCH = 4
#: largest max |Keras - artifact| accepted (float32 models), times max(1, max |Keras output|)
PARITY_TOLERANCE = 1e-4
_KERAS_FORMAT = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}


class ExportParityError(KBlocksError):
    """The exported artifact does not compute what the Keras model computes (over the tolerance).
    The artifact is kept; :attr:`report` holds the figures."""

    def __init__(self, message, *, report=None, **kwargs):
        self.report = report
        super().__init__(message, **kwargs)


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how it compared with the Keras model."""

    path: Path
    format: str
    params: int
    #: ``{"input": {name, dtype, shape, range}, "outputs": [{name, shape}], "output": "logits" |
    #: "probabilities", "classes": int | None, "call": how to run it}``
    signature: dict = field(default_factory=dict)
    max_diff: float | None = None  # None: not checked
    compared: str = ""  # e.g. "4x10" (outputs compared, batch x values; "+" between outputs)
    tolerance: float = PARITY_TOLERANCE
    scale: float = 1.0  # max(1, max |Keras output|): the tolerance is relative to it
    note: str | None = None  # conventions assumed for a model that does not state them

    @property
    def checked(self) -> bool:
        return self.max_diff is not None

    @property
    def passed(self) -> bool:
        return self.checked and self.max_diff <= self.tolerance * self.scale

    def parity_line(self) -> str:
        if not self.checked:
            return "parity: not checked"
        bound = self.tolerance * self.scale
        return (f"parity: max |diff| = {self.max_diff:.1e} over {self.compared} outputs "
                f"({'within' if self.passed else 'OVER'} the tolerance {bound:.0e})")

    def signature_lines(self) -> list:
        sig = self.signature
        inp = sig["input"]
        shape = "(" + ", ".join("None" if d is None else str(d) for d in inp["shape"]) + ")"
        lines = [f"input: {inp['name']!r} {inp['dtype']} {shape}: {inp['range']}"]
        names = ", ".join(repr(o["name"]) for o in sig["outputs"])
        classes = f" ({sig['classes']} classes)" if sig.get("classes") else ""
        lines.append(f"output: {names}: {sig['output']}{classes}")
        lines.append(f"run it: {sig['call']}")
        return lines

    def lines(self) -> list:
        """What ``kblocks export`` prints."""
        out = [f"exported {self.path} ({self.params:,} params) as {self.format}"]
        out += self.signature_lines()
        out.append(self.parity_line())
        return out


# --- targets -----------------------------------------------------------------------------------

def _names_path(value) -> bool:
    try:
        return bool(value) and "\n" not in str(value) and os.path.exists(value)
    except (OSError, ValueError):  # a name too long, a NUL byte: text, not a path
        return False


def check_export_target(path, *, overwrite: bool, reads=(), format: str = "savedmodel") -> Path:
    """Refuse an export target before any work: an existing one without ``overwrite``, a target
    of the wrong kind (a file for a SavedModel, a folder or a wrong suffix for a file format), one
    of the files being exported (``reads``), and with ``overwrite`` a folder that is not a
    SavedModel (a run folder, the folder holding the .keras file being exported)."""
    fmt = _check_format(format)
    target = Path(path)
    if fmt in SUFFIXES:
        return _check_file_target(target, fmt, overwrite=overwrite, reads=reads)
    for suffix in SUFFIXES.values():
        if target.name.endswith(suffix):
            raise KBlocksError(f"{target} ends in {suffix} but the format is savedmodel (a folder)",
                               hint=f"pass --format {suffix[1:]}, or give a folder name")
    if os.path.lexists(target) and not overwrite:
        raise KBlocksError(f"{target} already exists; pass --overwrite to replace it")
    if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
        raise KBlocksError(f"{target} exists and is not a folder; a SavedModel is a folder")
    if not target.is_dir():
        return target
    for source in reads:
        if _names_path(source) and Path(source).resolve().is_relative_to(target.resolve()):
            raise KBlocksError(f"{target} holds {source}, the model being exported; --overwrite "
                               f"would destroy it", hint="export to another folder")
    foreign = sorted(p.name for p in target.iterdir() if p.name not in SAVED_MODEL_ENTRIES)
    if foreign:
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise KBlocksError(f"{target} is not a SavedModel folder (it holds {listed}); "
                           f"--overwrite replaces only a SavedModel kblocks exported",
                           hint="export to a new or empty folder")
    return target


def _check_file_target(target: Path, fmt: str, *, overwrite: bool, reads) -> Path:
    suffix = SUFFIXES[fmt]
    if not target.name.endswith(suffix) or target.name == suffix:
        raise KBlocksError(f"a {fmt} export is one file named *{suffix}; got {target}",
                           hint=f"give -o NAME{suffix}")
    for source in reads:
        if _names_path(source) and Path(source).resolve() == target.resolve():
            raise KBlocksError(f"{target} is the model being exported; exporting onto it would "
                               f"destroy it", hint="export to another file")
    if os.path.lexists(target):
        if not overwrite:
            raise KBlocksError(f"{target} already exists; pass --overwrite to replace it")
        if target.is_symlink() or not target.is_file():
            raise KBlocksError(f"{target} exists and is not a regular file; --overwrite replaces "
                               f"only a {suffix} file", hint="export to a new file")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserFileError(f"cannot write {target}: {parent} is a file, not a folder",
                            hint="give a path inside a folder")
    return target


def _check_format(format) -> str:
    if format not in FORMATS:
        raise KBlocksError(f"format={format!r}: use one of " + ", ".join(FORMATS))
    return format


# --- writing -----------------------------------------------------------------------------------

def export_saved_model(model, path, *, overwrite: bool = False, reads=()) -> Path:
    """Write ``model`` as a TensorFlow SavedModel at ``path`` with ``model.export``, atomically.

    The export goes to a temporary folder next to ``path`` and is renamed onto it only when
    complete, so ``path`` never holds half a model. An existing ``path`` is an error unless
    ``overwrite`` is true; then it is replaced and the old folder removed after the rename.
    """
    target = check_export_target(path, overwrite=overwrite, reads=reads)
    kept = f"{target} still holds the previous SavedModel" if target.exists() else None
    with writing(target, what="the SavedModel", kept=kept):  # a full disk: one line, exit 2
        try:
            return _export_into(model, target)
        except OSError:
            raise
        except Exception as err:  # TensorFlow words a full disk its own way
            disk_full = worded_disk_full(err)
            if disk_full is None:
                raise
            raise disk_full from None


def _export_into(model, target: Path) -> Path:
    """:func:`export_saved_model` once the target is checked: a temporary folder, renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _layers(model):
    """Every layer of ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _layers(layer)


@contextmanager
def _constant_statistics(model):
    """A ``Normalization`` built with ``mean=``/``variance=`` (the ``kblocks_normalize`` layer of
    every model ``kblocks train`` makes) holds them as eager tensors, which a traced function
    captures and tf2onnx turns into two more graph *inputs*; held as NumPy arrays for the export,
    they are traced as constants of the graph instead (the same values)."""
    import keras

    swapped = []
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Normalization) and getattr(layer, "mean", None) is not None:
            swapped.append((layer, layer.mean, layer.variance))
            layer.mean, layer.variance = np.asarray(layer.mean), np.asarray(layer.variance)
    try:
        yield
    finally:
        for layer, mean, variance in swapped:
            layer.mean, layer.variance = mean, variance


def _export_file(model, target: Path, fmt: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=SUFFIXES[fmt]) as tmp, _constant_statistics(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's numpy 2 shims
            model.export(str(tmp), format=_KERAS_FORMAT[fmt], verbose=False)
    return target


def _require(fmt: str, check: bool) -> None:
    """The packages a format needs, refused before any work with the install line."""
    import importlib.util

    def have(name):
        return importlib.util.find_spec(name) is not None

    if not have("tensorflow"):
        raise KBlocksError(f"a {fmt} export needs TensorFlow (pip install 'kblocks[tf]')")
    if fmt == "onnx":
        missing = [n for n in ("tf2onnx", "onnx") if not have(n)]
        if check and not have("onnxruntime"):
            missing.append("onnxruntime")
        if missing:
            raise KBlocksError(f"an onnx export needs {', '.join(missing)} (not installed)",
                               hint="pip install 'kblocks[onnx]'" +
                                    ("" if "tf2onnx" in missing or "onnx" in missing
                                     else ", or pass --no-check (check=False) to skip the "
                                          "parity check"))


# --- running the artifact ----------------------------------------------------------------------

def _flat(outputs) -> list:
    """Outputs in Keras' flattening order (a dict by sorted key, as tf.nest and the exporters)."""
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


class _Runner:
    """The exported artifact loaded for inference: ``input`` (name, dtype, shape), ``outputs``
    (names and shapes), ``call`` (a line saying how to run it) and ``run(x) -> [arrays]``."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.format = path, fmt
        getattr(self, f"_load_{fmt}")()

    def _load_savedmodel(self):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(self.path))  # keeps the variables alive
        fn = self._loaded.serve
        spec = fn.input_signature[0] if fn.input_signature else None
        concrete = fn.get_concrete_function(*fn.input_signature)
        self.input = {"name": spec.name or "input", "dtype": spec.dtype.name,
                      "shape": tuple(spec.shape)}
        outs = concrete.structured_outputs
        if isinstance(outs, dict):
            self.outputs = [{"name": k, "shape": tuple(outs[k].shape)} for k in sorted(outs)]
        elif isinstance(outs, (list, tuple)):
            self.outputs = [{"name": f"output_{i}", "shape": tuple(o.shape)}
                            for i, o in enumerate(outs)]
        else:
            self.outputs = [{"name": "output_0", "shape": tuple(outs.shape)}]
        self.call = f"tf.saved_model.load({str(self.path)!r}).serve(x)"
        self.run = lambda x: _flat(fn(tf.constant(x)))

    def _load_tflite(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
            where = "ai_edge_litert.interpreter.Interpreter"
        except ImportError:
            import tensorflow as tf

            Interpreter, where = tf.lite.Interpreter, "tf.lite.Interpreter"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = Interpreter(model_path=str(self.path))
        signatures = interpreter.get_signature_list()
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        names = signatures[key]["inputs"]
        if len(names) != 1:
            raise KBlocksError(f"{self.path}: the TFLite signature has {len(names)} inputs; kblocks "
                               f"exports one-input models")
        runner = interpreter.get_signature_runner(key)
        details = runner.get_input_details()[names[0]]
        self.input = {"name": names[0], "dtype": np.dtype(details["dtype"]).name,
                      "shape": _signature_shape(details)}
        out_details = runner.get_output_details()
        order = sorted(out_details, key=_output_index)
        self.outputs = [{"name": n, "shape": _signature_shape(out_details[n])} for n in order]
        self.call = (f"{where}(model_path={str(self.path)!r}).get_signature_runner()"
                     f"({names[0]}=x)")
        self._tflite = interpreter  # the runner needs the interpreter alive
        self.run = lambda x: [np.asarray(v) for _, v in
                              sorted(runner(**{names[0]: x}).items(),
                                     key=lambda kv: _output_index(kv[0]))]

    def _load_onnx(self):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise KBlocksError(f"{self.path}: the ONNX graph has {len(inputs)} inputs; kblocks "
                               f"exports one-input models")
        dtype = {"tensor(float)": "float32", "tensor(double)": "float64",
                 "tensor(float16)": "float16"}.get(inputs[0].type, inputs[0].type)
        self.input = {"name": inputs[0].name, "dtype": dtype, "shape": _onnx_shape(inputs[0].shape)}
        self.outputs = [{"name": o.name, "shape": _onnx_shape(o.shape)}
                        for o in session.get_outputs()]
        self.call = (f"onnxruntime.InferenceSession({str(self.path)!r})"
                     f".run(None, {{{inputs[0].name!r}: x}})")
        self.run = lambda x: [np.asarray(v) for v in session.run(None, {inputs[0].name: x})]


def _classes(model):
    """Units of the main output (``output`` of a model with AUX heads), or None."""
    from kblocks.lang.conventions import main_output

    try:
        return int(main_output(model).shape[-1])
    except (TypeError, ValueError, IndexError, AttributeError):
        return None


def _model_signature(model, path: Path, fmt: str):
    """What the artifact's signature will be, read from the Keras model (no runtime to load it)."""
    from types import SimpleNamespace

    spec = model.inputs[0]
    outs = model.outputs
    return SimpleNamespace(
        input={"name": getattr(spec, "name", "input"), "dtype": str(spec.dtype),
               "shape": tuple(spec.shape)},
        outputs=[{"name": f"output_{i}", "shape": tuple(o.shape)} for i, o in enumerate(outs)],
        call=f"load {path} with the {fmt} runtime")


def _output_index(name: str):
    tail = name.rsplit("_", 1)[-1]
    return (0, int(tail), name) if tail.isdigit() else (1, 0, name)


def _signature_shape(details) -> tuple:
    shape = details.get("shape_signature", details["shape"])
    return tuple(None if int(d) < 0 else int(d) for d in shape)


def _onnx_shape(shape) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in shape)


# --- the check ---------------------------------------------------------------------------------

def parity_batch(model, n: int = PARITY_BATCH, seed: int = 0) -> np.ndarray:
    """``n`` random float32 images in the model's input convention: pixels 0..255 for a model that
    normalises inside (a ``kblocks_normalize`` layer), values 0..1 for one that takes them as
    given."""
    from kblocks.lang.conventions import normalization

    shape = tuple(32 if d is None else int(d) for d in model.input_shape[1:])
    high = 255.0 if normalization(model) is not None else 1.0
    return np.random.default_rng(seed).uniform(0.0, high, (n, *shape)).astype("float32")


def _compare(want: list, got: list, fmt: str, path: Path):
    if len(want) != len(got):
        raise ExportParityError(f"the {fmt} artifact {path} has {len(got)} outputs, the Keras "
                                f"model {len(want)}; it is kept at {path}")
    worst, sizes = 0.0, []
    for i, (w, g) in enumerate(zip(want, got)):
        if w.shape != g.shape:
            raise ExportParityError(f"output {i} of the {fmt} artifact {path} has shape "
                                    f"{g.shape}, the Keras model's {w.shape}; it is kept at {path}")
        worst = max(worst, float(np.max(np.abs(w.astype(np.float64) - g.astype(np.float64)))))
        sizes.append("x".join(str(d) for d in w.shape))
    scale = max([1.0] + [float(np.max(np.abs(w))) for w in want if w.size])
    return worst, " + ".join(sizes), scale


def export_model(model, path, format: str = "savedmodel", check: bool = True, *,
                 overwrite: bool = False, reads=(), tolerance: float = PARITY_TOLERANCE
                 ) -> ExportReport:
    """Export ``model`` for serving and check the artifact against it.

    Args:
        model: a one-input Keras model (a kblocks model, or any functional Keras model).
        path: a folder for ``"savedmodel"``, a ``.tflite`` / ``.onnx`` file for the others.
        format: ``"savedmodel"`` (TensorFlow, ``tf.saved_model.load(path).serve(x)``),
            ``"tflite"`` (LiteRT, the TFLite converter) or ``"onnx"`` (tf2onnx).
        check: run the model and the artifact on :data:`PARITY_BATCH` images and compare.
        overwrite: replace an existing artifact of the same kind (never anything else).
        reads: files the caller read the model from (never overwritten).
        tolerance: the largest max |diff| accepted, relative to ``max(1, max |output|)``.

    Returns:
        An :class:`ExportReport`: the path, the serving signature and the parity figures.

    Raises:
        KBlocksError: an unknown format, a bad or existing target, a missing package.
        ExportParityError: the artifact differs from the model by more than the tolerance; the
            artifact is kept at ``path``.
    """
    from kblocks.lang.conventions import assumed_note, conventions

    fmt = _check_format(format)
    if len(getattr(model, "inputs", None) or ()) != 1:
        raise KBlocksError("kblocks exports one-input models; this one has "
                           f"{len(getattr(model, 'inputs', None) or ())} inputs")
    target = check_export_target(path, overwrite=overwrite, reads=reads, format=fmt)
    _require(fmt, check)
    # The reference outputs, before the export: Keras' ONNX export also needs a model that has
    # been called once.
    x = parity_batch(model)
    want = _flat(model(x, training=False))
    if fmt == "savedmodel":
        export_saved_model(model, target, overwrite=overwrite, reads=reads)
    else:
        _export_file(model, target, fmt)
    conv = conventions(model)
    try:
        runner = _Runner(target, fmt)
    except ImportError:  # check=False without the format's runtime: the signature from the model
        if check:
            raise
        runner = _model_signature(model, target, fmt)
    report = ExportReport(path=target, format=fmt, params=int(model.count_params()),
                          tolerance=tolerance, note=assumed_note(conv),
                          signature={"input": dict(runner.input, range=conv["input"]),
                                     "outputs": runner.outputs, "output": conv["output"],
                                     "classes": _classes(model), "call": runner.call})
    if not check:
        return report
    report.max_diff, report.compared, report.scale = _compare(want, runner.run(x), fmt, target)
    if not report.passed:
        raise ExportParityError(
            f"{report.parity_line()}: the {fmt} artifact does not compute what the Keras model "
            f"computes; it is kept at {target} for inspection", report=report,
            hint="delete it, or export another format; a larger tolerance= accepts it")
    return report
