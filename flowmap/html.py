"""``flowmap report``: the HTML risk map, one self-contained file.

The page works from ``file://`` with no network: CSS and the script are inlined, data
for the script travels as JSON in a ``<script type="application/json">`` block, and a
Content-Security-Policy allows nothing else (the one script by its sha256 hash). Every
value from a trace file is attacker-controlled: jinja2 autoescapes it in the markup,
:func:`script_json` makes the JSON block unable to close its ``<script>``, and the
script inserts text with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

import jinja2

from . import __version__
from .files import write_atomically
from .model import Analysis
from .report_data import DEFAULT_CAPS, EDGE_KINDS, Caps, ReportData, build_report_data, script_json

__all__ = ["write_report", "render_report", "render_data", "script_json", "DEFAULT_REPORT_PATH"]

DEFAULT_REPORT_PATH = Path("reports/risk-map.html")
_TEMPLATES = Path(__file__).parent / "templates"

_SURROGATE = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def _script() -> tuple[str, str]:
    """The page script and its CSP hash (the script is static: data never goes in it)."""
    js = (_TEMPLATES / "risk_map.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return js, f"'sha256-{digest}'"


def render_data(data: ReportData) -> str:
    """The page for already prepared report data."""
    js, js_hash = _script()
    css = (_TEMPLATES / "risk_map.css").read_text(encoding="utf-8")
    csp = (
        "default-src 'none'; "
        f"script-src {js_hash}; "
        "style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )
    html = _env().get_template("risk_map.html.j2").render(
        d=data,
        h=data.header,
        csp=csp,
        css=css,  # static file of ours, inserted unescaped in <style>
        script=js,
        data_json=script_json(data.script_data()),
        edge_kinds=EDGE_KINDS,
        version=__version__,
    )
    # a lone surrogate (an input file named in bytes that are no UTF-8, kept by Python as
    # U+DCxx) is shown as U+FFFD, whether the page is written to a file or to stdout
    return _SURROGATE.sub("\ufffd", html)


def render_report(analysis: Analysis, caps: Caps = DEFAULT_CAPS, *, content: bool = False) -> str:
    """The complete HTML of the risk map for ``analysis`` (conversation and tool content
    shown by its size only, unless ``content``)."""
    return render_data(build_report_data(analysis, caps, content=content))


def write_report(
    analysis: Analysis, path: str | Path = DEFAULT_REPORT_PATH, caps: Caps = DEFAULT_CAPS, *, content: bool = False
) -> Path:
    """Write the risk map to ``path`` (parent directories created) and return the path."""
    out = Path(path)
    write_atomically(out, render_report(analysis, caps, content=content).encode("utf-8"), "report")
    return out
