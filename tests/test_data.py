"""Data sources, the seeded stratified split, and the checks that run before any training."""
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kblocks.training.data import (ArrayData, check_fits, load_data, parse_image_size, sources, split_data,
                          stratified_subset)
from kblocks.common.errors import ConfigError, DataError


def test_registry_lists_every_source():
    assert {"digits", "npz", "cifar10", "images", "tfds"} <= set(sources())


def test_digits_are_uint8_images_scaled_to_255():
    d = load_data("digits")
    assert d.x.shape == (1797, 8, 8, 1) and d.x.dtype == np.uint8
    assert d.x.max() == 255 and d.x.min() == 0
    assert d.num_classes == 10 and d.classes[0] == "0"
    assert sorted(np.unique(d.y)) == list(range(10))


def test_digits_takes_no_argument():
    with pytest.raises(DataError, match="takes no argument"):
        load_data("digits:foo")


def test_npz_adds_channel_axis_and_reads_classes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 5, 4), np.uint8), y=np.array([0, 1, 2, 0, 1, 2]),
             classes=np.array(["a", "b", "c"]))
    d = load_data(f"npz:{path}")
    assert d.x.shape == (6, 5, 4, 1) and d.classes == ["a", "b", "c"]
    # a bare .npz path is read as npz:
    assert load_data(str(path)).input_shape == (5, 4, 1)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 8, 8)), labels=np.zeros(4)), "missing array"),
    (dict(x=np.zeros((4, 8, 8)), y=np.zeros(3, int)), "4 images but 3 labels"),
    (dict(x=np.zeros((4, 8, 8)), y=np.zeros((4, 10))), r"labels must have shape \(N,\)"),
    (dict(x=np.zeros((4, 8)), y=np.zeros(4, int)), r"images must have shape"),
    (dict(x=np.zeros((4, 3, 8, 8)), y=np.zeros(4, int)), "channels-first"),
    (dict(x=np.zeros((4, 8, 8)), y=np.array([0, 1, -1, 0])), "must be >= 0"),
    (dict(x=np.zeros((4, 8, 8)), y=np.array([0, 1, 2, 3]), classes=np.array(["a", "b"])),
     "out of range for 2 classes"),
    (dict(x=np.zeros((4, 8, 8)), y=np.array([0.5, 1, 2, 3])), "whole numbers"),
])
def test_npz_mistakes_are_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as err:
        load_data(f"npz:{path}")
    assert "--data" in str(err.value)


def test_missing_file_and_unknown_source():
    with pytest.raises(DataError, match="no such file"):
        load_data("npz:/nonexistent/x.npz")
    with pytest.raises(DataError, match="unknown data source"):
        load_data("mnist-from-the-moon")


def _jpeg_container(path, n=20, size=12, classes=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size)
    base = rng.uniform(40, 200, size=(n, 1, 1, 3))  # smooth images survive JPEG well
    images = (base + 50 * ramp[None, :, None, None] - 25 * ramp[None, None, :, None]).astype(np.uint8)
    blobs, offsets = [], [0]
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        offsets.append(offsets[-1] + len(blobs[-1]))
    labels = (np.arange(n) % classes).astype(np.uint8)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=np.array(offsets, np.int64), labels=labels,
             classes=np.array([f"c{i}" for i in range(classes)]))
    return images, labels


