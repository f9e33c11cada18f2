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


@pytest.mark.parametrize("redirect", [">", ">>", "> {log} 2>&1"])
def test_output_to_dev_stdout_redirected_to_a_file(tmp_path, redirect):
    # ``flowmap check -o /dev/stdout >> log``: the shell's file is written at its end, not
    # replaced (a replaced file would lose what ``>>`` kept, and the process's later
    # writes would go to a file no longer there)
    import json
    import subprocess
    import sys

    from otlp_builder import SERVER, TAG_A, TraceBuilder, write_otlp

    tb = TraceBuilder()
    tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    traces = write_otlp(tmp_path / "t.jsonl", tb)
    log = tmp_path / "log"
    log.write_text("earlier\n")
    target = redirect.format(log=f'"{log}"') if "{log}" in redirect else f'{redirect} "{log}"'
    command = f'"{sys.executable}" -m flowmap check "{traces}" --format json -o /dev/stdout {target}'
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    kept = "earlier\n" if redirect == ">>" else ""
    # with stderr in the same file, its summary follows the JSON, never over it
    body, _, after = text[len(kept):].rpartition("}\n")
    assert text.startswith(kept) and json.loads(body + "}")["summary"]["spans"] == 1
    assert after.startswith("flowmap: wrote json output") if "2>&1" in redirect else after == ""


def test_a_file_descriptor_path_is_appended_to(tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as fh:
        fh.write("kept\n")
        fh.flush()
        write_atomically(Path(f"/proc/self/fd/{fh.fileno()}"), b"more\n")
        write_atomically(Path(f"/dev/fd/{fh.fileno()}"), b"again\n")
    assert out.read_text() == "kept\nmore\nagain\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
