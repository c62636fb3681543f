"""kblocks: architecture strings and YAML blocks compiled to Keras 3 models.

    import kblocks
    model = kblocks.build("[[CONV(64)-RELU]*2-POOL]*2-FC(10)", input_shape=(32, 32, 3))
    print(kblocks.summary(model_or_text, input_shape=(32, 32, 3)))
"""
from kblocks.errors import KBlocksError  # noqa: F401

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing kblocks must not import Keras
    if name in ("build", "summary", "compile", "parse", "format_text", "analyse"):
        from kblocks import api

        return getattr(api, name)
    if name in ("zoo",):
        import importlib

        return importlib.import_module(f"kblocks.{name}")
    raise AttributeError(f"module 'kblocks' has no attribute {name!r}")
