"""``flowmap tag`` takes keys and tenant ids as the runtime does: the tag it prints is the
one the app's spans carry, and what the runtime refuses is a one-line error (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flowmap.cli import app
from flowmap.tagging import DEV_KEY, Tagger, tag_for


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("FLOWMAP_TENANT_KEY", "FLOWMAP_DEV_MODE", "FLOWMAP_FILE"):
        monkeypatch.delenv(var, raising=False)


def invoke(*args, env=None, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("blank", [" ", "\n", " \t "], ids=repr)
def test_a_blank_key_is_no_key_for_tag_as_for_the_runtime(blank, monkeypatch):
    # tag used "  " as the key, while the app's spans were tagged under the development key
    line = one_line_error(invoke("tag", "acme", env={"FLOWMAP_TENANT_KEY": blank}))
    assert "no tenant key configured" in line

    monkeypatch.setenv("FLOWMAP_TENANT_KEY", blank)
    monkeypatch.setenv("FLOWMAP_DEV_MODE", "1")
    runtime_tag = Tagger().tag("acme")
    result = invoke("tag", "acme")
    assert result.exit_code == 0
    assert result.stdout == runtime_tag + "\n" == tag_for(DEV_KEY, "acme") + "\n"
    assert "DEVELOPMENT MODE" in result.stderr


def test_a_blank_key_file_is_an_error(tmp_path):
    key = tmp_path / "key"
    key.write_text("  \n", encoding="utf-8")
    assert "is empty" in one_line_error(invoke("tag", "--key-file", key, "acme"))


def test_a_key_file_that_is_not_utf8_is_an_error_that_quotes_none_of_it(tmp_path):
    key = tmp_path / "key"
    key.write_bytes(b"\xffs3cret")
    line = one_line_error(invoke("tag", "--key-file", key, "acme"))
    assert "not UTF-8" in line and "0xff" not in line and "s3cret" not in line


def test_a_tenant_id_of_blanks_has_no_tag():
    # the runtime refuses RequestContext("   "): no span ever carries its tag
    line = one_line_error(invoke("tag", "   ", env={"FLOWMAP_TENANT_KEY": "k"}))
    assert "tenant id is blank" in line and "RequestContext" not in line


def test_undecodable_bytes_in_key_or_id_are_one_line_errors_not_internal_ones():
    # a real process: os.environ and sys.argv carry undecodable bytes as lone surrogates
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}

    def run(tenant_id: bytes, key: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flowmap", "tag", tenant_id],
            env={**{k.encode(): v.encode() for k, v in env.items()}, b"FLOWMAP_TENANT_KEY": key},
            capture_output=True, timeout=60,
        )

    for proc, expected in (
        (run(b"acme", b"s3cret\xff\xfe"), "tenant key is not text"),
        (run(b"acme-corp\xff", b"k"), "tenant_id must be valid Unicode text"),
    ):
        stderr = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 2, stderr
        assert proc.stdout == b""
        assert len(stderr.strip().splitlines()) == 1 and expected in stderr, stderr
        assert "internal error" not in stderr
        assert "s3cret" not in stderr and "acme-corp" not in stderr


@pytest.mark.parametrize("stdin", ["tenant-b", "tenant-b\n", "tenant-b\r\n", "tenant-b\n\n  \n"], ids=repr)
def test_stdin_holds_one_tenant_id_and_its_line_break(stdin):
    result = invoke("tag", "-", env={"FLOWMAP_TENANT_KEY": "k"}, input=stdin)
    assert result.exit_code == 0 and result.stdout == tag_for("k", "tenant-b") + "\n"


def test_a_second_tenant_id_on_stdin_is_an_error_not_ignored():
    # `cat ids.txt | flowmap tag -` printed the first id's tag alone, as if it were the list's
    line = one_line_error(invoke("tag", "-", env={"FLOWMAP_TENANT_KEY": "k"}, input="acme-corp\nglobex-inc\n"))
    assert "exactly one" in line and "acme-corp" not in line and "globex-inc" not in line
