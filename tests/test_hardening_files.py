"""Issue 20, hardening v2: model files, YAML and the command line, allocation limits, a full disk.

Each test holds one row of the issue (docs/hardening.md, "Model files, YAML, outputs and a full
disk"); each failed before the change it tests. Disk-full rows inject ``OSError(ENOSPC)`` in the
atomic writer (``os.replace``) or in the writer it wraps, and check that the message names the
file being written and the files that still hold what, and that those are byte-identical.
"""
import errno
import json
import os
import subprocess
import sys
import threading
import zipfile

import keras
import pytest
from click.testing import CliRunner

import kblocks
from conftest import ROOT, patch_zip_headers
from kblocks.cli import main
from kblocks.common import atomic, files, saving
from kblocks.common.errors import ArchitectureError, ConfigError, LimitError
from kblocks.lang import limits


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_line_exit_2(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.output, result.output


@pytest.fixture(scope="module")
def good_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "good.keras"
    saving.save_model(kblocks.build("FC(4)", input_shape=(3,)), path)
    return path


@pytest.fixture
def keras_never_opens(monkeypatch):
    def trap(*args, **kwargs):
        raise AssertionError("Keras was given the file")

    monkeypatch.setattr(keras.saving, "load_model", trap)


# --- model files -------------------------------------------------------------------------------

def test_config_nested_10k_deep_is_refused_before_parsing(tmp_path, keras_never_opens):
    deep = tmp_path / "deep.keras"
    with zipfile.ZipFile(deep, "w") as z:
        z.writestr("config.json", "[" * 10_000 + "]" * 10_000)  # was RecursionError
        z.writestr("metadata.json", "{}")
    with pytest.raises(saving.ModelFileError, match=r"nests 10,000 levels deep, over the limit "
                                                    rf"of {saving.MAX_CONFIG_DEPTH}"):
        saving.load_model(deep)


def test_encrypted_member_is_refused_before_keras(tmp_path, good_keras, keras_never_opens):
    enc = tmp_path / "enc.keras"
    enc.write_bytes(good_keras.read_bytes())
    patch_zip_headers(enc, (6, 8), 0x1)  # was Keras' "password required for extraction"
    with pytest.raises(saving.ModelFileError, match=r"cannot load .*enc.keras: member "
                                                    r"'.*' is encrypted"):
        saving.load_model(enc)


def test_unknown_compression_method_is_refused_before_keras(tmp_path, good_keras,
                                                            keras_never_opens):
    odd = tmp_path / "odd.keras"
    odd.write_bytes(good_keras.read_bytes())
    patch_zip_headers(odd, (8, 10), 99)  # was NotImplementedError / "method is not supported"
    with pytest.raises(saving.ModelFileError, match="compression method 99, not stored or "
                                                    "deflated"):
        saving.load_model(odd)


def test_declared_size_is_checked_before_inflating(tmp_path, keras_never_opens):
    """A file that declares far more than it holds (the issue's 1.6 MB file whose weights expand
    to 1.5 GiB) is refused from its zip directory: Keras stores members uncompressed."""
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("model.weights.h5", os.urandom(1 << 20))
    patch_zip_headers(bomb, (22, 24), 200 << 20, fmt="<I")  # declared (inflated) size: 200 MiB
    with pytest.raises(saving.ModelFileError, match="would inflate from .* to 200.0 MiB .*zip "
                                                    "bomb"):
        saving.load_model(bomb)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_as_model_or_weights_is_refused_without_blocking(tmp_path):
    from kblocks.training import transfer

    fifo = tmp_path / "w.weights.h5"
    os.mkfifo(fifo)

    def build(classes):
        raise AssertionError("the architecture was built before the file was checked")

    with pytest.raises(saving.ModelFileError, match=r"is a FIFO \(named pipe\), not a regular"):
        transfer.prepare(fifo, classes=2, input_shape=(8, 8, 3), build=build)
    model_fifo = tmp_path / "m.keras"
    os.mkfifo(model_fifo)
    with pytest.raises(saving.ModelFileError, match="FIFO"):
        saving.load_model(model_fifo)


# --- YAML and the command line -----------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_yaml_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "arch.yaml"
    os.mkfifo(fifo)

    def writer():  # before the change the FIFO was read: this made it succeed, not hang
        with open(fifo, "w") as f:
            f.write("network: CONV-GAP-FC(2)\ninput: [8, 8, 3]\n")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConfigError, match=r"arch.yaml: cannot read: it is a FIFO"):
            kblocks.compile(str(fifo))
        with pytest.raises(ConfigError, match="FIFO"):
            kblocks.compile("CONV-GAP-FC(2)", input_shape=(8, 8, 3), blocks=str(fifo))
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer finish
        thread.join(5)
        os.close(fd)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_yaml_link_to_a_device_is_refused_in_bounded_memory(tmp_path):
    """In a process limited to 1 GiB of address space (the read of /dev/zero was a MemoryError at
    1.8 GB): the architecture file and --blocks, each a link to /dev/zero and /dev/urandom."""
    for device in ("/dev/zero", "/dev/urandom"):
        (tmp_path / f"{os.path.basename(device)}.yaml").symlink_to(device)
    script = tmp_path / "probe.py"
    script.write_text(
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from kblocks.lang import api\n"
        "for name in ('zero', 'urandom'):\n"
        "    link = sys.argv[1] + '/' + name + '.yaml'\n"
        "    for call in (lambda: api.compile(link),\n"
        "                 lambda: api.load_architecture_blocks(link)):\n"
        "        try:\n"
        "            call()\n"
        "        except BaseException as err:\n"
        "            print(type(err).__name__, str(err).splitlines()[0])\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=120).stdout.splitlines()
    assert len(out) == 4 and all(line.startswith("ConfigError") and "is a device, not a regular "
                                 "file" in line for line in out), out


def test_yaml_int_of_5000_digits_names_its_line(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("network: CONV-GAP-FC(2)\ninput: [8, 8, 3]\nvars:\n  N: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml, line 4: a whole number of 5,000 "
                                          r"characters"):  # was ValueError from int()
        kblocks.compile(str(path))


def test_blocks_file_over_the_limit_is_refused_before_reading_it(tmp_path, monkeypatch):
    big = tmp_path / "blocks.yaml"
    big.write_bytes(b"blocks:\n" + b"# padding\n" * 200_000)  # 2 MB
    read = []
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: read.append(n) or real(fd, n))
    monkeypatch.setattr(type(big), "read_text", lambda *a, **k: pytest.fail("read it all"))
    with pytest.raises(ConfigError, match="over the 1,000,000-byte limit"):
        kblocks.compile("CONV-GAP-FC(2)", input_shape=(8, 8, 3), blocks=str(big))
    assert sum(read) <= 1_000_001


def test_classes_given_twice_on_the_command_line():
    result = _cli("summary", "CONV(4)-GAP-FC(classes)", "--input-shape", "8,8,3",
                  "--classes", "3", "--set", "classes=3")  # was TypeError: multiple values
    _one_line_exit_2(result, "the number of classes is given twice: --classes 3 and --set "
                     "classes 3")
    alone = _cli("summary", "CONV(4)-GAP-FC(classes)", "--input-shape", "8,8,3",
                 "--set", "classes=5")
    assert alone.exit_code == 0 and "5 classes" in alone.output, alone.output


def test_a_variable_named_like_a_build_argument_is_the_texts_variable():
    """``--set`` goes to ``variables=``: a variable called ``name`` binds the text's variable and
    never the build argument of that name (it was a TypeError or a silent rebinding)."""
    result = _cli("summary", "CONV(4)-GAP-FC(name)", "--input-shape", "8,8,3", "--set", "name=4",
                  "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["outputs"] == "logits (4 classes)"
    assert record["params"] == (3 * 3 * 3 * 4 + 4) + (4 * 4 + 4)
    result = _cli("summary", "CONV(4)-GAP-FC(2)", "--set", "input_shape=3")
    _one_line_exit_2(result, "no input shape")  # a text variable, not the build's input_shape


def test_output_under_a_file_is_refused_before_any_work(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0\n")
    result = _cli("build", "CONV(4)-GAP-FC(2)", "--input-shape", "8,8,3",
                  "-o", passwd / "x.keras")  # was FileExistsError
    _one_line_exit_2(result, "passwd is a file, not a folder")
    assert passwd.read_text() == "root:x:0:0\n"


def test_keras_refusing_a_value_when_building_is_positioned(monkeypatch):
    """Keras checks many keyword values only when the layer builds its weights (BN(axis=7) was an
    IndexError there): any such refusal names the layer's line and column."""
    def refuses(self, input_shape):
        raise IndexError("list index out of range")

    monkeypatch.setattr(keras.layers.BatchNormalization, "build", refuses)
    text = "INPUT(8, 8, 3)-CONV(4)-\n  BN-GAP-FC(2)"
    with pytest.raises(ArchitectureError) as info:
        kblocks.build(text)
    assert info.value.span.line == 2 and info.value.span.column == 3
    assert "Keras refused BatchNormalization: list index out of range" in str(info.value)


def test_bn_axis_7_is_a_positioned_error():
    with pytest.raises(ArchitectureError) as info:
        kblocks.build("INPUT(8, 8, 3)-BN(axis=7)")
    assert info.value.span.column == 19 and "axis" in str(info.value)


# --- allocation --------------------------------------------------------------------------------

def test_weight_limits_fit_the_documented_memory():
    assert limits.MAX_PARAMS * limits.BYTES_PER_WEIGHT <= 16e9
    assert limits.MAX_WEIGHT_ELEMENTS * limits.BYTES_PER_WEIGHT <= 4e9
    assert saving.MAX_MODEL_BYTES >= limits.MAX_PARAMS * limits.BYTES_PER_WEIGHT


@pytest.mark.parametrize("text,words", [
    ("INPUT(1,1,44000)-FLATTEN-[FC(44000)]*10-FC(10)", "its weights have 1,936,044,000 elements"),
    ("INPUT(30000)-[FC(30000)]*5", "more than 4,000,000,000 parameters"),
    ("INPUT(100000)-FC(100000)", "over the limit of 1,000,000,000 for one layer"),
    ("INPUT(64)-FC(10, lora_rank=2147483647)", "FC does not take lora_rank"),
])
def test_what_the_limits_admit_is_refused_before_keras(monkeypatch, text, words):
    import kblocks.lang.emit

    monkeypatch.setattr(kblocks.lang.emit, "emit", lambda *a, **k: pytest.fail("Keras was used"))
    with pytest.raises(ArchitectureError, match=words):
        kblocks.build(text)


def test_parameter_limit_error_is_a_limit_error():
    with pytest.raises(LimitError, match="GB of float32 weights"):
        kblocks.compile("INPUT(30000)-[FC(30000)]*5")


# --- a full disk -------------------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_writer_on_a_full_disk_keeps_the_target(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    target.write_text('{"old": 1}')
    monkeypatch.setattr(os, "replace", _enospc)
    with pytest.raises(files.DiskFullError) as info:
        atomic.write_json(target, {"new": 2})
    msg = str(info.value)
    assert f"no space left on the device while writing {target}" in msg
    assert f"nothing lost: {target} still holds its previous content" in msg
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC  # caches skip it
    assert target.read_text() == '{"old": 1}' and os.listdir(tmp_path) == ["run.json"]


def test_read_only_target_is_said_in_words(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(files.UserFileError, match=r"cannot write .*x.txt: the file system is "
                                                  r"read-only"):
        atomic.write_text(tmp_path / "x.txt", "x")


def test_checkpoint_on_a_full_disk_says_which_epoch_is_kept(tmp_path, monkeypatch):
    from kblocks.training.callbacks import AtomicCheckpoint

    model = kblocks.build("FC(2)", input_shape=(3,))
    cb = AtomicCheckpoint(best_path=tmp_path / "best.keras", last_path=tmp_path / "last.keras",
                          state_path=tmp_path / "state.json", monitor="loss")
    cb.set_model(model)
    cb.on_epoch_end(0, {"loss": 1.0})
    cb.on_epoch_end(1, {"loss": 0.5})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(os, "replace", _enospc)
    with pytest.raises(files.DiskFullError) as info:
        cb.on_epoch_end(2, {"loss": 0.25})  # best.keras is written first, and fails
    msg = str(info.value)
    assert f"while writing {tmp_path / 'best.keras'}" in msg
    assert (f"nothing lost: {tmp_path / 'last.keras'} still holds epoch 2, "
            f"{tmp_path / 'best.keras'} epoch 2 (resume with kblocks train --resume "
            f"{tmp_path})") in msg
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_run_record_on_a_full_disk_names_the_checkpoints(tmp_path, monkeypatch):
    from kblocks.training import runfolder

    (tmp_path / "last.keras").write_bytes(b"model")
    runfolder.write_json(tmp_path / "state.json", {"epochs_done": 4, "best_epoch": 3})
    monkeypatch.setattr(os, "replace", _enospc)
    with pytest.raises(files.DiskFullError, match=rf"while writing {tmp_path / 'run.json'}; "
                                                  rf"nothing lost: {tmp_path / 'last.keras'} "
                                                  r"still holds epoch 4 \(resume"):
        runfolder.write_json(tmp_path / "run.json", {"status": "done"})


def test_build_on_a_full_disk_exits_2_and_keeps_the_old_model(tmp_path, monkeypatch):
    out = tmp_path / "m.keras"
    assert _cli("build", "FC(3)", "--input-shape", "4", "-o", out).exit_code == 0
    old = out.read_bytes()
    monkeypatch.setattr(os, "replace", _enospc)
    result = _cli("build", "FC(5)", "--input-shape", "4", "-o", out, "--overwrite")
    _one_line_exit_2(result, f"no space left on the device while writing {out}",
                     f"nothing lost: {out} still holds its previous content")
    assert out.read_bytes() == old and os.listdir(tmp_path) == ["m.keras"]


def test_keras_writer_that_reports_a_full_disk_in_its_words(tmp_path, monkeypatch):
    model = kblocks.build("FC(2)", input_shape=(3,))
    target = tmp_path / "trial.weights.h5"
    saving.save_weights(model, target)
    old = target.read_bytes()

    def h5py_full(self, filepath, *a, **k):  # h5py: "Unable to synchronously create file
        raise RuntimeError("Unable to create file (errno = 28, error message = 'No space "
                           "left on device')")

    monkeypatch.setattr(keras.Model, "save_weights", h5py_full)
    with pytest.raises(files.DiskFullError, match=rf"while writing {target}; nothing lost"):
        saving.save_weights(model, target)
    assert target.read_bytes() == old and os.listdir(tmp_path) == ["trial.weights.h5"]


def test_export_on_a_full_disk_is_one_line(tmp_path):
    from kblocks.cli.zoo import export_saved_model

    class Model:
        def export(self, path, **kwargs):
            raise RuntimeError("Failed to write: No space left on device")  # TensorFlow's words

    with pytest.raises(files.DiskFullError, match=r"while writing the SavedModel .*sm"):
        export_saved_model(Model(), tmp_path / "sm")
    assert os.listdir(tmp_path) == []


def test_png_writer_on_a_full_disk(tmp_path, monkeypatch):
    from kblocks.inspect import plotting

    fig = plotting._new_figure(next(iter(plotting.FIGSIZE)))
    monkeypatch.setattr(os, "replace", _enospc)
    with pytest.raises(files.DiskFullError, match=r"while writing .*cam.png"):
        plotting.save_figure(fig, tmp_path / "cam.png")
    assert os.listdir(tmp_path) == []


def test_any_oserror_escaping_a_command_is_one_line(monkeypatch):
    import kblocks.cli.core

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/ro/x.keras")

    monkeypatch.setattr(kblocks.cli.core, "check_output", read_only)
    result = _cli("build", "FC(2)", "--input-shape", "3", "-o", "/ro/x.keras")
    _one_line_exit_2(result, "cannot write /ro/x.keras: the file system is read-only")


def test_a_yaml_variable_contradicting_classes_is_refused(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("network: CONV-GAP-FC(classes)\ninput: [8, 8, 3]\nclasses: 10\n"
                    "vars:\n  classes: 5\n")  # was built with 5 classes, silently
    with pytest.raises(ConfigError, match=r"a.yaml, line 5: the variable classes \(5\) "
                                          r"contradicts 'classes: 10' at line 3"):
        kblocks.compile(str(path))
