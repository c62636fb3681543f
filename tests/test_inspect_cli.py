"""``kblocks inspect`` end to end: every method writes a PNG of the documented size with real
content; user mistakes exit with code 2 and one message on stderr, never a traceback."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import keras

from kblocks.cli import main
from kblocks.inspect.plotting import figure_pixels

CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10", "train.npz")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An untrained 16x16 RGB model saved as .keras (with run.json class names), and images."""
    folder = tmp_path_factory.mktemp("inspect_cli")
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale_0")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_1")(x)
    x = keras.layers.MaxPooling2D(name="pool_2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap_4")(x)
    out = keras.layers.Dense(4, name="fc_5")(x)  # logits, no softmax
    model = keras.Model(inp, out)
    model_path = folder / "best.keras"
    model.save(model_path)
    (folder / "run.json").write_text(json.dumps(
        {"data": {"train": {"class_names": ["cat", "dog", "ship", "frog"]}}}))
    rng = np.random.default_rng(0)
    rgb = folder / "photo.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(rgb)
    grey = folder / "grey.jpg"
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(grey)
    return {"model": str(model_path), "rgb": str(rgb), "grey": str(grey), "dir": folder}


def run(*args):
    return CliRunner().invoke(main, ["inspect", *map(str, args)], catch_exceptions=True)


def _check_png(path, kind):
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == figure_pixels(kind)
        arr = np.asarray(img.convert("RGB"))
    colours = np.unique(arr.reshape(-1, 3), axis=0)
    assert len(colours) > 50, "the picture is (nearly) constant"


IMAGE_METHODS = [  # (method, extra options, figure kind); one test, so one Keras session
    ("saliency", [], "heatmap"),
    ("gradcam", ["--class", "dog"], "heatmap"),
    ("cam", ["--class", "2"], "heatmap"),
    ("occlusion", ["--window", "4"], "heatmap"),
    ("featuremaps", ["--layer", "1"], "grid"),
    ("fgsm", ["--eps", "0.05"], "fgsm"),
]


def test_image_methods_write_pictures(files):
    for method, extra, kind in IMAGE_METHODS:
        out = files["dir"] / f"{method}.png"
        result = run(files["model"], "--image", files["rgb"], "--method", method, "-o", out, *extra)
        assert result.exit_code == 0, (method, result.output)
        assert "wrote" in result.stdout
        _check_png(out, kind)
        if method == "gradcam":
            assert "1 (dog)" in result.stdout  # class given by a name stored in run.json
        if method == "fgsm":
            assert "->" in result.stdout
    leftovers = [p for p in os.listdir(files["dir"]) if p.endswith(".tmp")]
    assert not leftovers


def test_grey_image_and_filters(files):
    out = files["dir"] / "grey_gradcam.png"
    result = run(files["model"], "--image", files["grey"], "--method", "gradcam", "--layer", "conv_1",
                 "-o", out)
    assert result.exit_code == 0, result.output
    _check_png(out, "heatmap")
    out = files["dir"] / "filters.png"
    result = run(files["model"], "--method", "filters", "--layer", "conv_3", "-o", out)
    assert result.exit_code == 0, result.output
    _check_png(out, "grid")
    assert "16 filters of conv_3" in result.stdout


def test_tsne_on_digits(files):
    out = files["dir"] / "codes.png"
    result = run(files["model"], "--method", "tsne", "--data", "digits", "--samples", 60, "-o", out)
    assert result.exit_code == 0, result.output
    assert "60 samples" in result.stdout
    _check_png(out, "embedding")


@pytest.mark.skipif(not os.path.exists(CIFAR), reason="no ../shared/data/cifar10/train.npz")
def test_tsne_on_cifar10(files):
    from kblocks.inspect.inputs import load_samples

    samples = load_samples(f"cifar10:{CIFAR}", 12, seed=1)
    assert samples.x.shape == (12, 32, 32, 3) and samples.x.dtype == np.uint8
    assert len(samples.classes) == 10 and samples.y.max() < 10
    out = files["dir"] / "cifar_codes.png"
    result = run(files["model"], "--method", "tsne", "--data", f"cifar10:{CIFAR}", "--samples", 40,
                 "-o", out)
    assert result.exit_code == 0, result.output
    _check_png(out, "embedding")


MISTAKES = [  # (arguments after MODEL, text the message on stderr must contain)
    (["--image", "{rgb}", "--method", "gradcam", "--layer", "nosuch"], "--layer"),
    (["--image", "{rgb}", "--method", "featuremaps", "--layer", "42"], "--layer"),
    (["--method", "filters", "--layer", "0"], "--layer"),  # scale_0 has no filters
    (["--image", "{rgb}", "--method", "featuremaps", "--layer", "fc_5"], "not spatial"),
    (["--method", "saliency"], "--image"),
    (["--method", "bogus", "--image", "{rgb}"], "--method"),
    (["--method", "tsne"], "--data"),
    (["--method", "tsne", "--data", "mnist"], "--data"),
    (["--image", "{rgb}", "--method", "gradcam", "--class", "zebra"], "--class"),
    (["--image", "{rgb}", "--method", "gradcam", "--class", "7"], "--class"),
    (["--image", "missing.png", "--method", "saliency"], "--image"),
    (["--image", "{rgb}", "--method", "fgsm", "--eps", "3"], "--eps"),
]


def test_user_mistakes_exit_2_without_traceback(files):
    problems = []
    for args, needle in MISTAKES:
        args = [a.format(**files) for a in args]
        result = run(files["model"], *args, "-o", files["dir"] / "never.png")
        if result.exit_code != 2 or needle not in result.stderr or "Traceback" in result.output:
            problems.append(f"{args}: exit {result.exit_code}, output {result.output!r}")
    assert not problems, "\n".join(problems)
    assert not (files["dir"] / "never.png").exists()


def test_missing_model_file_exits_2(files):
    result = run(files["dir"] / "nope.keras", "--method", "filters")
    assert result.exit_code == 2
    assert "MODEL" in result.stderr and "Traceback" not in result.output


def test_architecture_text_with_weights(files):
    import kblocks

    text = "[CONV(8)-RELU-POOL]-CONV(8)-RELU-GAP-FC(4)"
    weights = files["dir"] / "arch.weights.h5"
    kblocks.build(text, input_shape=(16, 16, 3)).save_weights(weights)
    out = files["dir"] / "arch_gradcam.png"
    result = run(text, "--input-shape", "16,16,3", "--weights", weights, "--image", files["rgb"],
                 "--method", "gradcam", "--layer", "relu", "-o", out)
    assert result.exit_code == 0, result.output
    assert "at relu_4" in result.stdout  # the last layer whose name starts with "relu"
    _check_png(out, "heatmap")
    wrong = run(text.replace("FC(4)", "FC(5)"), "--input-shape", "16,16,3", "--weights", weights,
                "--method", "filters", "-o", files["dir"] / "never.png")
    assert wrong.exit_code == 2 and "--weights" in wrong.stderr
    assert "Traceback" not in wrong.output
