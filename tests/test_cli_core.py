"""The core commands as a user runs them: summary (with the issue's exact figures), build, plot."""
import json
import subprocess
import sys

import numpy as np

VGG16 = ("[[CONV(64)-RELU]*2-POOL]-[[CONV(128)-RELU]*2-POOL]-[[CONV(256)-RELU]*3-POOL]"
         "-[[CONV(512)-RELU]*3-POOL]*2-[FC(4096)-RELU]*2-FC(1000)-SOFTMAX")


def run(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "kblocks", *args], capture_output=True, text=True,
                       timeout=300, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_summary_vgg16_prints_the_figures():
    out = run("summary", VGG16, "--input-shape", "224,224,3")
    assert "Total params: 138,357,544" in out
    assert "15,237,608 elements" in out
    row = [line for line in out.splitlines() if line.startswith("30 ")][0]  # the last POOL
    assert row.split()[-2:] == ["212", "32"]


def test_summary_with_variables_and_json():
    out = run("summary", "[[CONV-RELU]*N-POOL?]*M-[FC-RELU]*K-FC", "--input-shape", "32,32,3",
              "--classes", "10", "--set", "N=2", "M=3", "K=1", "--json")
    data = json.loads(out)
    tokens = [row["dsl"] for row in data["layers"]]
    assert sum(t.startswith("CONV") for t in tokens) == 6
    assert data["params"] == 3 * (9 * 3 * 32 + 32) // 3 + 9 * 32 * 32 + 32 + 4 * (9 * 32 * 32 + 32) \
        + (4 * 4 * 32) * 128 + 128 + 128 * 10 + 10


def test_build_saves_a_model_that_loads_safely(tmp_path):
    import keras

    out = tmp_path / "m.keras"
    run("build", "[[CONV(16)-RELU]*2-POOL]*2-FC(10)", "--input-shape", "32,32,3", "-o", str(out))
    model = keras.saving.load_model(out, safe_mode=True)
    assert model.count_params() == (9 * 3 * 16 + 16) + 3 * (9 * 16 * 16 + 16) + 8 * 8 * 16 * 10 + 10
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary files left


def test_plot_writes_a_picture(tmp_path):
    from PIL import Image

    out = tmp_path / "arch.png"
    run("plot", "CONV(8)-(CONV(8,1) | CONV(8,3) | POOL(3,1,padding=same))-(SKIP + CONV(24)-BN)-GAP-FC(3)",
        "--input-shape", "16,16,3", "-o", str(out))
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 5  # not a blank canvas
