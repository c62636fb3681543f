"""``kblocks inspect`` (look inside a trained CNN) and ``kblocks conv-size`` (conv arithmetic).

    kblocks inspect MODEL --image cat.png --method gradcam --class cat -o gradcam.png
    kblocks inspect MODEL --image cat.png --method featuremaps --layer 3 -o maps.png
    kblocks inspect MODEL --method filters --layer 0 -o filters.png
    kblocks inspect MODEL --image cat.png --method saliency|occlusion|cam -o out.png
    kblocks inspect MODEL --image cat.png --image dog.png --method saliency,gradcam -o out.png
        # one model load; out_saliency_cat.png, out_saliency_dog.png, out_gradcam_cat.png, ...
    kblocks inspect MODEL --data cifar10:PATH --method tsne --samples 2000 -o codes.png
    kblocks inspect MODEL --image cat.png --method fgsm --eps 0.007 -o adv.png
    kblocks inspect runs/seg/best.keras --data shapes --method masks --samples 4 -o masks.png
    kblocks conv-size --input 227 --kernel 11 --stride 4 --padding 0

The library lives in :mod:`kblocks.inspect` and is imported only when a command runs, so
``kblocks --help`` stays fast.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

from kblocks.cli.app import main
from kblocks.cli.core import check_output, check_source
from kblocks.common.errors import KBlocksError

METHODS = ("featuremaps", "filters", "saliency", "gradcam", "cam", "occlusion", "tsne", "fgsm",
           "masks")
#: the most samples --method masks draws (one row each)
MASK_SAMPLES = 6
NEEDS_IMAGE = ("featuremaps", "saliency", "gradcam", "cam", "occlusion", "fgsm")
USES_LAYER = ("featuremaps", "filters", "gradcam", "tsne")
USES_CLASS = ("saliency", "gradcam", "cam", "occlusion", "fgsm")

TITLES = {
    "saliency": "Saliency (vanilla gradient, Simonyan et al. 2014)",
    "gradcam": "Grad-CAM (Selvaraju et al. 2017)",
    "cam": "CAM (Zhou et al. 2016)",
    "occlusion": "Occlusion (Zeiler & Fergus 2014)",
}


#: the colour bar of both occlusion panels: one meaning, hot = important
OCCLUSION_COLORBAR = "drop in p(class) when covered (hot = important)"


def _shape(text):
    if text is None:
        return None
    try:
        dims = tuple(int(x) for x in text.lower().replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise KBlocksError(f"--input-shape takes sizes like 32,32,3, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise KBlocksError(f"--input-shape takes positive sizes like 32,32,3, got {text!r}")
    return dims


def load_model(spec: str, *, weights=None, input_shape=None, classes=None, unsafe=False):
    """MODEL: a ``.keras`` file, or architecture text / YAML file / zoo name (+ ``--weights``).

    A ``.keras`` file loads with ``safe_mode=True`` (:func:`kblocks.common.saving.load_model`): one with
    a Lambda layer is refused unless ``unsafe``."""
    if spec.strip().lower().endswith(".keras") and "\n" not in spec:
        if not os.path.isfile(spec):
            raise KBlocksError(f"MODEL: file not found: {spec}",
                               hint="give a .keras file saved by kblocks train or model.save()")
        from kblocks.common.saving import load_model as load_keras_file

        model = load_keras_file(spec, compile=False, unsafe=unsafe)
    else:
        try:
            from kblocks.lang import api
        except ImportError:
            raise KBlocksError(f"MODEL {spec!r} is not a .keras file, and this kblocks cannot build "
                               "architectures (kblocks.lang.api is missing)",
                               hint="give a .keras model file") from None
        model = api.build(spec, input_shape=input_shape, classes=classes)
        if weights is None:
            click.echo("note: no --weights given; the model has random weights", err=True)
    if weights is not None:
        if not os.path.isfile(weights):
            raise KBlocksError(f"--weights: file not found: {weights}",
                               hint="give a .weights.h5 file saved by model.save_weights()")
        from kblocks.common.saving import check_weights_file

        check_weights_file(weights, what="--weights")  # regular, bounded: a FIFO would block h5py
        try:
            model.load_weights(weights)
        except Exception as err:  # noqa: BLE001
            raise KBlocksError(f"--weights: cannot load {weights} into this model: {_brief(err)}",
                               hint="the weights must come from the same architecture, "
                                    "input shape and number of classes") from None
    return model


def _brief(err, limit: int = 240) -> str:
    """The first line of a (Keras) error, and the line that names the shapes, if any: Keras
    prints whole variable values in weight-loading errors."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    keep = lines[:1] + [line for line in lines[1:] if "shape" in line][:1]
    return " ".join(line if len(line) <= limit else line[:limit] + "..." for line in keep)


