"""Pictures and small sample sets to feed a trained model, the way kblocks models take them.

kblocks models take raw pixel values 0..255 as float32, ``(batch, height, width, channels)``;
any normalisation is a layer inside the trained model. So an image is read with Pillow, resized
to the model's input size (bilinear), its channels adapted (grey <-> RGB), and *not* rescaled.

``load_samples`` is a deliberately small loader for the t-SNE picture (``--data``):
``digits`` (scikit-learn's 8x8 handwritten digits, 0..16 scaled to 0..255) and ``cifar10:PATH``
(the npz container of JPEG bytes: keys ``jpeg``, ``offsets``, ``labels``, ``classes``).
TODO(merge): once ``kblocks.training.data`` (the general loader) lands, replace ``load_samples`` by it; it
is kept here so that this feature does not depend on that module while both are written.

Reference: the preprocessing convention follows the Keras applications ("inputs are pixels in
0..255; preprocessing is part of the model"), e.g. ``keras.applications.EfficientNetB0``.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from kblocks.common.errors import DataError, KBlocksError

__all__ = ["load_image", "prepare_image", "as_batch", "Samples"]


def _pil():
    from PIL import Image

    return Image


def prepare_image(image, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """An ``(H, W, C)`` float32 0..255 array of the model's input size and channel count.

    ``image``: a path, a Pillow image, or an array ``(H, W)``, ``(H, W, C)`` or ``(1, H, W, C)``
    already on the 0..255 scale. ``size`` is ``(height, width)``; ``None`` keeps the size.
    """
    Image = _pil()
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, size, channels)
    if isinstance(image, Image.Image):
        pil = image
    else:
        arr = np.asarray(image, dtype="float32")
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise KBlocksError(f"an image must be (height, width) or (height, width, channels), "
                               f"got shape {np.asarray(image).shape}")
        if size is not None and tuple(arr.shape[:2]) != tuple(size):
            bands = [Image.fromarray(np.ascontiguousarray(arr[:, :, c]), mode="F")
                     .resize((size[1], size[0]), Image.BILINEAR) for c in range(arr.shape[2])]
            arr = np.stack([np.asarray(b, dtype="float32") for b in bands], axis=-1)
        return _adapt_channels(arr, channels)
    if size is not None and (pil.height, pil.width) != tuple(size):
        pil = pil.resize((size[1], size[0]), Image.BILINEAR)
    if channels == 1:
        pil = pil.convert("L")
    elif pil.mode != "L":
        pil = pil.convert("RGB")
    arr = np.asarray(pil, dtype="float32")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return _adapt_channels(arr, channels)


def _adapt_channels(arr: np.ndarray, channels: int | None) -> np.ndarray:
    have = arr.shape[-1]
    if channels is None or have == channels:
        return arr.astype("float32")
    if channels == 1 and have in (3, 4):  # ITU-R 601-2 luma, as Pillow's convert("L")
        grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        return grey[..., None].astype("float32")
    if channels == 3 and have == 1:
        return np.repeat(arr, 3, axis=-1).astype("float32")
    if channels == 3 and have == 4:
        return arr[..., :3].astype("float32")
    raise KBlocksError(f"the model takes {channels} channels and the image has {have}; only grey (1) "
                       "and RGB (3) images can be adapted")


def load_image(path, size: tuple[int, int] | None = None, channels: int | None = None) -> np.ndarray:
    """Read a PNG/JPEG (Pillow) as ``(H, W, C)`` float32 0..255, resized and channel-adapted."""
    Image = _pil()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise KBlocksError(f"--image: file not found: {path}", hint="give the path of a PNG or JPEG file")
    try:
        with Image.open(path) as img:
            img.load()
            pil = img.copy()
    except (OSError, SyntaxError) as err:
        raise KBlocksError(f"--image: cannot read {path} as an image ({err})",
                           hint="give a PNG or JPEG file") from None
    return prepare_image(pil, size, channels)


def as_batch(image) -> np.ndarray:
    """``(H, W, C)`` -> ``(1, H, W, C)`` float32; a batch is returned as is."""
    arr = np.asarray(image, dtype="float32")
    return arr if arr.ndim == 4 else arr[None]


@dataclass
class Samples:
    """Images ``x`` (N, H, W, C) uint8, integer labels ``y`` (N,) and the class names."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]


def _subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def load_samples(spec: str, n: int | None = None, seed: int = 0) -> Samples:
    """A small, random (seeded) subset of a data set, as uint8 images and labels.

    ``spec``: ``digits`` or ``cifar10:PATH`` (PATH: the npz of JPEG bytes). Only the chosen
    images are decoded. Only the chosen images are decoded; see the module docstring.
    """
    spec = str(spec).strip()
    if spec == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        idx = _subset(len(digits.target), n, seed)
        x = np.clip(np.round(digits.images[idx] * (255.0 / 16.0)), 0, 255).astype("uint8")[..., None]
        return Samples(x=x, y=digits.target[idx].astype("int64"), classes=[str(i) for i in range(10)])
    if spec.startswith("cifar10:"):
        path = spec.split(":", 1)[1]
        if not path:
            raise DataError("--data cifar10:PATH needs the path of the npz file",
                            hint="e.g. --data cifar10:../shared/data/cifar10/train.npz")
        if not os.path.exists(path):
            raise DataError(f"--data: file not found: {path}",
                            hint="give the CIFAR-10 npz container, e.g. ../shared/data/cifar10/train.npz")
        Image = _pil()
        try:
            with np.load(path, allow_pickle=False) as d:
                jpeg, offsets, labels = d["jpeg"], d["offsets"], d["labels"]
                classes = [str(c) for c in d["classes"]] if "classes" in d.files else None
        except KeyError as err:
            raise DataError(f"--data: {path} lacks the key {err}; expected jpeg, offsets, labels, classes") from None
        except (OSError, ValueError) as err:
            raise DataError(f"--data: cannot read {path} as an npz file ({err})") from None
        idx = _subset(len(offsets) - 1, n, seed)
        x = np.stack([
            np.asarray(Image.open(io.BytesIO(jpeg[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
            for i in idx])
        y = np.asarray(labels)[idx].astype("int64")
        if classes is None:
            classes = [str(i) for i in range(int(y.max()) + 1)]
        return Samples(x=x, y=y, classes=classes)
    raise DataError(f"--data {spec!r} is not a known data source",
                    hint="use --data digits or --data cifar10:PATH (the npz of JPEG bytes)")
