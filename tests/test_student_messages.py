"""Issue 17, points 3 and 4, as a student meets them on the command line: messages that say what a
command takes (not "unexpected character '/'"), zoo and PyTorch names, the --set name that was
given, a channels-first --input-shape; and warnings (exit 0, in the summary and on stderr, each
with its place) for texts that compile but are probably not what was meant."""
import warnings

import pytest
from click.testing import CliRunner

import kblocks
from kblocks.cli import main
from kblocks.lang.lint import KBlocksWarning


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def fails(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "unexpected character" not in result.output
    return result.output


# --- 3. messages that point the wrong way ------------------------------------------------------------

def test_paths_say_what_each_command_takes(tmp_path):
    out = fails("summary", "runs/x/notes.txt")
    assert "ARCHITECTURE runs/x/notes.txt does not exist" in out
    assert "kblocks summary takes architecture text, a YAML file (.yaml), a zoo name or a .keras" in out
    out = fails("inspect", "old.h5", "-m", "filters")
    assert "MODEL old.h5: HDF5 model files (Keras 2's .h5) are not supported" in out
    assert "kblocks inspect takes a .keras model file" in out and ".save('model.keras')" in out
    out = fails("train", "old.h5", "--data", "digits")
    assert "SOURCE old.h5: HDF5" in out and "--transfer model.keras" in out
    out = fails("train", "runs/a/best.keras", "--data", "digits")
    assert "is a model file; kblocks train takes architecture text" in out
    assert "hint: to train from a saved model: --transfer runs/a/best.keras" in out
    assert "kblocks evaluate takes a .keras model file" in fails("evaluate", "x/y.txt", "--data",
                                                                 "digits")
    out = fails("export", "a/b.h5", "-o", tmp_path / "m.keras")
    assert "ARCHITECTURE a/b.h5: HDF5" in out and "kblocks export takes" in out
    assert "kblocks build takes architecture text, a YAML file (.yaml) or a zoo name" in fails(
        "build", "a/b", "-o", tmp_path / "m.keras")
    text_file = tmp_path / "net.txt"
    text_file.write_text("CONV(8)-RELU")
    out = fails("summary", text_file)
    assert "kblocks summary does not read this kind of file" in out and "$(cat " in out
    assert "is a folder; kblocks evaluate takes a .keras model file" in fails(
        "evaluate", tmp_path, "--data", "digits")
    # Python users get the same sense from the parser: a file name is not architecture text.
    with pytest.raises(kblocks.KBlocksError, match="'runs/x.txt' is not architecture text: it "
                                                   "looks like a file name"):
        kblocks.compile("runs/x.txt", input_shape=(8, 8, 3))


def test_a_word_close_to_a_zoo_name_suggests_the_zoo_names():
    out = fails("summary", "resnet")
    assert "unknown layer 'resnet'" in out
    assert "did you mean the zoo network resnet18, resnet34, resnet50, resnet50v2 or resnet101?" in out
    assert "RESHAPE" not in out
    out = fails("summary", "resnet-50")
    assert "did you mean the zoo network resnet50" in out
    assert "did you mean the zoo network vgg11" in fails("summary", "vgg")
    # an ordinary unknown layer keeps its layer suggestion
    assert "did you mean RELU" in fails("summary", "RELUU", "--input-shape", "8,8,3")


def test_pytorch_names_suggest_the_kblocks_token():
    out = fails("summary", "Linear(10)", "--input-shape", "16")
    assert "hint: Linear is PyTorch's nn.Linear; in kblocks write FC(units)" in out
    out = fails("summary", "CONV(8)-MaxPool2d(2)", "--input-shape", "8,8,3")
    assert "unknown layer 'MaxPool2d'" in out and "in kblocks write POOL(size)" in out
    assert "in kblocks write BN" in fails("summary", "BatchNorm2d", "--input-shape", "8,8,3")
    # Conv2d is CONV's alias: it compiles, with a warning about PyTorch's argument order
    result = cli("summary", "Conv2d(3, 64, 3)", "--input-shape", "32,32,3")
    assert result.exit_code == 0, result.output
    line = ("warning: line 1, column 1: Conv2d(3, 64, 3) makes 3 filters of size 64: kblocks "
            "writes CONV(filters, kernel, stride)")
    assert line in result.stdout and line in result.stderr
    assert "Conv2d(3, 64, K) is CONV(64, K)" in result.stderr
    # the same numbers the kblocks way give no warning
    assert "warning" not in cli("summary", "CONV(64, 3)", "--input-shape", "32,32,3").output


def test_set_names_the_variable_that_was_given_and_warns_of_unused_ones():
    out = fails("summary", "[CONV(8)-RELU]*N", "--input-shape", "8,8,3", "--set", "n=2")
    assert "unbound variable 'N'" in out and "'n' was given (n=2)" in out
    assert "variable names are case-sensitive" in out
    result = cli("summary", "CONV(8)", "--input-shape", "8,8,3", "--set", "foo=1")
    assert result.exit_code == 0, result.output
    line = "warning: the variable 'foo' is given but the architecture never uses it"
    assert line in result.stdout and line in result.stderr
    used = cli("summary", "[CONV(8)]*N", "--input-shape", "8,8,3", "--set", "N=2")
    assert used.exit_code == 0 and "warning" not in used.output


def test_a_channels_first_input_shape_hints_at_h_w_c():
    out = fails("summary", "CONV(8)-POOL-POOL", "--input-shape", "3,32,32")
    assert "hint: the input shape 3x32x32 looks channels-first; kblocks takes H,W,C (channels " \
           "last): 32,32,3, not 3,32,32" in out
    result = cli("summary", "CONV(8)", "--input-shape", "3,32,32")  # compiles: warned
    assert result.exit_code == 0 and "warning: the input shape 3x32x32 looks channels-first" \
        in result.stderr


# --- 4. suspicious but valid texts -----------------------------------------------------------------

def test_a_stride_that_does_not_tile_its_input_is_warned_of():
    result = cli("summary", "CONV(8)-POOL(3, stride=3)", "--input-shape", "7,7,3")
    assert result.exit_code == 0, result.output
    line = ("warning: line 1, column 9: POOL(3, stride=3) on 7x7 leaves 1 row/column unused: "
            "(input - window) is not a multiple of the stride 3")
    assert line in result.stdout and line in result.stderr
    assert "warning" not in cli("summary", "CONV(8)-POOL(3, stride=3)", "--input-shape",
                                "9,9,3").output
    assert "warning" not in cli("summary", "resnet50").output  # 1 row of 230: not worth a word


def test_softmax_twice_and_a_kernel_larger_than_its_input_are_warned_of():
    result = cli("summary", "FC(10)-SOFTMAX-SOFTMAX", "--input-shape", "16")
    assert result.exit_code == 0
    assert ("warning: line 1, column 16: SOFTMAX follows another softmax (SOFTMAX at line 1, "
            "column 8)") in result.stderr
    result = cli("summary", "CONV(8, 9)", "--input-shape", "7,7,3")
    assert result.exit_code == 0
    assert ("warning: line 1, column 1: CONV(8, 9): its 9x9 window is larger than its 7x7 input"
            in result.stderr)


def test_python_users_get_one_kblocks_warning_per_call():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = kblocks.compile("CONV(8)-POOL(3, stride=3)-FC(10)-SOFTMAX-SOFTMAX",
                                input_shape=(7, 7, 3), variables={"width": 4})
    mine = [w for w in caught if issubclass(w.category, KBlocksWarning)]
    assert len(mine) == 1 and mine[0].filename == __file__
    text = str(mine[0].message)
    assert "POOL(3, stride=3) on 7x7" in text and "follows another softmax" in text
    assert "'width' is given" in text
    assert [str(w) for w in graph.warnings] == text.splitlines()
    with pytest.warns(KBlocksWarning):
        summary = kblocks.summary(graph.text, input_shape=(7, 7, 3))
    assert str(summary).splitlines()[-1].startswith("warning: ")
    assert len(summary.to_dict()["warnings"]) == 2  # the unused variable was not given here
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ordinary text warns of nothing
        assert kblocks.compile("CONV(8)-POOL-FC(10)", input_shape=(8, 8, 3)).warnings == ()


def test_a_search_space_without_placeholders_is_warned_of(tmp_path):
    from kblocks.search.space import SearchSpace

    with pytest.warns(KBlocksWarning, match="the space has no placeholders"):
        SearchSpace("CONV(4)-FC(10)", input_shape=(8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", KBlocksWarning)
        SearchSpace("CONV({f: 4|8})-FC(10)", input_shape=(8, 8, 1))
    result = cli("search", "GAP-FC(classes)", "--data", "digits", "--subset", "200",
                 "--tuner", "random", "--trials", "2", "--epochs", "1", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "warning: the search space: the space has no placeholders" in result.stderr
    assert "trains it once however many trials are asked for" in result.stderr
