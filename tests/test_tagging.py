"""The tenant key a Tagger accepts: text or bytes, nothing that merely converts to bytes."""

import hashlib
import hmac

import pytest

import flowmap
from flowmap.errors import ConfigError
from flowmap.tagging import Tagger


class _SecretHolder:
    """A key object an app might pass by mistake: its text is the secret."""

    def __str__(self) -> str:
        return "s3cr3t-key-material"

    def __bytes__(self) -> bytes:
        return b"s3cr3t-key-material"


@pytest.mark.parametrize("key", [123, 0, True, 1.5, [1, 2, 3], _SecretHolder()], ids=repr)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_a_key_that_is_neither_text_nor_bytes_is_a_config_error(key, dev_mode):
    # bytes(123) made a key of 123 NUL bytes, silently; 0 and False fell back to the dev key
    with pytest.raises(ConfigError, match="tenant key must be a string") as err:
        Tagger(key, dev_mode=dev_mode)
    message = str(err.value)
    assert "s3cr3t" not in message and "123" not in message and "1.5" not in message
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_configure_refuses_a_key_that_is_not_text():
    with pytest.raises(flowmap.ConfigError, match="tenant key must be a string"):
        flowmap.configure(tenant_key=123, set_global=False, exporters="none", instrument_httpx=False)


@pytest.mark.parametrize("key", [b"k3y", bytearray(b"k3y"), memoryview(b"k3y"), "k3y"], ids=repr)
def test_text_and_bytes_keys_tag_alike(key):
    expected = hmac.new(b"k3y", b"acme", hashlib.sha256).hexdigest()[:16]
    assert Tagger(key).tag("acme") == expected


@pytest.mark.parametrize("value", ["0123456789abcdef\n", "0123456789abcdef\r\n", " 0123456789abcdef", "0123456789abcdef "])
def test_a_tag_with_whitespace_around_it_is_no_tag(value):
    """A regex ending in "$" matches before a final newline: "…\\n" (baggage's %0A,
    percent-decoded) would pass for a tag at bind_tag, consume and the analysis."""
    from flowmap.tagging import is_opaque_tag

    assert is_opaque_tag(value.strip()) and not is_opaque_tag(value)
