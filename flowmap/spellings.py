"""The ways a tenant id is written where it leaks: in a URL, a form body, JSON text.

Why: an id with a space, ``@`` or an accent appears in a route or a query string only in
its encoded form (``acme%20corp``, ``acme+corp``, ``caf\\u00e9``), which the id itself does
not match. The runtime's redaction scrubs these spellings of the bound id, and the
analyzer masks them with a flagged one.
"""

from __future__ import annotations

import json
import urllib.parse

__all__ = ["spellings"]

# characters a URL path or query keeps as they are (RFC 3986 unreserved and sub-delims)
_URL_SAFE = "/:@!$&'()*,;=-._~"
_JS_COMPONENT_SAFE = "!'()*"  # and the unreserved: what JavaScript's encodeURIComponent keeps
_FORM_SAFE = "*"  # x-www-form-urlencoded (URLSearchParams, Java's URLEncoder): also "-._", space as +


def spellings(value: str) -> set[str]:
    """``value`` and its encoded spellings: percent-encoded (fully, as ``urllib.parse.quote`` does by default, or as a path or query
    keeps it, or as JavaScript, Java and form encoders do), spaces as ``+`` or ``%20``,
    JSON string text (non-ASCII as ``\\u`` escapes or as is), an SQL literal's doubled
    or (MySQL's) backslash-escaped quotes. Just ``{value}`` for the usual id (letters,
    digits, ``.``, ``-``, ``_``), which no encoding changes."""
    out = {value}
    if value.isascii() and value.replace(".", "").replace("-", "").replace("_", "").isalnum():
        return out
    # (an unpaired surrogate, from JSON text an app cut inside an emoji, is encoded as
    # Python's surrogatepass writes it: UTF-8 has no spelling for it)
    for safe in ("", "/", _URL_SAFE, _JS_COMPONENT_SAFE):  # "/": Python's quote() default
        out.add(urllib.parse.quote(value, safe=safe, errors="surrogatepass"))
    for safe in ("", "/", _URL_SAFE, _FORM_SAFE):
        out.add(urllib.parse.quote_plus(value, safe=safe, errors="surrogatepass"))
    out.add(value.replace(" ", "%20"))
    out.add(value.replace(" ", "+"))
    if "~" in value:  # Python never encodes it; Java's URLEncoder, URLSearchParams and PHP do
        out |= {s.replace("~", "%7E") for s in out if "~" in s}
    out.add(json.dumps(value)[1:-1])
    out.add(json.dumps(value, ensure_ascii=False)[1:-1])  # as pydantic, orjson, LangChain write it
    if "'" in value:  # inside an SQL literal: 'O''Brien', MySQL's 'O\'Brien' (flowmap.masking reads query text)
        out.add(value.replace("'", "''"))
        out.add(value.replace("'", "\\'"))
    return out
