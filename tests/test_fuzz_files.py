"""File fuzzing (issue 20): hostile files and odd paths never crash kblocks or lose data.

The engine of ``bench/fuzz_files.py`` (10,000 cases, docs/hardening.md "File fuzzing") on a few
hundred cases with fixed seeds (the same cases on every run): mutated ``.npz`` files through
``load_data("npz:...")``, mutated ``.keras`` files through ``kblocks.common.saving.load_model``,
mutated YAML files through ``kblocks.compile(PATH)`` and ``blocks=``, ``images:`` folders with
damaged PNG/JPEG files, and odd paths (FIFOs, links to ``/dev/zero`` and to folders, folders,
outputs under a file, existing outputs, read-only folders, odd names) through the commands, in
process. The property, checked by ``run_case``: success or a ``KBlocksError``; a command exits 0,
or 2 with one ``error:`` line and no traceback; every output that existed before a refused command
is byte-identical after it. The alarm of ``run_case`` is only a safety net that reports a hang as
a failure (its bounds are generous, far above what a case takes); no test asserts on time.
"""
import importlib.util
import json
import sys
import time

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("kblocks_bench_fuzz_files",
                                               ROOT / "bench" / "fuzz_files.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up
_spec.loader.exec_module(fuzz)

SEED = 20  # issue 20
#: cases per kind in CI (about 300 in all; bench/fuzz_files.py runs 10,000)
CASES = {"npz": 80, "keras": 70, "yaml": 70, "images": 50, "paths": 30}
#: safety-net alarms (seconds): a case that never ends is a failure, not a stuck CI job
LIMITS = {"time_limit": 60.0, "cli_time_limit": 120.0}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-files")


@pytest.fixture(scope="module")
def corpus(workdir):
    corpus = fuzz.Corpus(workdir)
    corpus.load_keras()
    return corpus


@pytest.mark.parametrize("kind", list(CASES))
def test_hostile_files_and_paths(kind, corpus, workdir):
    """Each kind's cases from a fixed seed: no failure of the property (the failures are listed
    with their description and arguments; ``--replay`` runs one with its traceback)."""
    tally = fuzz.Tally()
    for _, case in fuzz.cases(SEED, CASES[kind], corpus, kind):
        fuzz.run_one(case, workdir, tally, **LIMITS)
    assert tally.cases == CASES[kind]
    report = [f"{problem}\n  {case.desc}\n  {case.args}\n  {detail[-600:]}"
              for case, problem, detail in tally.failures]
    assert not report, "\n".join(report)
    # the cases reach past the first check: some succeed and some are refused
    outcomes = {name.split(": ", 1)[1] for name in tally.outcomes}
    assert "ok" in outcomes and outcomes - {"ok"}, tally.outcomes


def test_case_count():
    """About 300 cases per CI run."""
    assert sum(CASES.values()) >= 300


def test_every_kind_mutates_its_file(corpus):
    """Cases differ from the valid file: the generator is not idling."""
    import random

    for kind, valid in (("npz", corpus.npz), ("keras", corpus.keras)):
        cases = [fuzz.make_case(random.Random(i), corpus, kind) for i in range(30)]
        changed = [c for c in cases if next(iter(c.files.values())) != valid]
        assert len(changed) >= 20, kind


# --- the property itself can fail --------------------------------------------------------------------

def _case(**kw):
    base = {"kind": "paths", "target": "cli", "args": ["summary", "{d}/x.yaml"], "desc": "test",
            "files": {"out.keras": b"precious", "x.yaml": fuzz.GOOD_YAML.encode()},
            "outputs": ["out.keras"]}
    return fuzz.Case(**{**base, **kw})


def test_lost_output_is_a_failure(workdir, monkeypatch):
    """A refused command that changed a pre-existing output is reported as data lost."""
    def clobber(case, folder):
        (folder / "out.keras").write_bytes(b"half")
        return fuzz.Outcome("exit 2", 0.0, "error: refused")

    monkeypatch.setattr(fuzz, "_call", clobber)
    with pytest.raises(fuzz.FileFuzzFailure, match="data lost"):
        fuzz.run_case(_case(), workdir)


def test_kept_sees_folders_links_and_added_files(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "a").write_bytes(b"1")
    before = fuzz.snapshot(tmp_path / "run")
    (tmp_path / "run" / "b").write_bytes(b"2")  # added: nothing lost
    assert fuzz.kept(before, fuzz.snapshot(tmp_path / "run"))
    (tmp_path / "run" / "a").write_bytes(b"3")
    assert not fuzz.kept(before, fuzz.snapshot(tmp_path / "run"))
    (tmp_path / "v").write_bytes(b"v")
    (tmp_path / "l").symlink_to(tmp_path / "v")
    before = fuzz.snapshot(tmp_path / "l")
    (tmp_path / "v").write_bytes(b"w")  # written through the link
    assert not fuzz.kept(before, fuzz.snapshot(tmp_path / "l"))


def test_a_hang_is_a_failure(workdir, monkeypatch):
    """The alarm reports a case that does not end as a failure (here a 0.2 s bound)."""
    def hang(case, folder):
        while True:
            time.sleep(0.05)

    monkeypatch.setattr(fuzz, "_call", hang)
    with pytest.raises(fuzz.FileFuzzFailure, match="a hang"):
        fuzz.run_case(_case(target="load_model"), workdir, time_limit=0.2)


def test_another_exception_in_a_command_is_a_failure(workdir, monkeypatch):
    import kblocks

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(kblocks, "compile", boom)
    with pytest.raises(fuzz.FileFuzzFailure, match="exit 1"):
        fuzz.run_case(_case(), workdir)


def test_a_case_replays_from_its_dump(corpus, workdir, tmp_path, capsys):
    """``--dump`` writes a case as JSON; ``--replay`` runs that case again (its files included)."""
    import random

    case = fuzz.make_case(random.Random(3), corpus, "npz")
    again = fuzz.Case.from_json(json.loads(json.dumps(case.to_json())))
    assert again == case
    dump = tmp_path / "case.json"
    dump.write_text(json.dumps({"problem": "-", "detail": "", "case": case.to_json()}))
    assert fuzz.replay(dump, corpus, workdir) == 0
    assert case.desc in capsys.readouterr().out


def test_the_bench_runs_a_few_cases(tmp_path, capsys):
    """bench/fuzz_files.py's driver (a tiny run, in process): its last line is JSON, no failure."""
    summary = tmp_path / "s.json"
    assert fuzz.main(["--cases", "25", "--seed", "5", "--kind", "yaml", "--json", str(summary)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(summary.read_text())
    assert last["cases"] == 25 and last["failures"] == 0 and last["data_lost"] == 0


# --- the bugs the fuzzer found (each failed before its fix) ------------------------------------------

def test_zip_asking_for_a_newer_version_is_refused(corpus, tmp_path):
    """A central directory whose "version needed to extract" is over zipfile's (6.3) was
    zipfile's NotImplementedError out of ``files.check_zip``; now a UserFileError."""
    from kblocks.common.errors import KBlocksError
    from kblocks.training.data import load_data

    path = tmp_path / "v.npz"
    path.write_bytes(fuzz.patch_zip(corpus.npz, (4, 6), 176, which=(1,)))
    with pytest.raises(KBlocksError, match="not a readable zip archive"):
        load_data(f"npz:{path}")


def test_damaged_deflated_config_is_a_model_file_error(corpus, tmp_path):
    """A deflated ``config.json`` whose stream is damaged was ``zlib.error`` out of
    ``saving.lambda_layers``; now Keras is left to say the file is damaged (ModelFileError)."""
    import zipfile

    from kblocks.common import saving

    members = dict(corpus.keras_members)
    raw = bytearray(fuzz.write_zip([("config.json", members.pop("config.json")),
                                    *members.items()], zipfile.ZIP_DEFLATED))
    raw[30 + len("config.json")] = 0xFF  # the first deflate block: type 3 does not exist
    path = tmp_path / "z.keras"
    path.write_bytes(bytes(raw))
    with pytest.raises(saving.ModelFileError):
        saving.load_model(path)


def test_npy_header_that_does_not_close_is_a_data_error(corpus, tmp_path):
    """An ``.npy`` header ``{'descr': '<i8'`` (its dict never closed) was ``tokenize.TokenError``
    out of numpy's header reader in ``data._npz_headers``; now a DataError naming the file."""
    from kblocks.common.errors import DataError
    from kblocks.training.data import load_data

    members = dict(corpus.npz_members)
    members["x.npy"] = fuzz.npy(corpus.x, lambda header: "{'descr': '<i8'")
    path = tmp_path / "h.npz"
    path.write_bytes(fuzz.write_zip(list(members.items())))
    with pytest.raises(DataError, match="an array header cannot be read"):
        load_data(f"npz:{path}")
