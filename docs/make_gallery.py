#!/usr/bin/env python3
"""Write the pictures of docs/inspect.md: every ``kblocks inspect`` method on a CIFAR-10 model.

    python docs/make_gallery.py runs/cifar/best.keras ../shared/data/cifar10/train.npz
    python docs/make_gallery.py MODEL.keras NPZ --out docs/gallery --samples 1000 --dpi 60

MODEL is a ``.keras`` file trained on CIFAR-10 (``kblocks train ... --data cifar10:NPZ``); NPZ is
the container of JPEG bytes (keys jpeg, offsets, labels, classes). The script picks ``--images``
pictures (one per class, seeded, ones the model classifies correctly when it can), and writes
small PNGs named ``<method>[_<class>].png`` into ``--out``:

    filters.png            first convolution layer, RGB tiles
    featuremaps_<c>.png    the first and the last spatial layer for one image
    saliency_<c>.png       vanilla gradient                (Simonyan et al. 2014)
    gradcam_<c>.png        Grad-CAM at the last spatial layer (Selvaraju et al. 2017)
    cam_<c>.png            CAM, only if the model ends in GAP + dense (Zhou et al. 2016)
    occlusion_<c>.png      grey square sliding             (Zeiler & Fergus 2014)
    fgsm_<c>.png           eps = 0.007 and 0.03            (Goodfellow et al. 2015)
    tsne.png               penultimate codes of --samples images (van der Maaten & Hinton 2008)

The pictures are the same as the command line writes (``kblocks.inspect.plotting``), at a lower
``--dpi``. Run it from the repository root with the project's Python.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=".keras model trained on CIFAR-10")
    parser.add_argument("npz", help="CIFAR-10 npz of JPEG bytes (../shared/data/cifar10/train.npz)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gallery"))
    parser.add_argument("--images", type=int, default=3, help="how many pictures to explain")
    parser.add_argument("--samples", type=int, default=1000, help="images in the t-SNE plot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, default=60, help="smaller than the CLI's 100, for the docs")
    args = parser.parse_args(argv)

    import numpy as np

    from kblocks.cli.inspect import load_model
    from kblocks.inspect import plotting
    from kblocks.inspect.adversarial import fgsm
    from kblocks.inspect.cam import cam_layers, class_activation_map, grad_cam
    from kblocks.inspect.classes import class_probabilities
    from kblocks.inspect.embedding import tsne_embedding
    from kblocks.inspect.featuremaps import feature_maps
    from kblocks.inspect.filters import filter_layer, filter_tiles
    from kblocks.inspect.inputs import load_samples, prepare_image
    from kblocks.inspect.layers import as_view, default_spatial_layer, input_shape, output_shape
    from kblocks.inspect.occlusion import occlusion_map
    from kblocks.inspect.saliency import saliency_map
    from kblocks.common.errors import KBlocksError

    plotting.DPI = args.dpi
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    model = load_model(args.model)
    view = as_view(model)
    h, w, c = input_shape(view)
    pool = load_samples(f"cifar10:{args.npz}", max(args.samples, 200), seed=args.seed)
    names = pool.classes
    x = np.stack([prepare_image(img, (h, w), c) for img in pool.x])
    probs = class_probabilities(view, x)
    right = probs.argmax(-1) == pool.y
    print(f"{args.model}: accuracy on the {len(x)} sampled training images {right.mean():.3f}")
    chosen = []
    for cls in range(len(names)):
        candidates = np.flatnonzero((pool.y == cls) & right) if right.any() else np.flatnonzero(pool.y == cls)
        if len(candidates):
            chosen.append(int(candidates[0]))
        if len(chosen) == args.images:
            break
    written = []

    def out(name):
        path = os.path.join(args.out, name)
        written.append(path)
        return path

    layer = filter_layer(view)
    plotting.plot_filters(filter_tiles(view, layer), out("filters.png"),
                          title=f"first-layer filters ({layer.name})")
    spatial = [ly for ly in view.layers if len(output_shape(ly, view)) == 4]
    last = default_spatial_layer(view)
    try:
        cam_layers(view)
        has_cam = True
    except KBlocksError as err:
        print(f"skipping CAM: {err.message}")
        has_cam = False
    for i in chosen:
        image, label = x[i], int(pool.y[i])
        tag = names[label]
        what = f"{tag}, p={probs[i, label]:.2f}"
        for which, ly in (("first", spatial[0]), ("last", last)):
            plotting.plot_feature_maps(feature_maps(view, image, ly), out(f"featuremaps_{which}_{tag}.png"),
                                       title=f"{ly.name} on a {tag}")
        plotting.plot_heatmap(image, saliency_map(view, image, label), out(f"saliency_{tag}.png"),
                              title=f"Saliency - {what}", label="max |d score / d pixel|")
        plotting.plot_heatmap(image, grad_cam(view, image, label, last), out(f"gradcam_{tag}.png"),
                              title=f"Grad-CAM at {last.name} - {what}", label="ReLU(sum_k alpha_k A_k)")
        if has_cam:
            plotting.plot_heatmap(image, class_activation_map(view, image, label), out(f"cam_{tag}.png"),
                                  title=f"CAM - {what}", label="sum_k w_kc A_k")
        drop = probs[i, label] - occlusion_map(view, image, label)  # hot = important, as the CLI
        plotting.plot_heatmap(image, drop, out(f"occlusion_{tag}.png"), title=f"Occlusion - {what}",
                              label="drop in p(class), grey square here",
                              overlay=np.maximum(drop, 0),
                              colorbar_label="drop in p(class) when covered (hot = important)")
        for eps in (0.007, 0.03):
            adv = fgsm(view, image, label, eps=eps)
            after = class_probabilities(view, adv)[0]
            plotting.plot_fgsm(image, adv, probs[i], after, out(f"fgsm_{eps:g}_{tag}.png"),
                               class_names=names, label=label, title=f"FGSM eps={eps:g}")
    n = min(args.samples, len(x))
    points = tsne_embedding(view, x[:n], seed=args.seed)
    plotting.plot_embedding(points, pool.y[:n], out("tsne.png"), class_names=names,
                            title=f"t-SNE of the penultimate codes of {n} CIFAR-10 images")
    for path in written:
        print("wrote", path)
    print(f"{len(written)} pictures in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
