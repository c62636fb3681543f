"""Segmentation end to end (issue 15): per-pixel data (``shapes``, ``masks:DIR``), per-pixel loss
and mean IoU in ``kblocks train`` / ``evaluate``, the ``--method masks`` picture, and a small U-Net
trained on the CPU to a stated IoU.

The stated IoU: ``unet_small`` at widths 8/16/32 on ``shapes:n=320`` (256 training, 64 validation
images of 32x32), 8 epochs of Adam at 0.005, batch 16, seed 0, reached a validation mean IoU of
0.380 when measured (pixel accuracy 0.838; docs/training.md, "Segmentation"). The test asks for
0.30: predicting background everywhere scores the background's IoU over the 4 classes, about 0.20
on these images (computed below from the masks), so 0.30 means the shapes are found.
"""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kblocks.cli import main
from kblocks.common.errors import ConfigError, DataError
from kblocks.training.data import (SHAPE_CLASSES, ArrayData, check_fits, draw_shapes,
                                   image_strata, load_data, resize_masks, split_data)
from kblocks.training.segmentation import class_iou, confusion_matrix, mean_iou, pixel_scores

#: the validation mean IoU the test run must reach (measured: 0.380; see the module docstring)
STATED_IOU = 0.30
RUN = ["unet_small", "--data", "shapes:n=320", "--set", "f1=8", "--set", "f2=16", "--set",
       "f3=32", "--epochs", "8", "--batch-size", "16", "--optimizer", "adam", "--lr", "0.005",
       "--seed", "0", "--val-split", "0.2", "-q", "--no-tensorboard"]


