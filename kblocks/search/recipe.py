"""How each trial of a search trains: the trainer's recipe (``kblocks train``), applied per trial.

A :class:`TrialRecipe` holds a :class:`kblocks.training.TrainConfig` (optimiser, schedule,
augmentation, normalisation, precision, batch size, epochs) and what the training split fixes for
the whole search (input shape, classes, per-channel mean and variance, number of images). Every
trial model is the trainer's ``input -> normalisation -> augmentation -> network``, compiled with
the trainer's loss, optimiser and schedule, so ``kblocks train best.yaml`` with the same options
repeats a trial's training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from kblocks.common.errors import ConfigError


@dataclass
class TrialRecipe:
    """The training recipe of every trial (see the module doc)."""

    config: object  # kblocks.training.TrainConfig
    input_shape: tuple
    classes: int
    mean: list | None = None  # per channel, for normalize="standardize"
    variance: list | None = None
    train_size: int | None = None  # images per epoch (sets the schedule's length)
    seed: int = 0
    verbose: int = 0  # model.fit verbosity inside a trial
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_data(cls, config, x, y=None, *, classes=None, seed=0, verbose=0) -> "TrialRecipe":
        """A recipe whose statistics come from the training images ``x`` (uint8 or float)."""
        from kblocks.training import channel_stats

        x = np.asarray(x)
        if classes is None:
            if y is None:
                raise ConfigError("give classes= or the labels y", what="classes")
            classes = int(np.max(y)) + 1
        mean = var = None
        if config.normalize == "standardize":
            mean, var = channel_stats(x if x.ndim == 4 else x[..., None])
            mean, var = [float(v) for v in mean], [float(v) for v in var]
        shape = tuple(int(d) for d in x.shape[1:]) if x.ndim == 4 else tuple(x.shape[1:]) + (1,)
        return cls(config, shape, int(classes), mean, var, len(x), int(seed), int(verbose))

    @property
    def needs_statistics(self) -> bool:
        """Standardisation without the training images' statistics yet."""
        return self.config.normalize == "standardize" and self.mean is None

    def with_statistics(self, x) -> "TrialRecipe":
        """A copy whose mean, variance and epoch length come from the training images ``x``."""
        from dataclasses import replace

        other = TrialRecipe.for_data(self.config, x, classes=self.classes, seed=self.seed)
        return replace(self, mean=other.mean, variance=other.variance, train_size=len(x))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out

    @property
    def precision(self) -> str:
        from kblocks.training import resolve_precision

        return resolve_precision(self.config.precision)

    def network(self, space, values):
        """The trial's network, built under the recipe's precision policy."""
        import keras

        from kblocks.training import PRECISIONS, main_output

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(PRECISIONS[self.precision])
        try:
            return main_output(space.build(values))
        finally:
            keras.config.set_dtype_policy(previous)

    def steps_per_epoch(self, train_size=None, kind="host") -> int:
        from kblocks.training import feed

        size = train_size or self.train_size or self.config.batch_size
        return feed.steps_per_epoch(kind, size, int(self.config.batch_size))

    def wrap(self, network):
        """``input -> normalisation -> augmentation -> network`` (uncompiled)."""
        from kblocks.training.augment import parse_augment
        from kblocks.training import wrap

        cfg = self.config
        mean, variance = self.mean, self.variance
        if self.needs_statistics:  # until the data is seen (SpaceHyperModel.fit rebuilds)
            channels = self.input_shape[-1]
            mean, variance = [0.0] * channels, [1.0] * channels
        augment = parse_augment(cfg.augment, seed=self.seed)
        return wrap(network, self.input_shape, mean=mean, variance=variance,
                    normalize=cfg.normalize, augment=augment)

    def compile(self, model, network, *, epochs: int, train_size=None):
        """Compile ``model`` (the wrapped ``network``) with the trainer's loss, optimiser and
        schedule (:func:`kblocks.training.compile_for_training`), the schedule spanning
        ``epochs`` epochs of the recipe's feed."""
        from kblocks.training import compile_for_training

        epochs = max(1, int(epochs))
        plan = self.feed(train_size)
        compile_for_training(
            model, network, self.config, precision=self.precision,
            steps_per_epoch=self.steps_per_epoch(train_size, plan.kind), epochs=epochs,
            warmup=min(self.config.warmup, max(0, epochs - 1)),
            steps_per_execution=plan.steps_per_execution)
        model._kblocks_schedule = (train_size or self.train_size, epochs)
        return model

    def feed(self, train_size=None):
        """The :class:`kblocks.training.feed.Feed` a trial trains through (``config.feed``)."""
        from kblocks.training import feed

        size = int(train_size or self.train_size or self.config.batch_size)
        nbytes = size * int(np.prod(self.input_shape))  # uint8 images
        return feed.choose(self.config.feed, nbytes=nbytes, batch_size=int(self.config.batch_size),
                           train_size=size, distributed=False,
                           steps_per_execution=self.config.steps_per_execution)

    @property
    def one_hot(self) -> bool:
        """Whether labels must be one-hot (label smoothing needs them)."""
        return bool(self.config.label_smoothing)
