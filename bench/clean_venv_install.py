#!/usr/bin/env python3
"""A clean install (issue 13): ``python -m venv`` + ``pip install .`` (no extras), then
``kblocks build resnet18 -o m.keras`` and a plain ``keras.saving.load_model(safe_mode=True)``.

    python bench/clean_venv_install.py          # needs the package index; ~5-7 min (TensorFlow)

Not a test of the suite: it downloads TensorFlow. Prints the install time and a JSON last line.
Last run: see docs/BENCHMARKS.md ("Clean install").
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        py = venv / "bin" / "python"
        started = time.time()
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True,
                           text=True, timeout=1800)
        install_s = time.time() - started
        if r.returncode != 0:
            print(r.stderr[-3000:])
            return 1
        r = subprocess.run([str(venv / "bin" / "kblocks"), "build", "resnet18", "-o", "m.keras"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
        print(r.stdout.strip())
        if r.returncode != 0:
            print(r.stderr[-3000:])
            return 1
        r = subprocess.run([str(py), "-c", "import kblocks, keras; m = keras.saving.load_model("
                            "'m.keras', safe_mode=True); print(type(m).__name__, m.count_params())"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
        kind, params = r.stdout.split()[-2:] if r.returncode == 0 else ("?", "0")
        ok = r.returncode == 0 and kind == "Functional"
        print(f"pip install . (no extras): {install_s:.0f} s; reload with safe_mode: {kind}, "
              f"{int(params):,} params")
        print(json.dumps({"bench": "clean_venv_install", "install_seconds": round(install_s, 1),
                          "reloaded": ok, "params": int(params)}))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
