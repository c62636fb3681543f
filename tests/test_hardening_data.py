"""Data files and training options (issue 20, the data rows): every damaged, hostile or oversized
data file and every out-of-range option is a DataError/ConfigError naming the file or the option,
exit code 2 and one line on the command line, never a traceback, a hang or a MemoryError.

docs/hardening.md, "Data files and training options (issue 20)", lists each guarantee beside the
test here that checks it.
"""
import io
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from kblocks.cli import main
from kblocks.common.errors import ConfigError, DataError, KBlocksError
from kblocks.training import data as D
from kblocks.training.data import load_data


def _cli(args):
    result = CliRunner().invoke(main, args)
    return result


def _refused(result, *expect):
    """Exit 2, an ``error:`` line holding each of ``expect``, no traceback, no stray exception."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for text in expect:
        assert text in result.output, (text, result.output)


def _train(tmp_path, *extra, data="digits"):
    return _cli(["train", "FC", "--data", data, "--epochs", "1", "-q", "--no-tensorboard",
                 "--out", str(tmp_path / "run"), *extra])


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _small(tmp_path, name="d.npz", **extra):
    arrays = dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 1, 0]))
    arrays.update(extra)
    return _npz(tmp_path / name, **arrays)


# -- npz files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_bit_flipped_npz_names_the_file_and_the_array(tmp_path, compressed):
    path = tmp_path / "flip.npz"
    rng = np.random.default_rng(0)
    save = np.savez_compressed if compressed else np.savez
    save(path, x=rng.integers(0, 255, (64, 8, 8), dtype=np.uint8), y=np.zeros(64, np.int64))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("x.npy")
    # a byte well inside x's data (past the local header, the name and the .npy header)
    at = info.header_offset + 30 + len(info.filename) + 200
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        load_data(f"npz:{path}")
    assert str(path) in str(err.value) and "'x'" in str(err.value)
    _refused(_train(tmp_path, data=f"npz:{path}"), str(path), "'x'")


def test_zero_d_labels_and_images_are_refused(tmp_path):
    _refused(_train(tmp_path, data=f"npz:{_small(tmp_path, y=np.array(3))}"),
             "labels must have shape (N,)")
    _refused(_train(tmp_path, data=f"npz:{_small(tmp_path, 'x0.npz', x=np.array(3))}"),
             "images must have shape")
    path = _small(tmp_path, "c0.npz", classes=np.array("a"))  # iterating a 0-d array: TypeError
    _refused(_train(tmp_path, data=f"npz:{path}"), "classes must be a 1-D array")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}] * 4, dtype=object), y=np.array([0, 1, 1, 0]))
    with pytest.raises(DataError, match="holds Python objects") as err:
        load_data(f"npz:{path}")
    assert "'x'" in str(err.value) and str(path) in str(err.value)
    _refused(_train(tmp_path, data=f"npz:{path}"), "holds Python objects", "never unpickles")


@pytest.mark.parametrize("label, dtype", [(2 ** 63 - 1, np.int64), (2 ** 63, np.uint64),
                                          (10 ** 9, np.int64), (2 ** 62, np.int64),
                                          (1e300, np.float64)])
def test_huge_labels_are_refused_before_any_class_list(tmp_path, label, dtype):
    path = _small(tmp_path, y=np.array([0, 1, label, 0], dtype=dtype))
    with pytest.raises(DataError, match=r"over the limit of 100,000"):
        load_data(f"npz:{path}")
    _refused(_train(tmp_path, data=f"npz:{path}"), "over the limit of 100,000")


def test_huge_labels_are_refused_by_evaluate_too(tmp_path, small_model):
    path = _small(tmp_path, y=np.array([0, 1, 10 ** 9, 0]))
    _refused(_cli(["evaluate", str(small_model), "--data", f"npz:{path}"]),
             "over the limit of 100,000")


def test_too_many_class_names_are_refused(tmp_path):
    path = _small(tmp_path, classes=np.arange(D.MAX_CLASSES + 1))
    with pytest.raises(DataError, match="over the limit of 100,000 classes"):
        load_data(f"npz:{path}")


def test_negative_labels_keep_their_message(tmp_path):
    path = _small(tmp_path, y=np.array([0, -3, 1, 0]))
    with pytest.raises(DataError, match="labels must be >= 0, found -3"):
        load_data(f"npz:{path}")


def test_npy_header_declaring_more_than_the_member_holds_is_refused(tmp_path):
    """An .npy header claiming (10^12,) elements: refused from the header, before numpy
    allocates the array."""
    from numpy.lib import format as npy

    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                     "shape": (10 ** 12,)})
    buf.write(b"\0" * 64)
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue())
        z.writestr("y.npy", _npy(np.zeros(4, np.int64)))
    with pytest.raises(DataError, match=r"declares shape \(1000000000000,\)"):
        load_data(f"npz:{path}")


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_zip_member_declared_size_is_checked_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MAX_DATA_BYTES", 10_000)
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((100, 10, 10), np.uint8), y=np.zeros(100, np.int64))
    inflated = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: inflated.append(a) or real(*a, **k))
    with pytest.raises(KBlocksError, match="over the 9.8 KiB limit"):
        load_data(f"npz:{path}")
    assert not inflated  # np.load never ran
    big = _npz(tmp_path / "file.npz", x=np.ones((100, 10, 10), np.uint8), y=np.zeros(100, int))
    with pytest.raises(KBlocksError, match=r"file.npz is 1\d.\d KiB, over the 9.8 KiB limit"):
        load_data(f"npz:{big}")
    assert not inflated


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("spec", ["npz:{}", "cifar10:{}", "{}"])
def test_fifo_as_data_is_refused_before_reading(tmp_path, spec):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)  # opening it for reading would block forever: nothing may open it
    _refused(_train(tmp_path, data=spec.format(fifo)), "FIFO (named pipe), not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_as_data_is_refused(tmp_path):
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    _refused(_train(tmp_path, data=f"npz:{link}"), "is a device, not a regular file")


def test_junk_npz_names_the_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip at all" * 10)
    _refused(_train(tmp_path, data=f"npz:{path}"), str(path), "not a readable zip archive")


# -- the cifar10 JPEG container ----------------------------------------------------------------


def _container(path, n=6, offsets=None, blobs=None):
    from PIL import Image

    if blobs is None:
        blobs = []
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(buf, format="JPEG")
            blobs.append(buf.getvalue())
    stream = np.frombuffer(b"".join(blobs), np.uint8)
    if offsets is None:
        offsets = np.cumsum([0] + [len(b) for b in blobs])
    np.savez(path, jpeg=stream, offsets=np.asarray(offsets, np.int64),
             labels=np.arange(len(offsets) - 1) % 2)
    return path


def test_container_with_good_offsets_still_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("KBLOCKS_NO_CACHE", "1")
    d = load_data(f"cifar10:{_container(tmp_path / 'ok.npz')}")
    assert d.x.shape == (6, 8, 8, 3)


@pytest.mark.parametrize("case, expect", [
    ("shifted", "image 0"),          # every image starts 3 bytes late: not a JPEG
    ("outside", "outside the"),      # the last offset past the end of jpeg
    ("backwards", "offsets must increase"),
    ("scalar", "offsets must be a 1-D integer array"),
])
def test_container_with_wrong_offsets_names_the_image(tmp_path, monkeypatch, case, expect):
    monkeypatch.setenv("KBLOCKS_NO_CACHE", "1")
    good = _container(tmp_path / "ok.npz")
    with np.load(good) as z:
        jpeg, offsets = z["jpeg"], z["offsets"].copy()
    if case == "shifted":
        offsets[:-1] += 3
    elif case == "outside":
        offsets[-1] += 1000
    elif case == "backwards":
        offsets[2], offsets[3] = offsets[3], offsets[2]
    else:
        offsets = np.array(5)
    path = tmp_path / "bad.npz"
    labels = np.zeros(max(offsets.size - 1, 1), np.int64)
    np.savez(path, jpeg=jpeg, offsets=offsets, labels=labels)
    _refused(_train(tmp_path, data=f"cifar10:{path}"), expect)


def test_truncated_jpeg_in_container_names_the_image(tmp_path, monkeypatch):
    monkeypatch.setenv("KBLOCKS_NO_CACHE", "1")
    from PIL import Image

    blobs = []
    for i in range(3):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 50 * i, np.uint8)).save(buf, format="JPEG")
        blobs.append(buf.getvalue())
    blobs[2] = blobs[2][:len(blobs[2]) // 3]
    path = _container(tmp_path / "trunc.npz", blobs=blobs)
    with pytest.raises(DataError, match=r"image 2 \(bytes"):
        load_data(f"cifar10:{path}")


# -- images: folders ---------------------------------------------------------------------------


def _folder(root, n=3):
    from PIL import Image

    for k, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((10, 14, 3), 40 * k + i, np.uint8)).save(
                root / name / f"{i}.png")
    return root


def test_images_folder_reads_as_keras_did(tmp_path):
    """Pixels equal keras.utils.image_dataset_from_directory's (bilinear, no antialiasing)."""
    import keras

    from PIL import Image

    root = tmp_path / "imgs"
    rng = np.random.default_rng(1)
    for name in ["a", "b"]:
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (13, 17, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (9, 9), dtype=np.uint8)).save(root / "b" / "gray.png")
    d = load_data(f"images:{root}", image_size="8x12")
    ds = keras.utils.image_dataset_from_directory(str(root), labels="inferred", label_mode="int",
                                                  image_size=(8, 12), batch_size=64,
                                                  shuffle=False, verbose=False)
    x, y = next(iter(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(d.y, y)
    np.testing.assert_array_equal(d.x, np.clip(np.round(x), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("bad", ["text", "truncated", "empty"])
def test_bad_image_in_a_folder_is_named_before_training(tmp_path, bad):
    root = _folder(tmp_path / "imgs")
    target = root / "dog" / "9.png"
    if bad == "text":
        target.write_text("this is not a PNG\n")
    elif bad == "truncated":
        raw = (root / "dog" / "0.png").read_bytes()
        target.write_bytes(raw[:len(raw) // 2])
    else:
        target.write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_data(f"images:{root}", image_size=8)
    assert str(target) in str(err.value)
    result = _train(tmp_path, "--image-size", "8", data=f"images:{root}")
    _refused(result, str(target))
    assert not (tmp_path / "run" / "last.keras").exists()  # refused before the first epoch


def _bomb(path, side):
    from PIL import Image

    Image.new("1", (side, side)).save(path, optimize=True)  # a few KB on disk
    return path


def test_decompression_bomb_in_a_folder_is_named(tmp_path):
    root = _folder(tmp_path / "imgs")
    bomb = _bomb(root / "cat" / "bomb.png", 10_000)  # 10^8 pixels: PIL only warns
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match="over the limit of 40,000,000 pixels") as err:
        load_data(f"images:{root}", image_size=8)
    assert str(bomb) in str(err.value)
    _refused(_train(tmp_path, "--image-size", "8", data=f"images:{root}"), str(bomb),
             "decompression bomb")


def test_pils_own_bomb_error_is_named_too(tmp_path, monkeypatch):
    from PIL import Image

    root = _folder(tmp_path / "imgs")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)  # 10x14 > 2x60: a PIL "bomb"
    with pytest.raises(DataError, match="decompression bomb") as err:
        load_data(f"images:{root}", image_size=8)
    assert "image file" in str(err.value) and str(root) in str(err.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_in_an_image_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "imgs")
    os.mkfifo(root / "cat" / "pipe.png")
    with pytest.raises(KBlocksError, match="pipe.png is a FIFO"):
        load_data(f"images:{root}", image_size=8)


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expect", [
    ("99999999999", "over the limit of 4096 pixels on a side"),
    ("4097x8", "over the limit of 4096"),
    ("9" * 5000, "cannot read image size"),
    ("0", "must be positive"),
])
def test_image_size_is_bounded(tmp_path, value, expect):
    _refused(_train(tmp_path, "--image-size", value), "--image-size", expect)


def test_resize_checks_the_resulting_size(tmp_path):
    """--image-size 3000 on digits would be 1,797 x 3000 x 3000 bytes (15 GiB)."""
    _refused(_train(tmp_path, "--image-size", "3000"), "over the 4.0 GiB limit", "--image-size")
    with pytest.raises(DataError, match="resizing"):
        D.resize_images(np.zeros((1797, 8, 8, 1), np.uint8), 3000)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_warmup_must_be_finite_and_not_negative(tmp_path, value):
    _refused(_train(tmp_path, "--warmup", value), "--warmup", "finite number of epochs >= 0")


@pytest.mark.parametrize("value", ["-1", str(2 ** 32), str(2 ** 64)])
def test_seed_is_32_bit(tmp_path, value):
    _refused(_train(tmp_path, "--seed", value), "--seed", "between 0 and 4,294,967,295")


def test_seed_limits_in_python():
    from kblocks.training.config import check_seed

    assert check_seed(2 ** 32 - 1) == 2 ** 32 - 1 and check_seed(0) == 0 and check_seed(None) is None
    for bad in (-1, 2 ** 32, 10 ** 5000, 1.5, True, "x"):
        with pytest.raises(ConfigError):
            check_seed(bad)


def test_augment_list_is_bounded(tmp_path):
    _refused(_train(tmp_path, "--augment", ",".join(["flip"] * 2000)), "--augment",
             "2,000 augmentations, over the limit of 32")
    _refused(_train(tmp_path, "--augment", "crop99999999999"), "--augment", "over the limit")


@pytest.fixture
def small_model(tmp_path):
    import kblocks

    path = tmp_path / "m.keras"
    kblocks.build("CONV(4)-GAP-FC(2)", input_shape=(8, 8, 1)).save(path)
    return path


def test_evaluate_names_the_largest_label_and_the_outputs(tmp_path, small_model):
    path = _small(tmp_path, y=np.array([0, 1, 5, 0]))
    _refused(_cli(["evaluate", str(small_model), "--data", f"npz:{path}"]),
             "2 outputs", "largest label, 5")


@pytest.mark.parametrize("extra, expect", [
    (["--seed", "-1", "--val-split", "2"], "between 0 and"),
    (["--image-size", "99999999999"], "--image-size"),
])
def test_evaluate_checks_its_options(tmp_path, small_model, extra, expect):
    path = _small(tmp_path)
    _refused(_cli(["evaluate", str(small_model), "--data", f"npz:{path}", *extra]), expect)


@pytest.mark.parametrize("record", ["[1, 2]", '{"config": 5}', "\xff"])
def test_evaluate_run_record_that_is_not_one(tmp_path, small_model, record):
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_bytes(record.encode("latin-1"))
    _refused(_cli(["evaluate", str(small_model), "--run", str(run)]), "run")
