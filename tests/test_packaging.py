"""The wheel holds every subpackage, the grammar, the built-in blocks, the zoo and the search spaces."""
import configparser
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
