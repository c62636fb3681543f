"""Issue 17 points 5 and 6: the CLI is quiet by default (``kblocks --verbose`` keeps TensorFlow's
lines), ``kblocks inspect`` does several methods and images with one model load, ``kblocks report``
does not import Keras Tuner, occlusion pictures use one colour meaning with labelled colour bars,
and ``kblocks plot`` routes an identity skip beside the main column."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import keras

from kblocks.cli import main
from kblocks.cli.inspect import OCCLUSION_COLORBAR, output_paths

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("onednn", "cuda", "i0000", "w0000", "cpu_feature_guard", "absl::initializelog")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY",
                                                            "GLOG_minloglevel")}
    env.update(PYTHONPATH=str(ROOT), KERAS_BACKEND="tensorflow", **extra)
    return env


# --- 5. noise ------------------------------------------------------------------------------------

@pytest.mark.slow  # a fresh process imports TensorFlow: 28 s on the shared 2-core machine
def test_build_prints_no_tensorflow_lines_by_default(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kblocks", "build", "CONV(4)-RELU-GAP-FC(3)",
                           "--input-shape", "8,8,3", "-o", str(tmp_path / "m.keras")],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.keras").is_file()
    noisy = [line for line in done.stderr.splitlines() if any(n in line.lower() for n in NOISE)]
    assert noisy == [], noisy


_PRINT_ENV = ("import os, sys; from kblocks.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              "print('LEVEL', os.environ.get('TF_CPP_MIN_LOG_LEVEL'))")


@pytest.mark.parametrize("args, user, level", [
    ([], None, "3"),                 # the CLI's default: errors only
    (["--verbose"], None, "None"),   # --verbose: TensorFlow's own default, nothing forced
    ([], "1", "1"),                  # the user's own setting is kept
    (["--verbose"], "0", "0"),
])
def test_verbose_leaves_the_tensorflow_log_level_alone(args, user, level):
    env = _env(**({"TF_CPP_MIN_LOG_LEVEL": user} if user is not None else {}))
    done = subprocess.run([sys.executable, "-c", _PRINT_ENV, *args, "conv-size", "--input", "32",
                           "--kernel", "3"], env=env, capture_output=True, text=True, timeout=300)
    assert "output size: 30" in done.stdout, done.stdout + done.stderr
    assert f"LEVEL {level}" in done.stdout


def test_report_reads_a_search_folder_without_keras_tuner():
    code = ("import sys; import kblocks.search.report, kblocks.cli.search\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'keras_tuner', 'tensorflow')))")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_trial_reader_agrees_with_keras_tuner(tmp_path):
    from keras_tuner import HyperParameters
    from keras_tuner.engine.trial import Trial

    from kblocks.search import report, tuner

    assert report.PROJECT == tuner.PROJECT
    trial = Trial(hyperparameters=HyperParameters(), trial_id="7", status="COMPLETED")
    trial.hyperparameters.Choice("f_1", [4, 8], default=8)
    for step, value in ((0, 3.0), (1, 5.0), (1, 6.0)):
        trial.metrics.update("seconds", value, step=step)
    trial.score, trial.message = 0.5, "line one\nline two"
    path = tmp_path / "trial.json"
    path.write_text(json.dumps(trial.get_state()))
    ours = report._Trial.load(path)
    theirs = Trial.load(str(path))
    assert ours.trial_id == theirs.trial_id and ours.status == theirs.status
    assert ours.values == dict(theirs.hyperparameters.values) == {"f_1": 8}
    assert ours.score == theirs.score and ours.message == theirs.message
    assert report._metric(ours, "seconds") == pytest.approx(theirs.metrics.get_last_value("seconds"))
    assert report._metric(ours, "epochs") is None


# --- 5. several methods and images in one call -------------------------------------------------

def test_output_names_for_several_methods_and_images():
    assert output_paths(["gradcam"], ["a/cat.png"], None) == {("gradcam", "a/cat.png"): "gradcam.png"}
    assert output_paths(["gradcam"], ["a/cat.png"], "x.png") == {("gradcam", "a/cat.png"): "x.png"}
    two = output_paths(["saliency", "gradcam"], ["a/cat.png", "b/dog.jpg"], "out.png")
    assert sorted(two.values()) == ["out_gradcam_cat.png", "out_gradcam_dog.png",
                                    "out_saliency_cat.png", "out_saliency_dog.png"]
    assert output_paths(["saliency", "filters"], ["cat.png"], "pics") == {
        ("saliency", "cat.png"): os.path.join("pics", "saliency.png"),
        ("filters", None): os.path.join("pics", "filters.png")}
    from kblocks.common.errors import KBlocksError

    with pytest.raises(KBlocksError, match="same name"):
        output_paths(["saliency"], ["a/cat.png", "b/cat.png"], None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed")
    keras.utils.set_random_seed(5)
    inp = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap_2")(x)
    out = keras.layers.Dense(3, name="fc_3")(x)
    keras.Model(inp, out).save(folder / "m.keras")
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_four_methods_and_two_images_load_the_model_once(files, tmp_path, monkeypatch):
    import kblocks.common.saving as saving

    real, loads = saving.load_model, []

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(saving, "load_model", counting)
    out = tmp_path / "pics.png"
    result = CliRunner().invoke(main, ["inspect", str(files / "m.keras"), "--method",
                                       "saliency,gradcam", "-m", "occlusion", "-m", "featuremaps",
                                       "--image", str(files / "cat.png"), "-i", str(files / "dog.png"),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(loads) == 1
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"pics_{m}_{i}.png" for m in ("saliency", "gradcam", "occlusion",
                                                          "featuremaps") for i in ("cat", "dog"))
    assert result.output.count("wrote ") == 8


def test_an_unknown_method_in_a_list_is_one_line_exit_2(files, tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(files / "m.keras"), "--method",
                                       "saliency,gradkam", "--image", str(files / "cat.png"),
                                       "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "'gradkam' is not a method" in result.output and "Traceback" not in result.output


# --- 6. pictures ---------------------------------------------------------------------------------

def test_occlusion_uses_one_colour_meaning_with_labelled_colour_bars(files, tmp_path, monkeypatch):
    from kblocks.inspect import plotting

    figures = []
    real = plotting.save_figure
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: (figures.append(fig), real(fig, path))[1])
    result = CliRunner().invoke(main, ["inspect", str(files / "m.keras"), "--method", "occlusion",
                                       "--image", str(files / "cat.png"), "--window", "4", "--stride",
                                       "2", "-o", str(tmp_path / "occ.png")])
    assert result.exit_code == 0, result.output
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.images and ax.images[-1].colorbar is not None]
    assert len(panels) == 2  # the map and the overlay
    maps = [ax.images[-1] for ax in panels]
    assert maps[0].get_cmap().name == maps[1].get_cmap().name == plotting.HEATMAP_CMAP
    labels = [m.colorbar.ax.get_ylabel() for m in maps]
    assert labels[0] == OCCLUSION_COLORBAR and labels[1].startswith(OCCLUSION_COLORBAR)
    # The same meaning: hot where covering hurts in both panels (the overlay is the map's positive
    # part, scaled), so the hottest pixel of the map is the hottest of the overlay.
    heat, blend = (np.asarray(m.get_array(), dtype="float64") for m in maps)
    assert np.unravel_index(heat.argmax(), heat.shape) == np.unravel_index(blend.argmax(), blend.shape)
    clipped = np.maximum(heat, 0.0)
    want = (clipped - clipped.min()) / (clipped.max() - clipped.min())
    assert np.allclose(blend, want, atol=1e-5)


def test_plot_routes_an_identity_skip_beside_the_main_column():
    import matplotlib.pyplot as plt

    import kblocks
    from kblocks.lang.plot import BOX_HALF_WIDTH, edge_routes, graph_figure, layout

    graph = kblocks.compile("CONV(8)-(SKIP + CONV(8)-BN)-RELU-FC(3)", input_shape=(8, 8, 3))
    pos = layout(graph)
    add = next(n for n in graph.nodes if n.dsl == "ADD")
    skip_src = add.inputs[0]
    assert pos[skip_src][0] == pos[add.index][0]  # same column: a straight line would be hidden
    fig = graph_figure(graph)
    try:
        patches = {p.get_gid(): p for p in fig.axes[0].patches}
        edge = patches[f"edge {skip_src}->{add.index}"]
        xs = edge.get_path().vertices[:, 0]
        column = pos[add.index][0]
        assert min(xs) < column - BOX_HALF_WIDTH or max(xs) > column + BOX_HALF_WIDTH
        # the lane is inside the drawn area, and plain edges stay straight down the column
        lo, hi = fig.axes[0].get_xlim()
        assert lo < min(xs) and max(xs) < hi
        straight = edge_routes(graph, pos)[(skip_src, skip_src + 1)]
        assert {x for x, _ in straight} == {column}
    finally:
        plt.close(fig)


def test_plot_keeps_named_tensors_apart():
    import kblocks
    from kblocks.lang.plot import edge_routes, layout

    graph = kblocks.compile("CONV(8)-AS(e)-CONV(8)-CONV(8)-(SKIP | FROM(e))-FC(3)",
                            input_shape=(8, 8, 3))
    pos = layout(graph)
    assert len(set(pos.values())) == len(pos)  # a FROM moves aside, never on top of a box
    assert len(edge_routes(graph, pos)) == sum(len(n.inputs) for n in graph.nodes)


def test_tensorflows_unsilenceable_import_lines_are_filtered_and_the_rest_kept(tmp_path):
    """TF 2.21 writes its oneDNN notice to descriptor 2 before absl reads any log level; the CLI
    filters it out of the first ``import tensorflow`` and keeps every other line (a stand-in
    ``tensorflow`` package writes both kinds, so no TensorFlow is needed)."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os, sys\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1.5 12 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'a real error from C++\\n')\n"
        "print('a python warning', file=sys.stderr)\n"
        "VALUE = 7\n")
    code = ("from kblocks.common.quietimport import quiet_tensorflow_import\n"
            "quiet_tensorflow_import()\nimport tensorflow\nimport sys\n"
            "print('after', tensorflow.VALUE, file=sys.stderr)\n"
            "print(any(type(f).__name__ == '_QuietFinder' for f in sys.meta_path))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["a real error from C++", "a python warning", "after 7"]
    assert done.stdout.strip() == "False"  # the hook removed itself after the one import