def _class_label(index, names):
    if names and 0 <= index < len(names) and names[index] != str(index):
        return f"{index} ({names[index]})"
    return str(index)


def _default_output(method):
    return f"{method}.png"


def _methods(values) -> list:
    """``--method`` values (repeated and/or comma-separated), lower case, in order, once each."""
    chosen = []
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in METHODS:
                raise KBlocksError(f"--method {name!r} is not a method",
                                   hint="use one or more of " + ", ".join(METHODS)
                                        + " (e.g. --method saliency,gradcam)")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise KBlocksError("--method is empty", hint="use one or more of " + ", ".join(METHODS))
    return chosen


def output_paths(methods, images, output) -> dict:
    """``{(method, image or None): PNG path}`` for every picture one call writes.

    One method on one image (or none): ``output`` as given (default ``METHOD.png``), as before.
    Several: one PNG per method and image, named ``METHOD``, then the image's file stem when there
    are several images: ``-o out.png`` gives ``out_gradcam.png`` or ``out_gradcam_cat.png``...;
    ``-o FOLDER`` (no ``.png``) gives ``FOLDER/gradcam_cat.png``...; no ``-o`` gives
    ``gradcam_cat.png``... in the current folder. A method without an image (filters, tsne)
    writes one PNG whatever the images."""
    images = list(images) or [None]
    jobs = [(m, img) for m in methods for img in (images if m in NEEDS_IMAGE else [None])]
    if len(jobs) == 1:
        return {jobs[0]: output or _default_output(jobs[0][0])}
    stems = {}
    for img in images:
        if img is not None:
            stem = Path(img).stem
            if stem in stems.values():
                raise KBlocksError(f"--image {img}: another --image has the name {stem!r}; their "
                                   f"pictures would have the same name",
                                   hint="give images with different file names")
            stems[img] = stem
    several_images = len(stems) > 1
    if output and output.lower().endswith(".png"):
        base = output[:-4]
        folder, prefix = None, base + "_"
    else:
        folder, prefix = output, ""
    paths = {}
    for method, img in jobs:
        parts = [method] + ([stems[img]] if several_images and img is not None else [])
        name = prefix + "_".join(parts) + ".png"
        paths[(method, img)] = os.path.join(folder, name) if folder else name
    return paths


@main.command("inspect")
@click.argument("model_spec", metavar="MODEL")
@click.option("--method", "-m", "methods", required=True, multiple=True, metavar="METHOD[,METHOD]",
              help="What to show: " + ", ".join(METHODS) + ". Several: comma-separated or "
                   "repeated (the model is loaded once).")
@click.option("--image", "-i", "images", type=click.Path(dir_okay=False), multiple=True,
              help="PNG/JPEG to explain (resized to the model's input); repeat for several.")
@click.option("--layer", "-l", default=None,
              help="Layer index, exact name, or name prefix (last match).")
@click.option("--class", "class_spec", default=None,
              help="Class to explain: index or name (default: the predicted class).")
@click.option("--class-names", default=None, metavar="A,B,C", help="Names of the classes, in order.")
@click.option("--data", default=None, metavar="SOURCE",
              help="Samples for tsne: 'digits' or 'cifar10:PATH' (npz of JPEG bytes); for masks "
                   "a segmentation source ('shapes', 'masks:DIR').")
@click.option("--samples", type=click.IntRange(min=4), default=2000, show_default=True,
              help=f"How many samples tsne embeds (masks draws at most {MASK_SAMPLES}).")
@click.option("--eps", type=float, default=0.007, show_default=True,
              help="FGSM step on the 0..1 scale (the model sees 0..255: x' = x + eps*255*sign(grad)).")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="Occlusion square size in input pixels (default: a quarter of the image).")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="Occlusion step in pixels (default: half the window).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for tsne and sampling.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Weights (.weights.h5) for a MODEL given as architecture text or zoo name.")
@click.option("--input-shape", default=None, metavar="H,W,C",
              help="Input shape when MODEL is architecture text.")
