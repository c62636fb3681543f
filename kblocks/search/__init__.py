"""Mini-NAS: search spaces written in the architecture language, searched with Keras Tuner.

    space = kblocks.SearchSpace(text, blocks="kblocks/search/spaces/blocks.yaml", classes=10, input_shape=(32, 32, 3))
    space.hyperparameters()                 # names, kinds, ranges, conditions
    tuner = space.tuner("bayesian", objective="val_accuracy", max_trials=30,
                        directory="runs", project_name="nas")
    best_text = space.fixed(tuner.get_best_hyperparameters()[0])
    hypermodel = space.hypermodel()         # a keras_tuner.HyperModel for your own tuner

The command line (``kblocks search``, ``kblocks report``) adds budgets, resume, distribution and
the report; docs/search.md describes all of it.
"""
from kblocks.search.space import SearchSpace

__all__ = ["HyperModel", "SearchSpace"]


def __getattr__(name):
    if name == "HyperModel":  # imports keras_tuner (and Keras): only when asked for
        from kblocks.search.hypermodel import HyperModel

        return HyperModel
    raise AttributeError(f"module 'kblocks.search' has no attribute {name!r}")