def _cli(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    result = _cli(["train", *RUN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


# -- the trained U-Net -------------------------------------------------------------------------

@pytest.mark.slow  # shares one ~20 s training run
def test_small_unet_reaches_the_stated_mean_iou(seg_run):
    out, output = seg_run
    final = json.loads((out / "run.json").read_text())["final"]
    _, val = split_data(load_data("shapes:n=320"), 0.2, seed=0)
    background = np.mean(val.y == 0) / len(SHAPE_CLASSES)  # IoU of "all background"
    assert background < 0.22
    assert final["val_mean_iou"] >= STATED_IOU > background + 0.05, final
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"mean_iou", "val_mean_iou", "accuracy"} <= set(header)
    assert "val_mean_iou" in output


@pytest.mark.slow
def test_evaluate_on_the_run_reports_the_training_iou(seg_run):
    from kblocks.training import evaluate

    out, _ = seg_run
    final = json.loads((out / "run.json").read_text())["final"]
    scores = evaluate(out / "best.keras", "shapes:n=320", val_split=0.2, seed=0)
    assert scores["samples"] == 64 and scores["pixels"] == 64 * 32 * 32
    assert scores["mean_iou"] == pytest.approx(final["val_mean_iou"], abs=1e-4)
    assert scores["accuracy"] == pytest.approx(final["val_accuracy"], abs=1e-4)
    assert list(scores["per_class_iou"]) == list(SHAPE_CLASSES)
    printed = _cli(["evaluate", str(out / "best.keras"), "--run", str(out)])
    assert printed.exit_code == 0, printed.output
    assert f"{final['val_mean_iou']:.4f}" in printed.output and "IoU circle" in printed.output


@pytest.mark.slow
def test_trained_model_round_trips_through_keras_safe_mode(seg_run):
    """The model the run saved, loaded by plain Keras with safe_mode=True and compiled as saved,
    scores the validation split as training did (the MeanIoU came back with the file)."""
    import keras

    out, _ = seg_run
    final = json.loads((out / "run.json").read_text())["final"]
    model = keras.saving.load_model(out / "best.keras", safe_mode=True, compile=True)
    assert model.output_shape == (None, 32, 32, 4)
    _, val = split_data(load_data("shapes:n=320"), 0.2, seed=0)
    scores = model.evaluate(val.x, val.y, batch_size=64, verbose=0, return_dict=True)
    assert scores["mean_iou"] == pytest.approx(final["val_mean_iou"], abs=1e-5)
    assert scores["loss"] == pytest.approx(final["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_inspect_masks_writes_the_picture(seg_run, tmp_path):
    out, _ = seg_run
    picture = tmp_path / "masks.png"
    result = _cli(["inspect", str(out / "best.keras"), "--data", "shapes:n=40", "--method",
                   "masks", "--samples", "4", "-o", str(picture)])
    assert result.exit_code == 0, result.output
    with Image.open(picture) as image:  # 8 x (0.8 + 2.6 per row) inches at 100 dpi
        assert image.size == (800, 1120)
    assert "masks of 4 samples" in result.output


def test_inspect_masks_needs_segmentation_data(tmp_path):
    result = CliRunner().invoke(main, ["inspect", "unet_small", "--method", "masks",
                                       "-o", str(tmp_path / "m.png")])
    assert result.exit_code == 2 and "needs --data" in result.output


# -- the metric --------------------------------------------------------------------------------

def test_mean_iou_equals_a_hand_computation_and_keras():
    import keras

    from kblocks.training.trainer import make_pixel_loss

    true = np.array([[[0, 0, 1], [1, 2, 2]]])            # one 2x3 mask, 4 classes (3 absent)
    pred = np.array([[[0, 1, 1], [1, 2, 0]]])
    # by hand: class 0: TP 1, FN 1 (0->1), FP 1 (2->0): 1/3; class 1: TP 2, FP 1: 2/3;
    # class 2: TP 1, FN 1: 1/2; class 3 absent from both: left out. Mean (1/3 + 2/3 + 1/2) / 3.
    confusion = confusion_matrix(true, pred, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(class_iou(confusion)[:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(class_iou(confusion)[3])
    assert mean_iou(confusion) == pytest.approx(0.5)
    logits = keras.ops.one_hot(pred, 4) * 5.0
    _, (accuracy, iou) = make_pixel_loss(True, 4)
    iou.update_state(true, logits)
    accuracy.update_state(true, logits)
    assert float(iou.result()) == pytest.approx(0.5, abs=1e-6)
    assert float(accuracy.result()) == pytest.approx(4 / 6, abs=1e-6)
    scores = pixel_scores(np.asarray(logits), true, False, 4)
    assert scores["mean_iou"] == pytest.approx(0.5) and scores["accuracy"] == pytest.approx(4 / 6)


def test_binary_mask_metric_matches_keras_binary_iou():
    from kblocks.training.trainer import make_pixel_loss

    true = np.array([[[0, 1], [1, 1]]])
    logits = np.array([[[[-2.0], [1.0]], [[-1.0], [3.0]]]])   # predicts 0 1 / 0 1
    # class 0: TP 1, FP 1 -> 1/2; class 1: TP 2, FN 1 -> 2/3
    _, (_, iou) = make_pixel_loss(True, 1)
    iou.update_state(true[..., None], logits)
    assert float(iou.result()) == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)
    assert pixel_scores(logits, true, False, 2)["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_segmentation_refuses_label_smoothing():
    from kblocks.training.trainer import make_pixel_loss

    with pytest.raises(ConfigError, match="per-pixel"):
        make_pixel_loss(True, 4, label_smoothing=0.1)


# -- the shapes source ---------------------------------------------------------------------------

def test_shapes_are_reproducible_and_masks_match_the_drawing():
    a, b = load_data("shapes:n=16,size=24,seed=3"), load_data("shapes:seed=3,n=16,size=24")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == (16, 24, 24, 3) and a.y.shape == (16, 24, 24) and a.per_pixel
    assert a.classes == list(SHAPE_CLASSES) and set(np.unique(a.y)) <= {0, 1, 2, 3}
    assert not np.array_equal(load_data("shapes:n=16,size=24,seed=4").y, a.y)
    x, y = draw_shapes(4, 24, 3)
    np.testing.assert_array_equal(y, a.y[:4])  # the first images do not depend on n
    for image, mask in zip(x, y):  # a shape differs from the background by >= 60 grey levels
        assert (mask > 0).any()
        inside = image[mask > 0].astype(float).mean(0)
        outside = image[mask == 0].astype(float).mean(0)
        assert np.abs(inside - outside).max() > 20
    assert load_data("shapes").x.shape == (512, 32, 32, 3)


def test_shapes_options_errors():
    for spec, message in [("shapes:n=x", "whole number"), ("shapes:colour=1", "cannot read"),
                          ("shapes:size=4", "size between")]:
        with pytest.raises(DataError, match=message):
            load_data(spec)


def test_per_pixel_split_is_stratified_by_the_main_object():
    data = load_data("shapes:n=90,size=16")
    strata = image_strata(data)
    for i in range(5):  # the class other than background covering most pixels
        counts = np.bincount(data.y[i].ravel(), minlength=4)[1:]
        assert strata[i] == 1 + int(np.argmax(counts))
    train, val = split_data(data, 0.2, seed=1)
    assert len(val) == 18 and set(image_strata(val)) == set(image_strata(data))
    assert train.per_pixel and val.y.shape == (18, 16, 16)


def test_resizing_masks_keeps_class_indices():
    y = np.array([[[0, 3], [2, 1]]])
    np.testing.assert_array_equal(resize_masks(y, 4)[0], np.kron(y[0], np.ones((2, 2), int)))
    data = load_data("shapes:n=4,size=16", image_size=24)
    assert data.x.shape == (4, 24, 24, 3) and data.y.shape == (4, 24, 24)
    assert set(np.unique(data.y)) <= {0, 1, 2, 3}


def test_per_pixel_data_and_model_must_agree():
    masks = ArrayData(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.int64),
                      ["bg", "a", "b"], "masks")
    masks.y[0, 0, 0] = 2
    check_fits((8, 8, 3), 3, masks, output_shape=(8, 8, 3))
    with pytest.raises(DataError, match="one output per image"):
        check_fits((8, 8, 3), 3, masks, output_shape=(3,))
    with pytest.raises(DataError, match="predicts 4x4 masks"):
        check_fits((8, 8, 3), 3, masks, output_shape=(4, 4, 3))
    with pytest.raises(DataError, match="binary mask"):
        check_fits((8, 8, 3), 1, masks, output_shape=(8, 8, 1))
    with pytest.raises(DataError, match="mask value 2"):
        check_fits((8, 8, 3), 2, masks, output_shape=(8, 8, 2))
    labels = load_data("digits")
    with pytest.raises(DataError, match="one label per image"):
        check_fits((8, 8, 1), 10, labels, output_shape=(8, 8, 10))


def test_geometric_augmentation_is_refused_for_segmentation():
    from kblocks.training import TrainConfig, train

    with pytest.raises(ConfigError, match="mask"):
        train("unet_small", TrainConfig(data="shapes:n=16", epochs=1, augment="flip",
                                        variables={"f1": 4, "f2": 4, "f3": 4}))


def test_mean_iou_monitor_needs_a_per_pixel_network():
    from kblocks.training import TrainConfig, train

    with pytest.raises(ConfigError, match="per-pixel"):
        train("[CONV(4)-RELU]*1-GAP-FC", TrainConfig(data="digits", epochs=1,
                                                     monitor="val_mean_iou", subset=100))


# -- the masks: folder -------------------------------------------------------------------------

def _folder(root, n=3, size=(12, 10), classes=None):
    """root/images/i.png (RGB) and root/masks/i.png (L, values 0..2)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    masks = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            root / "images" / f"s{i}.png")
        mask = rng.integers(0, 3, size, dtype=np.uint8)
        Image.fromarray(mask, mode="L").save(root / "masks" / f"s{i}.png")
        masks.append(mask)
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return np.stack(masks)


def test_masks_folder_loads_images_and_masks(tmp_path):
    masks = _folder(tmp_path / "d", classes=["bg", "cat", "dog"])
    data = load_data(f"masks:{tmp_path / 'd'}")
    assert data.x.shape == (3, 12, 10, 3) and data.per_pixel
    np.testing.assert_array_equal(data.y, masks)
    assert data.classes == ["bg", "cat", "dog"]
    resized = load_data(f"masks:{tmp_path / 'd'}", image_size="6x5")
    np.testing.assert_array_equal(resized.y, masks[:, 1::2, 1::2])  # the pixel centres, as PIL's NEAREST


def _damage(root, how):
    if how == "missing mask":
        (root / "masks" / "s1.png").unlink()
    elif how == "lone mask":
        Image.fromarray(np.zeros((12, 10), np.uint8)).save(root / "masks" / "extra.png")
    elif how == "wrong size":
        Image.fromarray(np.zeros((12, 11), np.uint8)).save(root / "masks" / "s2.png")
    elif how == "rgb mask":
        Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(root / "masks" / "s0.png")
    elif how == "value":
        Image.fromarray(np.full((12, 10), 7, np.uint8)).save(root / "masks" / "s2.png")
    elif how == "no masks folder":
        for file in (root / "masks").iterdir():
            file.unlink()
        (root / "masks").rmdir()
    elif how == "fifo":
        import os

        (root / "masks" / "s0.png").unlink()
        os.mkfifo(root / "masks" / "s0.png")


MASK_ERRORS = [  # (how the folder is damaged, what the one error says)
    ("missing mask", r"image .*s1.png has no mask"),
    ("lone mask", r"mask .*extra.png has no image"),
    ("wrong size", r"s2.png is 11x12 but its image is 10x12"),
    ("rgb mask", r"s0.png is a RGB image; a mask is one channel"),
    ("value", r"s2.png has value 7 but classes.txt names 3 classes"),
    ("no masks folder", r"needs the folders"),
    ("fifo", r"not a regular file"),
]


def test_masks_folder_errors_name_the_file_and_the_fix(tmp_path):
    from kblocks.common.errors import KBlocksError

    for how, message in MASK_ERRORS:
        root = tmp_path / how.replace(" ", "_")
        _folder(root, classes=["bg", "cat", "dog"])
        _damage(root, how)
        with pytest.raises(KBlocksError, match=message) as err:
            load_data(f"masks:{root}")
        assert err.value.hint, how


def test_masks_folder_error_on_the_command_line_exits_2(tmp_path):
    _folder(tmp_path / "d")
    _damage(tmp_path / "d", "missing mask")
    result = CliRunner().invoke(main, ["train", "unet_small", "--data", f"masks:{tmp_path / 'd'}",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "has no mask" in result.output
    assert "Traceback" not in result.output


# -- the zoo's small U-Net -----------------------------------------------------------------------

def keras_unet_small(shape, classes, widths=(16, 32, 64)):
    """unet_small written by hand in Keras: the oracle of its parameter count and output shape."""
    import keras
    from keras import layers

    def convs(x, f):
        for _ in range(2):
            x = layers.Conv2D(f, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    f1, f2, f3 = widths
    inputs = keras.Input(shape)
    e1 = convs(inputs, f1)
    e2 = convs(layers.MaxPooling2D(2)(e1), f2)
    x = convs(layers.MaxPooling2D(2)(e2), f3)
    x = convs(layers.Concatenate()([e2, layers.Conv2DTranspose(f2, 2, strides=2)(x)]), f2)
    x = convs(layers.Concatenate()([e1, layers.Conv2DTranspose(f1, 2, strides=2)(x)]), f1)
    return keras.Model(inputs, layers.Conv2D(classes, 1)(x))


def test_unet_small_equals_a_hand_written_keras_unet_and_is_per_pixel():
    import kblocks

    oracle = keras_unet_small((32, 32, 3), 4)
    assert kblocks.summary("unet_small").params == oracle.count_params() == 118_372
    small = kblocks.build("unet_small", input_shape=(16, 16, 1), classes=2,
                          variables={"f1": 8, "f2": 16, "f3": 32})
    assert small.output_shape == (None, 16, 16, 2)  # the input's size: a class per pixel
    assert small.count_params() == keras_unet_small((16, 16, 1), 2, (8, 16, 32)).count_params()


def test_one_channel_network_trains_on_binary_masks_and_evaluate_agrees(tmp_path):
    """A one-channel output is a sigmoid mask: binary cross-entropy, BinaryIoU, and evaluate's
    NumPy IoU of the same validation split equal to training's."""
    from kblocks.training import TrainConfig, evaluate, train

    x, y = draw_shapes(32, 16, 0)
    np.savez(tmp_path / "binary.npz", x=x, y=(y > 0).astype(np.uint8))
    result = train("[CONV(8)-BN-RELU]*2-CONV(1,1)",
                   TrainConfig(data=f"npz:{tmp_path / 'binary.npz'}", epochs=1, batch_size=16,
                               optimizer="adam", lr=0.01, seed=0, verbose=0, tensorboard=False,
                               val_split=0.25), out=tmp_path / "run")
    assert result.network.output_shape == (None, 16, 16, 1)
    scores = evaluate(tmp_path / "run" / "best.keras", f"npz:{tmp_path / 'binary.npz'}",
                      val_split=0.25, seed=0)
    assert scores["mean_iou"] == pytest.approx(result.final["val_mean_iou"], abs=1e-4)
    assert scores["accuracy"] == pytest.approx(result.final["val_accuracy"], abs=1e-4)
    assert list(scores["per_class_iou"]) == ["0", "1"]
