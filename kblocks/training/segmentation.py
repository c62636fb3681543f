"""Scores of per-pixel (segmentation) predictions in NumPy: the confusion matrix, IoU per class,
mean IoU and pixel accuracy.

``kblocks evaluate`` scores a saved segmentation model with these; training measures the same
with Keras' own ``keras.metrics.MeanIoU`` (:func:`kblocks.training.trainer.make_pixel_loss`), and
both follow its definition, so the two agree on the same pixels:

    IoU_c = TP_c / (TP_c + FP_c + FN_c)      (a class absent from both truth and prediction
    mean IoU = the mean of IoU_c over the classes whose union is not empty    is left out)
"""
from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "class_iou", "mean_iou", "predicted_classes", "pixel_scores"]


def confusion_matrix(true, predicted, classes: int) -> np.ndarray:
    """``(classes, classes)`` pixel counts: row = true class, column = predicted class."""
    true = np.asarray(true, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    return np.bincount(true * classes + predicted,
                       minlength=classes * classes).reshape(classes, classes)


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class (NaN for a class absent from both the truth and the prediction)."""
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / np.where(union > 0, union, 1), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """The mean of :func:`class_iou` over the classes present (as ``keras.metrics.MeanIoU``)."""
    iou = class_iou(confusion)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else 0.0


def predicted_classes(outputs, probabilities: bool) -> np.ndarray:
    """``(N, H, W)`` classes of per-pixel outputs ``(N, H, W, C)``: the argmax, or for one
    channel the pixels whose probability (sigmoid of a logit) is over 0.5."""
    outputs = np.asarray(outputs)
    if outputs.shape[-1] == 1:
        threshold = 0.5 if probabilities else 0.0
        return (outputs[..., 0] > threshold).astype(np.int64)
    return outputs.argmax(-1)


def pixel_scores(outputs, true, probabilities: bool, classes: int) -> dict:
    """``{"loss", "accuracy", "mean_iou", "class_iou", "confusion"}`` of per-pixel outputs
    against masks ``true`` ``(N, H, W)``; the loss is the mean per-pixel cross-entropy."""
    outputs = np.asarray(outputs, np.float64)
    true = np.asarray(true, np.int64)
    if outputs.shape[-1] == 1:
        p = outputs[..., 0] if probabilities else 1.0 / (1.0 + np.exp(-outputs[..., 0]))
        p = np.clip(p, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(np.where(true == 1, np.log(p), np.log(1 - p))))
        classes = max(int(classes), 2)
    else:
        if probabilities:
            probs = outputs
        else:
            shifted = outputs - outputs.max(-1, keepdims=True)
            probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        picked = np.take_along_axis(probs, true[..., None], axis=-1)[..., 0]
        loss = float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
    predicted = predicted_classes(outputs, probabilities)
    confusion = confusion_matrix(true, predicted, int(classes))
    return {"loss": loss, "accuracy": float(np.mean(predicted == true)),
            "mean_iou": mean_iou(confusion), "class_iou": class_iou(confusion),
            "confusion": confusion}
