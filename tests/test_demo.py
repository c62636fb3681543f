"""``make demo`` (python -m kblocks.demo): builds, trains, saves, reloads, predictions match."""
import pytest


@pytest.mark.slow
def test_demo_runs_and_reloaded_predictions_match(tmp_path, capsys):
    from kblocks import demo

    assert demo.main(["--epochs", "6", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[[CONV(32)-RELU]*2-POOL]*2-[FC(128)-RELU]*1-FC(10)-SOFTMAX" in out
    assert "conv_0" in out  # the per-layer summary
    assert "max |prediction difference|, model in memory vs reloaded last.keras: 0.00e+00" in out
    assert "predicted:" in out and "true:" in out
    for name in ("best.keras", "last.keras", "history.csv", "curves.png", "run.json"):
        assert (tmp_path / "demo" / name).exists()
