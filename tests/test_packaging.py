"""The wheel holds every subpackage, the grammar, the built-in blocks, the zoo and the search spaces."""
import configparser
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


def test_every_folder_of_python_files_is_a_package_that_setup_finds():
    """setup.cfg lists packages with ``find:``, which skips a folder without ``__init__.py``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options"]["packages"].strip() == "find:"
    folders = {p.parent for p in (ROOT / "kblocks").rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert not missing, f"add __init__.py to {missing}"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("kblocks-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("kblocks/lang/grammar.lark", "kblocks/lang/builtin_blocks.yaml",
                     "kblocks/cli/__init__.py", "kblocks/inspect/__init__.py", "kblocks/search/__init__.py",
                     "kblocks/training/__init__.py", "kblocks/common/__init__.py",
                     "kblocks/zoo/architectures/resnet50.yaml", "kblocks/zoo/architectures/README.md",
                     "kblocks/search/spaces/cs231n_pattern.yaml"):
        assert required in names, required


def _lines(value):
    return [x.strip() for x in value.splitlines() if x.strip() and not x.strip().startswith("#")]


def _options():
    """``(install_requires, {extra: requirements})`` of setup.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {k: _lines(v) for k, v in cfg["options.extras_require"].items()}
    return _lines(cfg["options"]["install_requires"]), extras


def test_pip_install_kblocks_brings_the_default_backend_keras_tuner_and_tfds():
    """Issue 13: no extras needed for a working library and CLI on TensorFlow."""
    requires, extras = _options()
    names = {r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip() for r in requires}
    for needed in ("keras", "tensorflow-cpu", "tensorflow", "tensorflow-datasets", "keras-tuner",
                   "tensorboard"):
        assert needed in names, needed
    markers = [r for r in requires if r.startswith(("tensorflow-cpu", "tensorflow>"))]
    assert all("platform_machine" in m for m in markers) and len(markers) == 2
    assert extras["tf"] == [] and extras["tune"] == []  # kept: `.[tf,tune,dev]` still installs
    assert extras["jax"][0].startswith("jax[cpu]") and "six" in extras["jax"]


NO_BACKEND = """
import sys
import kblocks
assert "keras" not in sys.modules and "tensorflow" not in sys.modules  # import kblocks is light
try:
    kblocks.build("FC(2)", input_shape=(3,))
except kblocks.KBlocksError as err:
    print("LIBRARY", type(err).__name__, isinstance(err, ModuleNotFoundError), err)
"""


def test_no_usable_backend_is_one_line_and_exit_2(tmp_path):
    """KERAS_BACKEND=jax where JAX is not installed: the library raises a BackendError (a
    KBlocksError and a ModuleNotFoundError); the CLI prints one line and exits 2."""
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed here; the check needs a backend that is missing")
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    lib = subprocess.run([sys.executable, "-c", NO_BACKEND], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert lib.returncode == 0, lib.stderr[-3000:]
    assert "LIBRARY BackendError True no Keras backend: the package 'jax' is not installed" in lib.stdout
    cli = subprocess.run([sys.executable, "-m", "kblocks", "build", "resnet18", "-o", "m.keras"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert cli.returncode == 2, cli.stderr[-3000:]
    assert cli.stderr.strip().splitlines() == [
        "error: no Keras backend: the package 'jax' is not installed; install tensorflow (pip "
        "install kblocks) or set KERAS_BACKEND=jax with pip install 'kblocks[jax]'"]
    assert not (tmp_path / "m.keras").exists()