@click.option("--classes", type=click.IntRange(min=1), default=None,
              help="Number of classes when MODEL is architecture text.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="PNG to write (default: METHOD.png). With several methods or images: "
                   "OUT.png gives OUT_METHOD[_IMAGE].png, a folder gives FOLDER/METHOD[_IMAGE].png.")
@click.option("--unsafe", is_flag=True,
              help="Load a MODEL file even if it holds a Lambda layer, whose Python code then "
                   "runs: only for files you trust.")
def inspect_command(model_spec, methods, images, layer, class_spec, class_names, data, samples, eps,
                    window, stride, seed, weights, input_shape, classes, output, unsafe):
    """Look inside a trained CNN: write a PNG of each visualisation method (and image).

    \b
    featuremaps  activations of --layer for --image (one tile per channel)
    filters      convolution kernels of --layer (first layer: RGB tiles)
    saliency     |d class score / d pixel|, Simonyan et al. 2014
    gradcam      gradient-weighted feature maps, Selvaraju et al. 2017
    cam          class activation map of a GAP + dense head, Zhou et al. 2016
    occlusion    drop in class probability under a sliding grey square, Zeiler & Fergus 2014
    tsne         2-D t-SNE of penultimate codes of --data, coloured by class
    fgsm         adversarial image x + eps*255*sign(grad), Goodfellow et al. 2015
    masks        image | true mask | predicted mask of samples of --data (segmentation)

    MODEL is a .keras file, or architecture text / YAML / zoo name with --weights.
    Images are read as 0..255 pixels (any normalisation is inside the model).
    """
    check_source(model_spec, "inspect", what="MODEL")
    methods = _methods(methods)
    outputs = _check_request(methods, model_spec, images, data, layer, class_spec, output, weights)

    from kblocks.inspect import classes as kc
    from kblocks.inspect import plotting
    from kblocks.inspect.layers import as_view, input_shape as model_input_shape

    model = load_model(model_spec, weights=weights, input_shape=_shape(input_shape), classes=classes,
                       unsafe=unsafe)
    from kblocks.lang.conventions import assumed_note, conventions

    conv = conventions(model)
    click.echo(f"model: input {conv['input']}; outputs {conv['output']}", err=True)
    if assumed_note(conv):
        click.echo(f"note: {assumed_note(conv)}", err=True)
    view = as_view(model)
    names = _class_names(class_names, model_spec, view)
    h, w, c = model_input_shape(view)
    class_index = kc.resolve_class(class_spec, view, names) if any(
        m in NEEDS_IMAGE for m in methods) else None
    loaded = {}
    for (method, image), out in outputs.items():
        if method == "filters":
            _filters(view, layer, out, plotting)
        elif method == "tsne":
            _tsne(view, data, samples, seed, layer, names, out, plotting)
        elif method == "masks":
            _masks(view, data, samples, seed, names, out, (h, w))
        else:
            if image not in loaded:
                from kblocks.inspect.inputs import load_image

                loaded[image] = load_image(image, (h, w), c)
            img = loaded[image]
            if method == "featuremaps":
                _featuremaps(view, img, layer, out, plotting)
            elif method == "fgsm":
                _fgsm(view, img, class_index, eps, names, out, plotting)
            else:
                _heatmap(view, img, method, class_index, layer, window, stride, names, out, plotting)


def _check_request(methods, model_spec, images, data, layer, class_spec, output, weights) -> dict:
    """What the methods need is given (a note for what none of them uses); ``{(method, image):
    output path}`` (:func:`output_paths`), each path checked."""
    for method in methods:
        if method in NEEDS_IMAGE and not images:
            raise KBlocksError(f"--method {method} needs --image PATH (a PNG or JPEG to explain)",
                               hint=f"e.g. kblocks inspect MODEL --method {method} --image cat.png")
        if method == "tsne" and not data:
            raise KBlocksError("--method tsne needs --data: 'digits' or 'cifar10:PATH'",
                               hint="e.g. --data cifar10:../shared/data/cifar10/train.npz --samples 2000")
        if method == "masks" and not data:
            raise KBlocksError("--method masks needs --data: images with their masks",
                               hint="e.g. --data shapes or --data masks:DIR (DIR/images, "
                                    "DIR/masks)")
    for image in images:
        if not os.path.isfile(image):
            raise KBlocksError(f"--image: file not found: {image}", hint="give the path of a PNG or JPEG")
    which = ", ".join(methods)
    for name, value, used in (("--layer", layer, USES_LAYER), ("--class", class_spec, USES_CLASS)):
        if value is not None and not any(m in used for m in methods):
            click.echo(f"note: {name} is not used by --method {which}", err=True)
    if images and not any(m in NEEDS_IMAGE for m in methods):
        click.echo(f"note: --image is not used by --method {which}", err=True)
    outputs = output_paths(methods, images, output)
    folder = output if output and len(outputs) > 1 and not output.lower().endswith(".png") else None
    if folder:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise KBlocksError(f"-o {folder}: with several pictures -o is a folder or a name "
                               f"ending in .png, and {folder} is a file",
                               hint="e.g. -o pictures/ or -o out.png")
        os.makedirs(folder, exist_ok=True)
    for path in outputs.values():
        check_output(path, (".png",), reads=(model_spec, weights, *images))
    return outputs


