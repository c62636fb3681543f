"""kblocks: architecture strings and YAML blocks compiled to Keras 3 models.

    import kblocks
    model = kblocks.build("[[CONV(64)-RELU]*2-POOL]*2-FC(10)", input_shape=(32, 32, 3))
    print(kblocks.summary(model_or_text, input_shape=(32, 32, 3)))
"""
# Importing kblocks does not import Keras: only building a model (kblocks.lang.emit) does.
from kblocks.lang.api import analyse, build, compile, format_text, parse
from kblocks.lang.api import summary as _text_summary
from kblocks.common.errors import KBlocksError

__version__ = "0.1.0"


def _register_with_keras():
    """Make ``keras.saving.load_model(path, safe_mode=True)`` find kblocks' classes after
    ``import kblocks``, without importing Keras here: at once if Keras is already imported,
    otherwise right after Keras is first imported (a one-shot import hook)."""
    import sys

    def register():
        try:
            import kblocks.lang.layers  # the language's custom layers
            import kblocks.lang.models  # noqa: F401 - registers kblocks>Network
        except Exception:  # noqa: BLE001 - a broken Keras install shows itself at the first build
            pass

    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        register()
        return
    import importlib.abc
    import importlib.util

    class _AfterKeras(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname != "keras":
                return None
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            spec = importlib.util.find_spec("keras")
            loader = getattr(spec, "loader", None)
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            run = loader.exec_module

            def exec_module(module):
                run(module)
                register()

            loader.exec_module = exec_module
            return spec

    if not any(type(f).__name__ == "_AfterKeras" for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())


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

__all__ = ["analyse", "build", "compile", "format_text", "parse", "summary", "KBlocksError"]


def __getattr__(name):
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
