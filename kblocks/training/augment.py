"""Data augmentation as cheap, serialisable Keras layers that work the same on TensorFlow and JAX.

Every layer is the identity at inference (``training`` false or absent) and changes pixels only while
training. They act on whole batches with ``keras.ops`` masking and slicing and draw their randomness
from a seeded ``keras.random.SeedGenerator``, so a JAX ``jit`` compiles them in well under a second
(Keras' own ``RandomFlip``/``RandomTranslation`` were measured to take minutes to compile on JAX).

Tokens for ``--augment`` (comma separated, applied in the order given)::

    flip          mirror left-right with probability 1/2
    crop4         pad 4 pixels by reflection, take a random crop of the original size
    translate4    pad 4 pixels with zeros (the mean after normalisation), random crop
    cutout8       zero a random 8x8 square (it may hang over the border)

Layers are registered under the package name ``kblocks`` so that saved models load with
``keras.saving.load_model(path, safe_mode=True)`` once ``kblocks.training.augment`` is imported (importing
``kblocks.training`` or the command line does that).
"""
from __future__ import annotations

import re

import keras
from keras import ops

from kblocks.common.errors import ConfigError

__all__ = ["RandomFlip", "RandomCrop", "Cutout", "parse_augment", "AUGMENT_TOKENS"]


class _Augment(keras.layers.Layer):
    """Base: float32 compute, identity at inference, one seed generator per layer."""

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.augment(inputs)

    def augment(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@keras.saving.register_keras_serializable(package="kblocks")
class RandomFlip(_Augment):
    """Mirror each image left-right with ``probability``; one ``where`` over the batch."""

    def __init__(self, probability=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = float(probability)

    def augment(self, x):
        batch = ops.shape(x)[0]
        draw = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator)
        return ops.where(draw < self.probability, ops.flip(x, axis=2), x)

    def get_config(self):
        return {**super().get_config(), "probability": self.probability}


@keras.saving.register_keras_serializable(package="kblocks")
class RandomCrop(_Augment):
    """Pad by ``padding`` pixels and crop back to the original size at a random offset per image.

    The offset is drawn per image; the crop is done with ``2 * (2 * padding + 1)`` static slices
    and ``where`` selects (rows, then columns), the airbench way: no gather, no per-image loop.
    ``mode`` is ``"reflect"`` (crop) or ``"constant"`` (translate, zero fill).
    """

    def __init__(self, padding=4, mode="reflect", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.padding = int(padding)
        self.mode = str(mode)
        if self.padding < 0:
            raise ConfigError(f"crop padding must be >= 0, got {self.padding}", what="augment")
        if self.mode not in ("reflect", "constant"):
            raise ConfigError(f"crop mode must be 'reflect' or 'constant', got {self.mode!r}",
                              what="augment")

    def augment(self, x):
        p = self.padding
        if p == 0:
            return x
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ConfigError("random crop needs a fixed image size", what="augment",
                              hint="give the model a fixed input shape (e.g. image_size=64)")
        if self.mode == "reflect" and (p >= height or p >= width):
            raise ConfigError(f"crop padding {p} must be smaller than the image ({height}x{width})",
                              what="augment")
        padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode=self.mode)
        batch = ops.shape(x)[0]
        offsets = keras.random.randint((batch, 2), 0, 2 * p + 1, seed=self.seed_generator)
        dy = ops.reshape(offsets[:, 0], (-1, 1, 1, 1))
        dx = ops.reshape(offsets[:, 1], (-1, 1, 1, 1))
        rows = padded[:, 0:height]
        for s in range(1, 2 * p + 1):
            rows = ops.where(ops.equal(dy, s), padded[:, s:s + height], rows)
        out = rows[:, :, 0:width]
        for s in range(1, 2 * p + 1):
            out = ops.where(ops.equal(dx, s), rows[:, :, s:s + width], out)
        return out

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "mode": self.mode}


