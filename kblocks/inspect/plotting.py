"""Pictures of what is inside a CNN: PNG grids, heat maps over images, scatter plots, bar charts.

Matplotlib with the non-interactive Agg canvas (no display needed). Every figure has a fixed size
in pixels (``FIGSIZE[kind]`` inches times ``DPI``), so a picture's size does not depend on the
model; grids are drawn as one mosaic image (fast for hundreds of tiles). Files are written
atomically: to a temporary name in the target folder, then ``os.replace``.

Reference: the figure styles follow the CS231n lecture "Visualizing and Understanding" (2017):
filter mosaics, activation grids, heat maps blended over the input image (as in Zhou et al. 2016
and Selvaraju et al. 2017), t-SNE scatter coloured by class.
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["DPI", "FIGSIZE", "HEATMAP_CMAP", "figure_pixels", "mosaic", "save_figure",
           "heatmap_figure", "plot_heatmap",
           "plot_feature_maps", "plot_filters", "plot_embedding", "plot_fgsm"]

DPI = 100
#: the colour map of every heat map panel and overlay: hot (red) = important, cold (blue) = not
HEATMAP_CMAP = "jet"
FIGSIZE = {  # inches; pixels = inches * DPI
    "heatmap": (12.0, 4.4),
    "grid": (9.0, 8.0),
    "embedding": (9.0, 7.5),
    "fgsm": (12.0, 7.0),
}


def figure_pixels(kind: str) -> tuple[int, int]:
    """``(width, height)`` in pixels of the PNG for a figure kind (as Pillow reports ``.size``)."""
    w, h = FIGSIZE[kind]
    return int(round(w * DPI)), int(round(h * DPI))


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _new_figure(kind: str):
    from matplotlib.figure import Figure

    return Figure(figsize=FIGSIZE[kind], dpi=DPI)


def save_figure(fig, path) -> str:
    """Write ``fig`` as PNG to ``path`` atomically; returns the path."""
    from kblocks.common.atomic import atomic_path

    path = os.fspath(path)
    with atomic_path(path, suffix=".tmp") as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
    return path


def mosaic(tiles: np.ndarray, cols: int | None = None, pad: int = 1, pad_value=np.nan) -> np.ndarray:
    """Tiles ``(N, h, w)`` or ``(N, h, w, c)`` laid out row-major in one array, ``pad`` apart."""
    tiles = np.asarray(tiles, dtype="float32")
    n, h, w = tiles.shape[:3]
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    shape = (rows * (h + pad) - pad, cols * (w + pad) - pad) + tiles.shape[3:]
    out = np.full(shape, pad_value, dtype="float32")
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tiles[i]
    return out


def _show_image(ax, image):
    image = np.asarray(image, dtype="float32")
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(np.clip(image / 255.0, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grey(image) -> np.ndarray:
    image = np.asarray(image, dtype="float32")
    return image[..., 0] if image.shape[-1] == 1 else image.mean(axis=-1)


def _normalise(heat) -> np.ndarray:
    heat = np.asarray(heat, dtype="float32")
    lo, hi = float(np.nanmin(heat)), float(np.nanmax(heat))
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def heatmap_figure(image, heat, *, title: str, label: str = "", cmap: str = HEATMAP_CMAP,
                   overlay=None, alpha: float = 0.5, colorbar_label: str | None = None):
    """The :func:`plot_heatmap` figure (a matplotlib ``Figure``, not saved).

    Both map panels use the one colour map ``cmap`` with the same meaning (hot = what the method
    calls important), and each has a labelled colour bar: ``colorbar_label`` (default ``label``)
    on the map, the same words with "scaled 0..1" on the overlay.
    """
    fig = _new_figure("heatmap")
    axes = fig.subplots(1, 3)
    _show_image(axes[0], image)
    axes[0].set_title("input")
    im = axes[1].imshow(heat, cmap=cmap, interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title(label or "map")
    words = colorbar_label or label or "map"
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label=words)
    axes[2].imshow(_grey(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    blend = _normalise(heat if overlay is None else overlay)
    im2 = axes[2].imshow(blend, cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    axes[2].set_title("overlay (scaled 0..1)")
    fig.colorbar(im2, ax=axes[2], fraction=0.046, pad=0.04, label=f"{words}, scaled 0..1")
    fig.suptitle(title)
    return fig


def plot_heatmap(image, heat, path, *, title: str, label: str = "", cmap: str = HEATMAP_CMAP,
                 overlay=None, alpha: float = 0.5, colorbar_label: str | None = None) -> str:
    """Three panels: the input, the heat map with a colour bar, the heat map blended over the input
    (:func:`heatmap_figure`), written as PNG to ``path``.

    ``overlay``: the map to blend (default ``heat``), min-max scaled to 0..1; it must mean what
    ``heat`` means (hot = important), so both panels read the same way.
    """
    return save_figure(heatmap_figure(image, heat, title=title, label=label, cmap=cmap,
                                      overlay=overlay, alpha=alpha, colorbar_label=colorbar_label),
                       path)


def plot_feature_maps(maps, path, *, title: str, max_maps: int = 64) -> str:
    """Channels of ``maps`` ``(h, w, C)`` as a row-major mosaic on one shared colour scale."""
    maps = np.asarray(maps, dtype="float32")
    shown = min(maps.shape[-1], max_maps)
    tiles = np.moveaxis(maps[..., :shown], -1, 0)
    fig = _new_figure("grid")
    ax = fig.subplots()
    plt = _plt()
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    im = ax.imshow(mosaic(tiles), cmap=cmap, interpolation="nearest",
                   vmin=float(maps.min()), vmax=float(maps.max()) if maps.max() > maps.min() else None)
    ax.set_xticks([])
    ax.set_yticks([])
    extra = f" (first {shown} of {maps.shape[-1]} channels)" if shown < maps.shape[-1] else ""
    ax.set_title(f"{title}{extra}\nchannels in row-major order, {maps.shape[0]}x{maps.shape[1]} each")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="activation")
    return save_figure(fig, path)


def plot_filters(tiles, path, *, title: str, max_filters: int = 64, max_channels: int = 16) -> str:
    """Filters ``(N, kh, kw, cin)`` in 0..1: RGB/grey tiles for ``cin`` 1 or 3, else one grey tile
    per (filter, input channel): rows are filters, columns input channels."""
    tiles = np.asarray(tiles, dtype="float32")
    n, kh, kw, cin = tiles.shape
    fig = _new_figure("grid")
    ax = fig.subplots()
    plt = _plt()
    if cin in (1, 3):
        shown = min(n, max_filters)
        pad_value = 1.0
        if cin == 1:
            cmap = plt.get_cmap("gray").with_extremes(bad="white")
            image = mosaic(tiles[:shown, ..., 0], pad_value=np.nan)
            im = ax.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        else:
            image = mosaic(tiles[:shown], pad_value=pad_value)
            im = ax.imshow(image, interpolation="nearest")
        what = f"{shown} of {n} filters" if shown < n else f"{n} filters"
        subtitle = f"{what}, {kh}x{kw}, each scaled to its own min..max"
    else:
        rows, cols = min(n, max_filters // 4 or 1, 16), min(cin, max_channels)
        grid = np.moveaxis(tiles[:rows, :, :, :cols], -1, 1).reshape(rows * cols, kh, kw)
        cmap = plt.get_cmap("gray").with_extremes(bad="white")
        im = ax.imshow(mosaic(grid, cols=cols), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        subtitle = (f"rows: filters 0..{rows - 1} of {n}; columns: input channels 0..{cols - 1} of {cin}; "
                    f"{kh}x{kw}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\n{subtitle}")
    if cin != 3:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight (scaled per filter)")
    return save_figure(fig, path)


def plot_embedding(points, labels, path, *, title: str, class_names=None) -> str:
    """2-D points coloured by class, with a legend of class names."""
    points = np.asarray(points, dtype="float32")
    labels = np.asarray(labels)
    fig = _new_figure("embedding")
    ax = fig.subplots()
    plt = _plt()
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, cls in enumerate(classes):
        sel = labels == cls
        name = class_names[int(cls)] if class_names is not None and int(cls) < len(class_names) else str(cls)
        ax.scatter(points[sel, 0], points[sel, 1], s=8, color=cmap(k % cmap.N), label=name, alpha=0.8,
                   linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2.5, frameon=False)
    fig.subplots_adjust(right=0.8)
    return save_figure(fig, path)


def plot_fgsm(before, after, probs_before, probs_after, path, *, title: str, class_names=None,
              label: int | None = None, top: int = 5) -> str:
    """Original, perturbation (amplified to full range) and adversarial image, with the top class
    probabilities before and after."""
    before = np.asarray(before, dtype="float32")
    after = np.asarray(after, dtype="float32")
    fig = _new_figure("fgsm")
    grid = fig.add_gridspec(2, 3, height_ratios=[3, 2])
    names = class_names or [str(i) for i in range(len(probs_before))]
    pb, pa = np.asarray(probs_before), np.asarray(probs_after)
    ax = fig.add_subplot(grid[0, 0])
    _show_image(ax, before)
    ax.set_title(f"original: {names[int(pb.argmax())]} ({pb.max():.2f})")
    ax = fig.add_subplot(grid[0, 1])
    delta = after - before
    scale = float(np.abs(delta).max()) or 1.0
    if delta.shape[-1] == 3:  # signed change per channel, mid-grey = unchanged
        im = ax.imshow(np.clip(0.5 + 0.5 * delta / scale, 0, 1), interpolation="nearest")
    else:
        im = ax.imshow(_grey(delta) / scale, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"perturbation x{255.0 / scale:.0f} (max {scale:.1f} of 255)")
    if delta.shape[-1] != 3:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = fig.add_subplot(grid[0, 2])
    _show_image(ax, after)
    ax.set_title(f"adversarial: {names[int(pa.argmax())]} ({pa.max():.2f})")
    for col, (probs, name) in enumerate(((pb, "before"), (pa, "after"))):
        ax = fig.add_subplot(grid[1, 2 * col])
        order = np.argsort(probs)[::-1][:top]
        colors = ["tab:green" if (label is not None and int(i) == int(label)) else "tab:gray" for i in order]
        rows = list(range(len(order)))[::-1]
        ax.barh(rows, probs[order], color=colors)
        for row, value in zip(rows, probs[order]):
            ax.text(min(value, 0.75) + 0.02, row, f"{value:.4f}", va="center", fontsize=9)
        ax.set_yticks(rows)
        ax.set_yticklabels([names[int(i)] for i in order])
        ax.set_xlim(0, 1)
        ax.set_title(f"top {len(order)} probabilities {name}")
    ax = fig.add_subplot(grid[1, 1])
    ax.axis("off")
    if label is not None:
        ax.text(0.5, 0.5, f"p(class {names[int(label)]})\n{pb[int(label)]:.4f} -> {pa[int(label)]:.4f}",
                ha="center", va="center", fontsize=13)
    fig.suptitle(title)
    return save_figure(fig, path)
