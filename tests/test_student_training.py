"""What a student meets on a first short run (issue 17): BatchNorm on short runs, the transfer head,
and the docs and figures that must match what the code prints."""
import json
import re
import shlex

from click.testing import CliRunner

from kblocks.cli.app import main

from conftest import ROOT


def _cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- point 7: docs and --json ------------------------------------------------------------------

def test_readme_did_you_mean_example_is_what_the_command_prints():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\n\$ (kblocks summary \"CONV\(32\)-RELUU-POOL\"[^\n]*)\n(.*?)```", text,
                      re.S)
    assert block, "the README's mistake example is gone"
    command, expected = block.group(1), block.group(2)
    result = _cli(*shlex.split(command)[1:])
    assert result.exit_code == 2
    assert result.output.strip("\n").splitlines() == expected.strip("\n").splitlines()


def test_cs231n_space_comment_counts_its_hyperparameters():
    from kblocks.search.space import SearchSpace

    path = next((ROOT / "kblocks").rglob("cs231n_pattern.yaml"))
    said = re.search(r"^# (\d+) hyperparameters", path.read_text(), re.M)
    assert said, "the comment no longer says how many hyperparameters the space has"
    assert int(said.group(1)) == len(SearchSpace(str(path))) == 13


def test_summary_json_gives_numbers_as_numbers():
    result = _cli("summary", "[CONV(32)-BN-RELU]*2-POOL-FC(10)", "--input-shape", "8,8,1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    conv = data["layers"][1]
    assert conv["params"] == 9 * 32 + 32 == 320 and isinstance(conv["params"], int)
    second = data["layers"][4]  # CONV(32) after CONV(32): 9,248 parameters, written 9248
    assert second["dsl"] == "CONV(32)" and second["params"] == 9248
    assert second["macs"] == 8 * 8 * 9 * 32 * 32 and second["shape"] == [8, 8, 32]
    assert second["rf"] == 5 and second["jump"] == 1
    assert data["layers"][0]["index"] is None and data["layers"][1]["index"] == 0
    for row in data["layers"]:
        for key in ("params", "activations", "macs"):
            assert isinstance(row[key], int), (row, key)
    assert sum(row["params"] for row in data["layers"]) == data["params"]
