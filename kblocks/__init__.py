"""kblocks: architecture strings and YAML blocks compiled to Keras 3 models.

    import kblocks
    model = kblocks.build("[[CONV(64)-RELU]*2-POOL]*2-FC(10)", input_shape=(32, 32, 3))
    print(kblocks.summary(model_or_text, input_shape=(32, 32, 3)))
    body = kblocks.layer("[CONV(32)-RELU]*2-GAP-FC", classes=10)   # a Keras layer for your model
"""
# Importing kblocks does not import Keras: only building a model (kblocks.lang.emit) does.
from kblocks.lang.api import analyse, build, compile, format_text, parse
from kblocks.lang.api import summary as _text_summary
from kblocks.common.errors import KBlocksError
from kblocks.lang.lint import KBlocksWarning

__version__ = "0.1.0"


#: The modules whose classes files written by kblocks refer to (each registers its classes with
#: Keras' serialization under the package name ``kblocks``): imported once Keras is.
KERAS_MODULES = ("kblocks.lang.layers", "kblocks.lang.models", "kblocks.lang.compose",
                 "kblocks.training.augment")


def _register_with_keras():  # one function (76 lines): the hook's parts share its state
    """Make ``keras.saving.load_model(path, safe_mode=True)`` find kblocks' classes after
    ``import kblocks``, without importing Keras here: at once if Keras is already imported,
    otherwise right after Keras is first imported (an import hook).

    When Keras is first imported from inside a kblocks module (``kblocks.build`` imports it), the
    modules that need that one wait until it is done: the hook stays and tries again after each
    later import of a kblocks module. The hook also turns a missing backend (``import keras``
    without TensorFlow, or ``KERAS_BACKEND=jax`` without JAX) into a one-line
    :class:`~kblocks.common.errors.BackendError` that says what to install."""
    import importlib
    import importlib.abc
    import importlib.util
    import sys

    pending = list(KERAS_MODULES)

    def busy(done):  # a kblocks module (other than ``done``) is still running its own imports
        return any(getattr(getattr(m, "__spec__", None), "_initializing", False)
                   for n, m in list(sys.modules.items()) if n.startswith("kblocks.") and n != done)

    running = []

    def register(done=None):
        if running or busy(done):  # not from inside itself, nor while a kblocks import runs
            return
        running.append(True)
        try:
            for name in list(pending):
                try:
                    importlib.import_module(name)
                except ImportError:  # e.g. Keras imported by a module this one needs: tried again
                    continue
                except Exception:  # noqa: BLE001 - a broken install shows itself at the first build
                    pass
                pending.remove(name)
        finally:
            running.clear()
        if not pending and finder in sys.meta_path:
            sys.meta_path.remove(finder)

    class _AfterKeras(importlib.abc.MetaPathFinder):
        searching = False

        def find_spec(self, fullname, path=None, target=None):
            if self.searching or not (fullname == "keras" or fullname.startswith("kblocks.")
                                      and "keras" in sys.modules):
                return None
            self.searching = True
            try:
                spec = importlib.util.find_spec(fullname)
            finally:
                self.searching = False
            loader = getattr(spec, "loader", None)
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            run = loader.exec_module

            def exec_module(module):
                try:
                    run(module)
                except (ImportError, ValueError) as err:
                    if fullname != "keras":
                        raise
                    from kblocks.common.errors import backend_error

                    missing = backend_error(err)
                    if missing is None:
                        raise
                    raise missing from None
                finally:
                    loader.exec_module = run
                register(fullname)

            loader.exec_module = exec_module
            return spec

    finder = _AfterKeras()
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        register()
        if not pending:
            return
    if not any(type(f).__name__ == "_AfterKeras" for f in sys.meta_path):
        sys.meta_path.insert(0, finder)


_register_with_keras()


def summary(model_or_source, **kwargs):
    """The per-layer summary (shapes, parameters, activation memory, multiply-adds, receptive
    field) of a text, YAML file or zoo name, or of any built Keras model.

    A model kblocks built (in this process, or loaded from a ``.keras`` file kblocks wrote, which
    keeps the architecture text) gets the kblocks summary, with the text of each layer; any other
    Keras model (functional, Sequential, ``keras.applications``) is read layer by layer
    (:func:`kblocks.inspect.model_summary.model_summary`).

    Args:
        model_or_source: a Keras model, or any source :func:`kblocks.compile` takes.
        **kwargs: passed to :func:`kblocks.compile` when a source is given.

    Returns:
        A :class:`~kblocks.lang.table.Summary`: ``str()`` is the table, its fields the numbers.

    Raises:
        KBlocksError: as :func:`kblocks.compile` raises, or a model that is not built.
    """
    if hasattr(model_or_source, "layers") and getattr(model_or_source, "_kblocks_graph", None) is None:
        text = getattr(model_or_source, "kblocks_text", None)  # a Network loaded from a file
        graph = None
        if text:
            try:
                graph = compile(text)
            except KBlocksError:  # a text this version no longer compiles: read the layers
                graph = None
        if graph is None:
            from kblocks.inspect.model_summary import model_summary

            return model_summary(model_or_source)
        model_or_source._kblocks_graph = graph
    return _text_summary(model_or_source, **kwargs)

__all__ = ["analyse", "build", "compile", "format_text", "layer", "parse", "summary", "KBlocksError",
           "KBlocksWarning"]


def __getattr__(name):
    if name == "layer":  # imports Keras: only when asked
        from kblocks.lang.compose import layer

        return layer
    if name == "Network":
        from kblocks.lang.models import Network

        return Network
    if name == "train":  # imports the trainer (NumPy, and Keras when it runs): only when asked
        from kblocks.training import train

        return train
    if name == "normalization_layer":
        from kblocks.lang.conventions import normalization_layer

        return normalization_layer
    if name in ("zoo", "SearchSpace"):
        import importlib

        if name == "SearchSpace":
            return importlib.import_module("kblocks.search").SearchSpace
        return importlib.import_module(f"kblocks.{name}")
    raise AttributeError(f"module 'kblocks' has no attribute {name!r}")
