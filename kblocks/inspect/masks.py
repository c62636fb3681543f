"""Predicted segmentation masks beside the true ones: ``kblocks inspect MODEL --method masks``.

    masks = predicted_masks(model, images)          # (N, H, W) class per pixel
    rgb   = colour_masks(masks)                     # (N, H, W, 3) uint8, the fixed colour map
    plot_masks(images, true, masks, "masks.png", class_names=["background", "circle", ...])

The colour of a class is fixed (:data:`MASK_COLOURS`, class 0 black: the background of most
data sets), so pictures of different models and runs compare at a glance.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MASK_COLOURS", "MASKS_FIGURE_WIDTH", "predicted_masks", "colour_masks", "plot_masks"]

#: RGB of class 0, 1, 2, ... (then repeated): black, then the ten colours of matplotlib's tab10
MASK_COLOURS = np.array([
    (0, 0, 0), (214, 39, 40), (44, 160, 44), (31, 119, 180), (255, 127, 14), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], np.uint8)
#: the picture's width in inches (at plotting.DPI); each sample row adds 2.6 inches of height
MASKS_FIGURE_WIDTH = 8.0


def predicted_masks(model, images, batch_size: int = 64) -> np.ndarray:
    """``(N, H, W)`` classes a per-pixel model predicts for ``images`` (0..255 pixels): the
    argmax over the channels, or for one channel the pixels over probability 0.5."""
    from keras import ops

    from kblocks.common.errors import KBlocksError
    from kblocks.inspect.layers import ModelView
    from kblocks.lang.conventions import output_is_probability

    model = model.model if isinstance(model, ModelView) else model
    if len(model.outputs[0].shape) != 4:
        raise KBlocksError(f"--method masks needs a per-pixel model (output (H, W, classes)); "
                           f"{model.name} outputs {tuple(model.outputs[0].shape[1:])}",
                           hint="use a segmentation model such as one trained from unet_small")
    outputs = ops.convert_to_numpy(model.predict(np.asarray(images, "float32"),
                                                 batch_size=int(batch_size), verbose=0))
    if outputs.shape[-1] == 1:
        threshold = 0.5 if output_is_probability(model) else 0.0
        return (outputs[..., 0] > threshold).astype(np.int64)
    return outputs.argmax(-1).astype(np.int64)


def colour_masks(masks) -> np.ndarray:
    """Masks ``(..., H, W)`` of class indices as RGB ``(..., H, W, 3)`` in :data:`MASK_COLOURS`."""
    masks = np.asarray(masks, np.int64)
    return MASK_COLOURS[masks % len(MASK_COLOURS)]


def _sample_iou(true, predicted) -> float:
    """Mean IoU of one sample over the classes in its truth or prediction."""
    scores = []
    for c in np.union1d(np.unique(true), np.unique(predicted)):
        inter = np.sum((true == c) & (predicted == c))
        union = np.sum((true == c) | (predicted == c))
        scores.append(inter / union)
    return float(np.mean(scores)) if scores else 1.0


def plot_masks(images, true, predicted, path, *, class_names=None, title: str = "") -> str:
    """A grid, one row per sample: image | true mask | predicted mask (each row titled with
    its mean IoU), a legend of the class colours; written as PNG to ``path``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from kblocks.inspect.plotting import DPI, save_figure

    images, true, predicted = np.asarray(images), np.asarray(true), np.asarray(predicted)
    rows = len(images)
    fig = Figure(figsize=(MASKS_FIGURE_WIDTH, 0.8 + 2.6 * rows), dpi=DPI)
    axes = fig.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        image = images[i]
        if image.ndim == 3 and image.shape[-1] == 1:
            axes[i, 0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=255,
                              interpolation="nearest")
        else:
            axes[i, 0].imshow(np.clip(image.astype("float32") / 255.0, 0, 1),
                              interpolation="nearest")
        axes[i, 1].imshow(colour_masks(true[i]), interpolation="nearest")
        axes[i, 2].imshow(colour_masks(predicted[i]), interpolation="nearest")
        for ax, name in zip(axes[i], ("image", "true mask",
                                      f"predicted (IoU {_sample_iou(true[i], predicted[i]):.2f})")):
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    present = np.union1d(np.unique(true), np.unique(predicted)).astype(int)
    names = list(class_names or [])
    handles = [Patch(color=colour_masks(c) / 255.0,
                     label=names[c] if c < len(names) else str(c)) for c in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.6 / (0.8 + 2.6 * rows), 1, 1 - 0.3 / (0.8 + 2.6 * rows)))
    return save_figure(fig, path)