def test_cifar10_container_decodes_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("KBLOCKS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "small.npz"
    images, labels = _jpeg_container(path)
    d = load_data(f"cifar10:{path}")
    assert d.x.shape == (20, 12, 12, 3) and d.x.dtype == np.uint8
    assert d.classes == ["c0", "c1", "c2", "c3"]
    np.testing.assert_array_equal(d.y, labels)
    assert np.abs(d.x.astype(int) - images.astype(int)).mean() < 20  # JPEG is lossy
    assert list((tmp_path / "cache").glob("cifar10-*.npy"))
    again = load_data(str(path))  # bare path: recognised as the container, read from the cache
    np.testing.assert_array_equal(again.x, d.x)


def test_cifar10_rejects_plain_npz(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x=np.zeros((2, 4, 4)), y=np.zeros(2, int))
    with pytest.raises(DataError, match="not a JPEG container"):
        load_data(f"cifar10:{path}")


def test_images_folder(tmp_path):
    from PIL import Image

    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 14, 3), 40 * k + i, np.uint8)).save(
                tmp_path / name / f"{i}.png")
    d = load_data(f"images:{tmp_path}", image_size="8x12")
    assert d.x.shape == (6, 8, 12, 3) and d.x.dtype == np.uint8
    assert d.classes == ["cat", "dog"] and sorted(d.y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_images_folder_without_classes(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_data(f"images:{tmp_path}")


def test_tfds_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        d = load_data("tfds:mnist", data_dir=str(tmp_path))
    assert d.x.shape == (24, 28, 28, 1) and d.x.dtype == np.uint8
    assert d.num_classes == 10


def test_tfds_missing_dataset_is_a_data_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="data_dir"):
        load_data("tfds:mnist", data_dir=str(tmp_path))


def test_image_size_parsing():
    assert parse_image_size("64") == (64, 64)
    assert parse_image_size("64x48") == (64, 48)
    assert parse_image_size(None) is None
    with pytest.raises(ConfigError, match="image_size"):
        parse_image_size("big")


# -- split ---------------------------------------------------------------------------------


def _toy(counts):
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    x = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1, 1)
    return ArrayData(x, y, [str(k) for k in range(len(counts))], "toy")


def test_split_is_stratified_exact_and_seeded():
    d = load_data("digits")
    train, val = split_data(d, 180, seed=3)
    assert len(val) == 180 and len(train) == 1797 - 180
    assert val.class_counts().tolist() == [18] * 10
    train2, val2 = split_data(d, 0.1, seed=3)  # same size as a fraction: same split
    np.testing.assert_array_equal(val.x, val2.x)
    _, val3 = split_data(d, 180, seed=4)
    assert not np.array_equal(val.x, val3.x)


def test_split_keeps_disjoint_parts_and_order():
    d = _toy([50, 30, 20])
    train, val = split_data(d, 10, seed=0)
    ids_train = train.x.ravel().tolist()
    ids_val = val.x.ravel().tolist()
    assert sorted(ids_train + ids_val) == list(range(100))
    assert ids_train == sorted(ids_train) and ids_val == sorted(ids_val)
    assert val.class_counts().tolist() == [5, 3, 2]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.floats(0.05, 0.6),
       st.integers(0, 2 ** 31 - 1))
def test_split_properties(counts, fraction, seed):
    d = _toy(counts)
    n = len(d)
    want = int(round(fraction * n))
    if want >= n:
        return
    train, val = split_data(d, fraction, seed=seed)
    if want == 0:
        assert val is None
        return
    assert len(val) == want and len(train) + len(val) == n
    assert not set(train.x.ravel().tolist()) & set(val.x.ravel().tolist())
    expected = np.array(counts) * want / n
    assert np.all(np.abs(val.class_counts() - expected) <= 1.0 + 1e-9)
    _, again = split_data(d, fraction, seed=seed)
    np.testing.assert_array_equal(val.x, again.x)


def test_split_mistakes():
    d = _toy([5, 5])
    with pytest.raises(ConfigError, match="leaves no training data"):
        split_data(d, 10)
    with pytest.raises(ConfigError, match="val_split"):
        split_data(d, "lots")
    assert split_data(d, 0)[1] is None


def test_stratified_subset():
    d = load_data("digits")
    s = stratified_subset(d, 500, seed=1)
    assert len(s) == 500 and s.class_counts().min() >= 48
    assert stratified_subset(d, 5000) is d


def test_check_fits_names_the_mismatch():
    d = _toy([3, 3, 3])
    check_fits((1, 1, 1), 3, d)
    with pytest.raises(DataError, match="inputs of shape"):
        check_fits((8, 8, 1), 3, d)
    with pytest.raises(DataError, match="has 10 outputs but toy has 3 classes"):
        check_fits((None, None, 1), 10, d)
