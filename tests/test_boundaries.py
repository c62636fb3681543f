"""The layout's rules hold: ruff passes, the import contracts (.importlinter) are kept, and each
contract does fail when the rule it states is broken (checked on a copy with one import injected)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path):
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / ".importlinter")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_ruff_passes():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_contracts_are_kept():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BROKEN" not in r.stdout


def _contract_names(config: Path) -> dict:
    """``{contract id: name}`` of the contracts in ``.importlinter``."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(config)
    return {s.split(":")[-1]: cfg[s]["name"] for s in cfg.sections() if ":contract:" in s}


def test_the_contracts_state_the_rules_of_the_layout():
    assert set(_contract_names(ROOT / ".importlinter")) == {"layers", "lang-alone", "lang-keras",
                                                            "no-cycles"}


INJECTED = {
    # case: (file, line added at its end, the contract that must then break)
    "language imports training": ("kblocks/lang/syntax.py", "import kblocks.training.trainer",
                                  "lang-alone"),
    "language imports the command line": ("kblocks/lang/graph.py", "from kblocks.cli import app",
                                          "lang-alone"),
    "graph imports Keras": ("kblocks/lang/graph.py", "import keras", "lang-keras"),
    "zoo imports search": ("kblocks/zoo/__init__.py", "import kblocks.search.space", "layers"),
    "record imports the report": ("kblocks/search/record.py", "import kblocks.search.report",
                                  "no-cycles"),
}


@pytest.mark.parametrize("case", sorted(INJECTED))
def test_a_contract_fails_when_its_rule_is_broken(case, tmp_path):
    path, line, contract = INJECTED[case]
    shutil.copytree(ROOT / "kblocks", tmp_path / "kblocks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / path
    target.write_text(target.read_text() + f"\n{line}\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0, r.stdout
    report = " ".join(r.stdout.split())  # lint-imports wraps long contract names
    name = _contract_names(ROOT / ".importlinter")[contract]
    assert f"{name} BROKEN" in report, r.stdout


def test_no_package_imports_private_names_of_another():
    """Search and the command line call training's public functions (issue 12): no module imports
    a ``_private`` name from a module of another kblocks package."""
    import ast

    found = []
    for path in sorted((ROOT / "kblocks").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = parts[1] if len(parts) > 2 else None
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                    and node.module.startswith("kblocks.")):
                continue
            other = node.module.split(".")[1]
            private = [a.name for a in node.names if a.name.startswith("_")]
            if private and other != package:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}: {private}")
    assert not found, "\n".join(found)