def _class_names(class_names, model_spec, view):
    """``--class-names``, else the names a kblocks ``.keras`` file stores; None when they do not
    match the model's class count (an error if they were given)."""
    from kblocks.inspect import classes as kc
    from kblocks.inspect.layers import num_classes

    names = kc.parse_class_names(class_names)
    if names is None and model_spec.lower().endswith(".keras"):
        names = kc.stored_class_names(model_spec)
    if names is not None and len(names) != num_classes(view):
        if class_names:
            raise KBlocksError(f"--class-names gives {len(names)} names but the model has "
                               f"{num_classes(view)} classes", hint="give one name per class, in order")
        names = None
    return names


def _filters(view, layer, output, plotting):
    from kblocks.inspect.filters import filter_layer, filter_tiles
    from kblocks.inspect.layers import layer_index

    chosen = filter_layer(view, layer)
    tiles = filter_tiles(view, chosen)
    index = layer_index(view, chosen)
    title = f"filters of layer {index if index is not None else ''} {chosen.name!r}".replace("  ", " ")
    plotting.plot_filters(tiles, output, title=title)
    click.echo(f"wrote {output}: {len(tiles)} filters of {chosen.name} "
               f"({tiles.shape[1]}x{tiles.shape[2]}, {tiles.shape[3]} input channels)")


def _featuremaps(view, img, layer, output, plotting):
    from kblocks.inspect.featuremaps import feature_maps, spatial_layer
    from kblocks.inspect.layers import layer_index

    chosen = spatial_layer(view, layer)
    maps = feature_maps(view, img, chosen)
    index = layer_index(view, chosen)
    plotting.plot_feature_maps(maps, output, title=f"feature maps of layer {index} {chosen.name!r}")
    click.echo(f"wrote {output}: {maps.shape[-1]} channels of {chosen.name}, "
               f"{maps.shape[0]}x{maps.shape[1]} each")


def _heatmap(view, img, method, class_index, layer, window, stride, names, output, plotting):
    import numpy as np

    from kblocks.inspect import cam as kcam
    from kblocks.inspect.classes import class_probabilities
    from kblocks.inspect.featuremaps import spatial_layer

    probs = class_probabilities(view, img)[0]
    if class_index is None:
        class_index = int(np.argmax(probs))
    what = f"class {_class_label(class_index, names)}, p={probs[class_index]:.3f}"
    overlay, words = None, None
    if method == "saliency":
        from kblocks.inspect.saliency import saliency_map

        heat = saliency_map(view, img, class_index)
        label, where = "max |d score / d pixel|", ""
    elif method == "gradcam":
        chosen = spatial_layer(view, layer)
        heat = kcam.grad_cam(view, img, class_index, chosen)
        label, where = "ReLU(sum_k alpha_k A_k)", f" at {chosen.name}"
    elif method == "cam":
        heat = kcam.class_activation_map(view, img, class_index)
        label, where = "sum_k w_kc A_k", ""
    else:
        from kblocks.inspect.occlusion import default_window, occlusion_map

        covered = occlusion_map(view, img, class_index, window=window, stride=stride)
        win = window or default_window(img.shape[0], img.shape[1])[0]
        # Both panels show the drop in p(class) when a square covers the pixel: hot = important
        # (the map once showed p itself, so the same region was blue there and red in the overlay).
        heat = (probs[class_index] - covered).astype("float32")
        overlay = np.maximum(heat, 0.0)  # a rise (covering helps) is not importance
        label, where = f"drop in p(class) under a grey {win}x{win} square", ""
        words = OCCLUSION_COLORBAR
    title = f"{TITLES[method]}{where} - {what}"
    plotting.plot_heatmap(img, heat, output, title=title, label=label, overlay=overlay,
                          colorbar_label=words)
    click.echo(f"wrote {output}: {method}{where} for {what}")


