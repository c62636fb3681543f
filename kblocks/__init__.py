"""kblocks: architecture strings and YAML blocks compiled to Keras 3 models.

    import kblocks
    model = kblocks.build("[[CONV(64)-RELU]*2-POOL]*2-FC(10)", input_shape=(32, 32, 3))
    print(kblocks.summary(model_or_text, input_shape=(32, 32, 3)))
"""
# Importing kblocks does not import Keras: only building a model (kblocks.lang.emit) does.
from kblocks.lang.api import analyse, build, compile, format_text, parse, summary
from kblocks.common.errors import KBlocksError

__version__ = "0.1.0"

__all__ = ["analyse", "build", "compile", "format_text", "parse", "summary", "KBlocksError"]


def __getattr__(name):
    if name in ("zoo", "SearchSpace"):
        import importlib

        if name == "SearchSpace":
            return importlib.import_module("kblocks.search").SearchSpace
        return importlib.import_module(f"kblocks.{name}")
    raise AttributeError(f"module 'kblocks' has no attribute {name!r}")
