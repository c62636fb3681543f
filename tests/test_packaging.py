"""The wheel holds every subpackage, the grammar, the built-in blocks, the zoo and the search spaces."""
import configparser
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


def test_every_subpackage_is_listed_in_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {"kblocks." + ".".join(p.parent.relative_to(ROOT / "kblocks").parts)
             for p in (ROOT / "kblocks").rglob("__init__.py") if p.parent != ROOT / "kblocks"}
    assert found <= listed, f"add to setup.cfg packages: {sorted(found - listed)}"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("kblocks-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("kblocks/grammar.lark", "kblocks/builtin_blocks.yaml", "kblocks/cli/__init__.py",
                     "kblocks/inspect/__init__.py", "kblocks/search/__init__.py",
                     "kblocks/architectures/resnet50.yaml", "kblocks/tuning/cs231n_pattern.yaml"):
        assert required in names, required