@keras.saving.register_keras_serializable(package="kblocks")
class Cutout(_Augment):
    """Zero one ``size`` x ``size`` square per image at a uniformly random centre (DeVries & Taylor).

    The square may hang over the border, as in the paper. Zero is the data mean once the model's
    normalisation layer has run, so place this after it (the trainer does).
    """

    def __init__(self, size=8, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.size = int(size)
        if self.size < 1:
            raise ConfigError(f"cutout size must be >= 1, got {self.size}", what="augment")

    def augment(self, x):
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ConfigError("cutout needs a fixed image size", what="augment")
        batch = ops.shape(x)[0]
        centre = keras.random.randint((batch, 2), 0, max(height, width), seed=self.seed_generator)
        cy = ops.reshape(ops.mod(centre[:, 0], height), (-1, 1, 1, 1))
        cx = ops.reshape(ops.mod(centre[:, 1], width), (-1, 1, 1, 1))
        top = cy - self.size // 2
        left = cx - self.size // 2
        rows = ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1, 1))
        cols = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width, 1))
        inside = ops.logical_and(
            ops.logical_and(rows >= top, rows < top + self.size),
            ops.logical_and(cols >= left, cols < left + self.size),
        )
        return ops.where(inside, ops.zeros_like(x), x)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


AUGMENT_TOKENS = {
    "flip": "mirror left-right with probability 1/2",
    "cropN": "pad N pixels by reflection and crop back at a random offset",
    "translateN": "pad N pixels with zeros and crop back at a random offset",
    "cutoutN": "zero a random NxN square",
}

_TOKEN = re.compile(r"^(flip|crop|translate|cutout)(\d*)$")
MAX_AUGMENT_OPS = 32  #: augmentations in one --augment list (each is a layer of the model)
MAX_AUGMENT_SIZE = 4096  #: N of cropN, translateN, cutoutN (the largest image side)


def parse_augment(spec, *, seed=None):
    """``"flip,crop4,cutout8"`` -> a list of augmentation layers (empty for ``""``/``"none"``).

    Each layer gets its own seed derived from ``seed`` so runs with the same seed draw the same
    augmentations.
    """
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        tokens = [str(t).strip().lower() for t in spec]
    else:
        tokens = [t.strip().lower() for t in str(spec).split(",")]
    tokens = [t for t in tokens if t and t != "none"]
    if len(tokens) > MAX_AUGMENT_OPS:
        raise ConfigError(f"{len(tokens):,} augmentations, over the limit of {MAX_AUGMENT_OPS}",
                          what="augment", hint="each is applied in turn; list each kind once "
                                               "(e.g. flip,crop4,cutout8)")
    layers = []
    for i, token in enumerate(tokens):
        match = _TOKEN.match(token)
        if not match:
            raise ConfigError(
                f"unknown augmentation {token!r}", what="augment",
                hint="use a comma-separated list of " + ", ".join(AUGMENT_TOKENS)
                + " (e.g. flip,crop4,cutout8)")
        kind, number = match.group(1), match.group(2)
        layer_seed = None if seed is None else int(seed) * 1009 + 17 * (i + 1)
        name = f"augment_{i}_{token}"
        if kind == "flip":
            if number:
                raise ConfigError(f"'flip' takes no number, got {token!r}", what="augment")
            layers.append(RandomFlip(seed=layer_seed, name=name))
            continue
        if not number:
            raise ConfigError(f"{kind!r} needs a size, e.g. {kind}4", what="augment")
        if len(number) > 6 or int(number) > MAX_AUGMENT_SIZE:
            raise ConfigError(f"{token[:40]!r}: the size is over the limit of {MAX_AUGMENT_SIZE}",
                              what="augment")
        n = int(number)
        if kind == "crop":
            layers.append(RandomCrop(n, mode="reflect", seed=layer_seed, name=name))
        elif kind == "translate":
            layers.append(RandomCrop(n, mode="constant", seed=layer_seed, name=name))
        else:
            layers.append(Cutout(n, seed=layer_seed, name=name))
    return layers
