"""The file boundary (kblocks.common.files, issue 20): kinds of path, sizes, bounded reads, zip
directories, JSON nesting and OSError in words."""
import errno
import os
import zipfile

import pytest

from conftest import patch_zip_headers

from kblocks.common import files
from kblocks.common.files import DiskFullError, UserFileError


def test_regular_file_passes_and_is_read(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("hello")
    assert files.read_text(p, what="text", limit=10) == "hello"
    assert files.check_file(p, limit=5) == p


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UserFileError, match=r"pipe.yaml is a FIFO \(named pipe\), not a regular file"):
        files.read_bytes(fifo, what="architecture file", limit=100)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_symlink_to_device_refused(tmp_path):
    link = tmp_path / "input.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(UserFileError, match="is a device, not a regular file"):
        files.read_bytes(link, what="architecture file", limit=100)


def test_folder_and_missing(tmp_path):
    with pytest.raises(UserFileError, match="is a folder, not a regular file"):
        files.check_file(tmp_path, what="data file")
    with pytest.raises(UserFileError, match="does not exist"):
        files.check_file(tmp_path / "nope.npz", what="data file")


def test_size_limit_checked_before_reading(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_bytes(b"x" * 2000)
    with pytest.raises(UserFileError, match=r"is 2.0 KiB, over the 1,000 bytes limit"):
        files.read_bytes(p, what="YAML file", limit=1000)


def test_undecodable_text_names_the_byte(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"ab\xffcd")
    with pytest.raises(UserFileError, match=r"byte 2 is 0xff"):
        files.read_text(p, limit=100)


def _zip(path, members, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_zip_checks(tmp_path):
    ok = tmp_path / "ok.keras"
    _zip(ok, {"config.json": "{}", "model.weights.h5": b"\0" * 100})
    assert [i.filename for i in files.check_zip(ok, max_total=10_000)] == ["config.json",
                                                                           "model.weights.h5"]
    with pytest.raises(UserFileError, match="declares 100 bytes, over the 50 bytes limit"):
        files.check_zip(ok, max_total=10_000, max_member=50)
    with pytest.raises(UserFileError, match="in all"):
        files.check_zip(ok, max_total=60)
    bomb = tmp_path / "bomb.npz"
    _zip(bomb, {"x.npy": b"\0" * (8 << 20)})
    with pytest.raises(UserFileError, match="zip bomb"):
        files.check_zip(bomb, max_total=1 << 40)
    climb = tmp_path / "climb.keras"
    _zip(climb, {"../../etc/x": "1"})
    with pytest.raises(UserFileError, match="climbs out"):
        files.check_zip(climb, max_total=1000)
    notzip = tmp_path / "no.keras"
    notzip.write_bytes(b"not a zip")
    with pytest.raises(UserFileError, match="not a readable zip archive"):
        files.check_zip(notzip, max_total=1000)


def test_zip_encrypted_and_unknown_method(tmp_path):
    enc = tmp_path / "enc.keras"
    _zip(enc, {"config.json": "{}"})
    patch_zip_headers(enc, (6, 8), 0x1)
    with pytest.raises(UserFileError, match="encrypted"):
        files.check_zip(enc, max_total=1000)
    lzma = tmp_path / "m.keras"
    _zip(lzma, {"config.json": "{}"})
    patch_zip_headers(lzma, (8, 10), 99)
    with pytest.raises(UserFileError, match="compression method 99"):
        files.check_zip(lzma, max_total=1000)


def test_json_depth_counts_without_parsing():
    assert files.json_depth('{"a": [1, {"b": "[[[["}]}') == 3
    assert files.json_depth("[" * 10_000 + "]" * 10_000) == 10_000
    assert files.json_depth(b'"\\"{"') == 0


def test_output_path_under_a_file(tmp_path):
    f = tmp_path / "passwd"
    f.write_text("x")
    with pytest.raises(UserFileError, match="passwd is a file, not a folder"):
        files.check_output_path(f / "x.keras")
    with pytest.raises(UserFileError, match="is a folder"):
        files.check_output_path(tmp_path)
    assert files.check_output_path(tmp_path / "new" / "x.keras").name == "x.keras"


def test_os_error_in_words(tmp_path):
    err = files.os_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "run.json",
                         kept="last.keras still holds epoch 3")
    assert isinstance(err, DiskFullError)
    assert "no space left on the device while writing" in str(err)
    assert "nothing lost: last.keras still holds epoch 3" in str(err)
    ro = files.os_error(OSError(errno.EROFS, "Read-only"), "/ro/x.keras")
    assert not isinstance(ro, DiskFullError) and "read-only" in str(ro)
    with pytest.raises(DiskFullError, match="epoch 7"):
        with files.writing(tmp_path / "x", kept=lambda: "x still holds epoch 7"):
            raise OSError(errno.ENOSPC, "full")
