"""Which class a picture is about: class probabilities, the predicted class, ``--class`` by name.

Every class-specific picture (saliency, CAM, Grad-CAM, occlusion, FGSM) explains one class.
By default that is the class the model predicts for the image; ``--class`` picks another, by
index or by name (names from ``--class-names a,b,c``, from the data set, or those ``kblocks train``
records in ``run.json`` beside the saved model, when present).

Reference: "class score" and "class probability" as in K. Simonyan, A. Vedaldi and A. Zisserman,
"Deep Inside Convolutional Networks: Visualising Image Classification Models and Saliency Maps",
ICLR workshop 2014 (arXiv:1312.6034), section 2.
"""
from __future__ import annotations

import json
import os

import numpy as np

from kblocks.common.errors import KBlocksError
from kblocks.inspect.inputs import as_batch
from kblocks.inspect.layers import logits_model, num_classes, predict, to_probabilities

__all__ = ["class_probabilities", "predicted_class", "resolve_class", "parse_class_names",
           "stored_class_names", "check_class_index"]


def class_probabilities(model, images) -> np.ndarray:
    """Softmax probabilities ``(N, classes)`` for images ``(N, H, W, C)`` (or one ``(H, W, C)``)."""
    scores_model, applies_softmax = logits_model(model)
    scores = predict(scores_model, as_batch(images))
    return to_probabilities(scores, applies_softmax).astype("float32")


def predicted_class(model, image) -> int:
    return int(np.argmax(class_probabilities(model, image)[0]))


def check_class_index(index, n_classes: int, option: str = "--class") -> int:
    index = int(index)
    if not 0 <= index < n_classes:
        raise KBlocksError(f"{option} {index} is out of range: the model has {n_classes} classes "
                           f"(0..{n_classes - 1})")
    return index


def parse_class_names(text: str | None) -> list[str] | None:
    """``"cat,dog, bird"`` -> ``["cat", "dog", "bird"]``; ``None``/empty -> ``None``."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise KBlocksError(f"--class-names {text!r} has an empty name",
                           hint="give names separated by commas, e.g. --class-names cat,dog,bird")
    return names


def stored_class_names(model_path) -> list[str] | None:
    """Class names recorded by ``kblocks train`` beside the model, if any.

    A run folder holds ``best.keras``/``last.keras`` and ``run.json``, whose
    ``data.train.class_names`` lists the training classes (the first 50).
    """
    if not model_path:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(model_path))), "run.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        names = record["data"]["train"]["class_names"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return names
    return None


def resolve_class(spec, model, class_names: list[str] | None = None) -> int | None:
    """``--class``: ``None`` (use the predicted class), an index, or a name from ``class_names``."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    n = num_classes(model)
    if class_names is not None and len(class_names) != n:
        raise KBlocksError(f"--class-names gives {len(class_names)} names but the model has {n} classes",
                           hint="give one name per output of the model, in order")
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        return check_class_index(int(text), n)
    if class_names:
        lowered = [name.lower() for name in class_names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        raise KBlocksError(f"--class {text!r} is not one of the class names",
                           hint="names are: " + ", ".join(class_names))
    raise KBlocksError(f"--class {text!r} is a name, but no class names are known for this model",
                       hint="give an index (0..%d) or the names with --class-names a,b,c" % (n - 1))


def class_score_gradient(model, image, class_index=None, *, target=None, name: str = ""):
    """The gradient of one class's score (before any softmax) for one image.

    Args:
        model: a Keras model or :class:`~kblocks.inspect.layers.ModelView`.
        image: a path or an array of 0..255 pixels (resized and adapted to the model's input).
        class_index: the class; default: the predicted one.
        target: the tensor to differentiate with respect to (default: the input pixels).
        name: the target's name, for error messages.

    Returns:
        ``(class_index, Gradient)`` (:class:`kblocks.inspect.gradients.Gradient`).
    """
    from kblocks.inspect.gradients import gradient
    from kblocks.inspect.inputs import prepare_image
    from kblocks.inspect.layers import input_shape

    h, w, c = input_shape(model)
    x = as_batch(prepare_image(image, (h, w), c))
    if class_index is None:
        class_index = predicted_class(model, x)
    class_index = check_class_index(class_index, num_classes(model))
    scores_model, _ = logits_model(model)
    return class_index, gradient(scores_model, x, lambda out: out[:, class_index], target=target,
                                 name=name)
