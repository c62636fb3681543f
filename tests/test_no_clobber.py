"""Nothing runs, nothing is destroyed (issue 21, points 1-4): a stored record never grants unsafe
loading, writes never follow symlinks kblocks did not make, and outputs never replace a file
kblocks did not write. Every case uses real files; each failed on the main before the fix."""
import json
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kblocks.training import runfolder

from kblocks.common import saving
from kblocks.cli import main
from kblocks.training import TrainConfig, train

FAST = ["--data", "digits", "--subset", "200", "--val-split", "40", "--epochs", "1",
        "--batch-size", "50", "--no-tensorboard", "-q"]


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _marker_lambda_model(path, marker):
    """A model whose Lambda layer writes ``marker`` when Keras rebuilds it from the file: the
    proof that loading ran code from the file."""
    inputs = keras.Input((8, 8, 1))
    payload = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")  # path in the code
    x = keras.layers.Lambda(payload, name="payload")(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(path)
    if os.path.exists(marker):
        os.unlink(marker)  # made while building it here


# -- 1. unsafe comes only from the caller -----------------------------------------------------

def test_a_tampered_run_record_never_grants_unsafe_loading(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "code-ran"
    _marker_lambda_model(run / "last.keras", marker)
    (run / "run.json").write_text(json.dumps({
        "config": {"data": "digits", "epochs": 2, "unsafe": True, "tensorboard": False,
                   "verbose": 0},
        "seed": 1, "architecture": "CONV(4)-GAP-FC"}))
    (run / "state.json").write_text(json.dumps({"epochs_done": 1}))

    with pytest.raises(saving.UnsafeModelError, match="--unsafe"):
        train(None, None, out=run, resume=True, epochs=3)
    assert not marker.exists()
    r = _cli("train", "--resume", run, "--epochs", "3", "-q")
    assert r.exit_code == 2 and "--unsafe" in r.output and "Traceback" not in r.output
    assert not marker.exists()
    # the control: the file really runs code when the caller grants it
    saving.load_model(run / "last.keras", unsafe=True)
    assert marker.exists()


def test_records_never_store_or_restore_unsafe():
    cfg = TrainConfig(data="digits", unsafe=True)
    assert "unsafe" not in cfg.to_record()
    assert TrainConfig.from_record({"data": "digits", "unsafe": True}).unsafe is False
    assert TrainConfig.from_record({"data": "digits", "unsafe": True}, unsafe=True).unsafe is True


def test_a_tampered_search_record_never_grants_unsafe_loading(tmp_path):
    from kblocks.search.runner import SearchConfig, _from_folder

    (tmp_path / "search.json").write_text(json.dumps({
        "format": 1, "space": "CONV({f: 4|8})-GAP-FC", "seed": 0, "budget": {},
        "train": {"data": "digits", "unsafe": True},
        "tuner": {"kind": "random", "trials": 2, "objective": "val_accuracy", "max_epochs": 1,
                  "factor": 3, "hyperband_iterations": 1, "population": 4, "sample_size": 2,
                  "initial_points": 2}}))
    cfg = _from_folder(SearchConfig(space=None, out=str(tmp_path), resume=True))
    assert cfg.train.unsafe is False


# -- 2, 3. no write follows a symlink kblocks did not make -----------------------------------

def test_the_run_folders_write_test_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("DATA\n")
    out = tmp_path / "d"
    out.mkdir()
    (out / ".write-test").symlink_to(victim)
    runfolder.prepare_run_dir(out)
    assert victim.read_text() == "DATA\n"


def test_atomic_writes_replace_a_planted_link_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("DATA\n")
    (tmp_path / "history.csv").symlink_to(victim)
    runfolder.write_text(tmp_path / "history.csv", "epoch\n1\n")
    assert victim.read_text() == "DATA\n"
    assert not (tmp_path / "history.csv").is_symlink()


def test_the_decode_cache_never_follows_planted_links(tmp_path, monkeypatch):
    from kblocks.training.data import Cifar10

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("KBLOCKS_CACHE", str(cache))
    monkeypatch.delenv("KBLOCKS_NO_CACHE", raising=False)
    source = tmp_path / "c.npz"
    source.write_bytes(b"x")
    key = Cifar10._key(source)
    victim = tmp_path / "victim.txt"
    victim.write_text("DATA\n")
    for pid in range(os.getpid() - 5, os.getpid() + 50):  # the old name: .{key}.{pid}.tmp
        (cache / f".{key.name}.{pid}.tmp").symlink_to(victim)
    images = np.zeros((2, 4, 4, 3), np.uint8)
    Cifar10("cifar10:" + str(source))._store(source, images)
    assert victim.read_text() == "DATA\n"
    assert key.is_file() and not key.is_symlink()
    assert np.array_equal(np.load(key), images)
    # a link planted at the key itself is not read through
    key.unlink()
    np.save(tmp_path / "evil.npy", np.ones((2, 4, 4, 3), np.uint8))
    key.symlink_to(tmp_path / "evil.npy")
    assert Cifar10("cifar10:" + str(source))._cached(source) is None


# -- 4. outputs never replace a file kblocks did not write ------------------------------------

@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.keras"
    assert _cli("build", "CONV(4)-RELU-GAP-FC(10)", "--input-shape", "8,8,1", "-o",
                path).exit_code == 0
    return path


def test_inspect_output_must_be_a_png_and_never_the_model(small_model, tmp_path):
    before = small_model.read_bytes()
    for target in (small_model, tmp_path / "maps.jpg", tmp_path / "x.keras"):
        r = _cli("inspect", small_model, "-m", "filters", "-o", target)
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output
    assert small_model.read_bytes() == before
    assert not (tmp_path / "x.keras").exists()
    r = _cli("inspect", small_model, "-m", "filters", "-o", tmp_path / "f.png")
    assert r.exit_code == 0 and (tmp_path / "f.png").is_file()


def test_build_refuses_an_existing_file_without_overwrite(small_model, tmp_path):
    out = tmp_path / "existing.keras"
    out.write_bytes(b"mine")
    r = _cli("build", "CONV(4)-GAP-FC(3)", "--input-shape", "8,8,1", "-o", out)
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert out.read_bytes() == b"mine"
    r = _cli("build", "CONV(4)-GAP-FC(3)", "--input-shape", "8,8,1", "-o", out, "--overwrite")
    assert r.exit_code == 0 and saving.load_model(out).count_params() > 0


def test_plot_output_suffix_is_checked(tmp_path):
    r = _cli("plot", "CONV(4)-GAP-FC(3)", "--input-shape", "8,8,1", "-o", tmp_path / "a.keras")
    assert r.exit_code == 2 and ".png" in r.output


def test_a_fresh_run_never_replaces_files_in_a_folder_without_run_json(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.txt").write_text("my notes\n")
    (out / "logs").mkdir()
    (out / "logs" / "keep.txt").write_text("keep\n")
    for extra in ([], ["--overwrite"]):
        r = _cli("train", "CONV(4)-RELU-GAP-FC", *FAST, "--out", out, *extra)
        assert r.exit_code == 2, r.output
        assert "summary.txt" in r.output and "did not write" in r.output
    assert (out / "summary.txt").read_text() == "my notes\n"
    assert (out / "logs" / "keep.txt").read_text() == "keep\n"
    assert not (out / "run.json").exists()


def test_overwrite_removes_only_what_the_run_record_lists(tmp_path):
    out = tmp_path / "run"
    assert _cli("train", "CONV(4)-RELU-GAP-FC", *FAST, "--out", out).exit_code == 0
    record = json.loads((out / "run.json").read_text())
    assert "logs" not in record["files"] and "best.keras" in record["files"]
    (out / "notes.txt").write_text("mine\n")
    (out / "logs").mkdir()  # the user's, not TensorBoard's: this run had --no-tensorboard
    (out / "logs" / "mine.txt").write_text("mine\n")
    r = _cli("train", "CONV(4)-RELU-GAP-FC", *FAST, "--out", out, "--overwrite")
    assert r.exit_code == 2 and "logs/" in r.output
    (out / "logs" / "mine.txt").unlink()
    (out / "logs").rmdir()
    r = _cli("train", "CONV(4)-RELU-GAP-FC", *FAST, "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "best.keras").is_file()


def test_overwrite_never_removes_the_model_the_run_reads(tmp_path):
    out = tmp_path / "run"
    assert _cli("train", "CONV(4)-RELU-GAP-FC", *FAST, "--out", out).exit_code == 0
    before = (out / "best.keras").read_bytes()
    r = _cli("train", "--transfer", out / "best.keras", *FAST, "--out", out, "--overwrite")
    assert r.exit_code == 2 and "best.keras" in r.output and "reads" in r.output
    assert (out / "best.keras").read_bytes() == before


def test_export_overwrite_never_replaces_a_folder_that_is_not_a_saved_model(small_model,
                                                                             tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    inside = folder / "best.keras"
    inside.write_bytes(small_model.read_bytes())
    (folder / "notes.txt").write_text("mine\n")
    r = _cli("export", inside, "-o", folder, "--overwrite")
    assert r.exit_code == 2 and "best.keras" in r.output
    assert inside.read_bytes() == small_model.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    r = _cli("export", small_model, "-o", other, "--overwrite")
    assert r.exit_code == 2 and "not a SavedModel" in r.output
    assert (other / "notes.txt").read_text() == "mine\n"
