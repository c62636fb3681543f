"""Every ```python snippet of docs/keras.md runs, in order, in one namespace (as a reader would
paste them), and the page holds the conventions table."""
from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "keras.md"


def _snippets():
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_page_has_the_conventions_table():
    text = PAGE.read_text(encoding="utf-8")
    for row in ("| input range |", "| normalisation |", "| output |", "| loss |"):
        assert row in text, row


def test_every_snippet_runs(capsys):
    snippets = _snippets()
    assert len(snippets) >= 10
    namespace = {"__name__": "docs_keras"}
    for k, code in enumerate(snippets):
        exec(compile(code, f"{PAGE.name} snippet {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "outputs: logits (10 classes)" in out
    assert "outputs: probabilities (10 classes)" in out
    assert "input: pixels 0..255, normalised inside (standardize)" in out
    # "Composing"
    assert "ArchitectureLayer" in out and "pixels scale" in out
    assert "hint: did you mean classes?" in out
    # "Tuning with your own tuner" and "Training from arrays and tf.data"
    assert "['n', 'f_1', 'f_2', 'lr']" in out
    assert "2 ['train_top3 (last epoch)', 'val_top3']" in out
    # "Exporting": every format within the parity tolerance; the MobileNet file loads
    for fmt in ("savedmodel", "tflite", "onnx"):
        assert f"{fmt} parity: max |diff| = " in out and "(OVER" not in out
    assert "input: 'image' float32 (None, 8, 8, 1): pixels 0..255, normalised inside" in out