def _fgsm(view, img, class_index, eps, names, output, plotting):
    import numpy as np

    from kblocks.inspect.adversarial import fgsm
    from kblocks.inspect.classes import class_probabilities

    before = class_probabilities(view, img)[0]
    if class_index is None:
        class_index = int(np.argmax(before))
    adv = fgsm(view, img, class_index, eps=eps)
    after = class_probabilities(view, adv)[0]
    names_or_idx = names or [str(i) for i in range(len(before))]
    plotting.plot_fgsm(img, adv, before, after, output, class_names=names_or_idx, label=class_index,
                       title=f"FGSM (Goodfellow et al. 2015), eps={eps:g} (= {eps * 255:.2f} of 255)")
    click.echo(f"wrote {output}: fgsm eps={eps:g}; class {_class_label(class_index, names)} "
               f"p={before[class_index]:.4f} -> {after[class_index]:.4f}; predicted "
               f"{_class_label(int(np.argmax(before)), names)} -> {_class_label(int(np.argmax(after)), names)}")


def _tsne(view, data, samples, seed, layer, names, output, plotting):
    from kblocks.inspect.embedding import code_layer_output, tsne_embedding
    from kblocks.inspect.inputs import load_samples

    loaded = load_samples(data, samples, seed=seed)
    points = tsne_embedding(view, loaded.x, layer, seed=seed)
    codes = code_layer_output(view, layer)
    class_names = names or loaded.classes
    plotting.plot_embedding(points, loaded.y, output, class_names=class_names,
                            title=f"t-SNE of {len(points)} codes ({int(_size(codes))}-D) from {data}")
    click.echo(f"wrote {output}: t-SNE of {len(points)} samples of {data}")


def _masks(view, data, samples, seed, names, output, size):
    """Image | true mask | predicted mask for a seeded draw of samples of a segmentation
    source (resized to the model's input, masks by nearest neighbour)."""
    import numpy as np

    from kblocks.inspect.masks import plot_masks, predicted_masks
    from kblocks.training.data import load_data

    loaded = load_data(data, image_size=size)
    if not loaded.per_pixel:
        raise KBlocksError(f"--data {data} has one label per image; --method masks needs a mask "
                           f"per image", hint="e.g. --data shapes or --data masks:DIR")
    count = min(int(samples), MASK_SAMPLES, len(loaded))
    pick = np.sort(np.random.default_rng(int(seed)).permutation(len(loaded))[:count])
    x, true = loaded.x[pick], loaded.y[pick]
    predicted = predicted_masks(view, x)
    pixels = np.mean(predicted == true)
    plot_masks(x, true, predicted, output, class_names=names or loaded.classes,
               title=f"predicted masks of {count} samples of {data} (pixel accuracy "
                     f"{pixels:.3f})")
    click.echo(f"wrote {output}: masks of {count} samples of {data}, pixel accuracy {pixels:.3f}")


def _size(tensor):
    size = 1
    for d in tuple(tensor.shape)[1:]:
        size *= int(d or 1)
    return size


@main.command("conv-size")
@click.option("--input", "input_size", type=int, required=True, help="Input size i (one side).")
@click.option("--kernel", type=int, required=True, help="Kernel size k.")
@click.option("--stride", type=int, default=1, show_default=True, help="Stride s.")
@click.option("--padding", default="0", show_default=True,
              help="Zeros added on each side p, or 'valid' (0) or 'same'.")
@click.option("--dilation", type=int, default=1, show_default=True, help="Dilation d.")
def conv_size_command(input_size, kernel, stride, padding, dilation):
    """Output size of a convolution or pooling: floor((i + 2p - k) / s) + 1, worked out."""
    from kblocks.inspect.convsize import explain_conv_size

    padding_value = padding
    if isinstance(padding, str) and padding.strip().lstrip("-").isdigit():
        padding_value = int(padding)
    result = explain_conv_size(input_size, kernel, stride, padding_value, dilation)
    click.echo(result.text())
    click.echo(f"output size: {result.output}")
