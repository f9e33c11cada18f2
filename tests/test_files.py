"""Output files are written whole or not at all, and never replace what is not a file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from flowmap.errors import FlowmapError
from flowmap.files import write_atomically


def test_a_new_file_and_a_replaced_one_keep_the_right_permissions(tmp_path):
    out = tmp_path / "deep" / "out.json"
    write_atomically(out, b"one")
    assert out.read_bytes() == b"one"
    out.chmod(0o600)
    write_atomically(out, b"two")
    assert out.read_bytes() == b"two" and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # no temporary file left


def test_dev_null_stays_a_device():
    # ``--output /dev/null`` once replaced the device with a regular file (run as root)
    write_atomically(Path("/dev/null"), b"discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_pipe_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomically(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_keeps_pointing_at_its_target(tmp_path):
    target = tmp_path / "reports" / "latest.json"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    write_atomically(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_directory_in_the_way_is_one_error(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(FlowmapError, match=r"^cannot write report .*out\.json: "):
        write_atomically(tmp_path / "out.json", b"x", "report")
