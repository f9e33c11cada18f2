"""Documented snippets run as written: the README's "Instrument your own app" (over real HTTP), docs/pytest.md's two-tenant test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from flowmap.analysis import analyze
from flowmap.model import Severity

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
    tenants_by_token = {"Bearer t-acme": "acme-corp", "Bearer t-globex": "globex-inc"}
    def user_of(token): return "user-" + token[-4:]
    class Index:
        docs = [("acme-corp", "acme refund policy"), ("globex-inc", "globex refund policy")]
        def search(self, query, where):
            return [text for tenant, text in self.docs if tenant == where["tenant"] and query in text]
    index = Index()

    async def app(scope, receive, send):
        hits = search_docs("refund")
        body = ("|".join(hits)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
"""

EPILOGUE = """
    import httpx, sys
    from servers import serve
    import flowmap.outbound
    flowmap.outbound.uninstrument_httpx()   # this script plays the untraced caller
    with serve(app) as server:
        for token in tenants_by_token:
            r = httpx.get(server.url + "/chat", headers={"authorization": token})
            print(r.status_code, r.text)
        print(httpx.get(server.url + "/chat").status_code)   # no token: refused
    try:
        search_docs("refund")                                 # no tenant bound: fails closed
    except flowmap.MissingContextError:
        print("refused")
    flowmap.configure.__call__  # the module stays callable
"""


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Instrument your own app", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs_and_keeps_tenants_apart(tmp_path):
    snippet = _readme_snippet()
    # The snippet wraps `app`, so the app must exist before it; search_docs is looked up at call time.
    script = textwrap.dedent(PRELUDE) + "\n" + snippet + "\n" + textwrap.dedent(EPILOGUE)
    path = tmp_path / "app.py"
    path.write_text(script)
    env = dict(os.environ, FLOWMAP_TENANT_KEY="readme-key", FLOWMAP_FILE=str(tmp_path / "t.jsonl"),
               PYTHONPATH=str(ROOT / "tests"))
    env.pop("FLOWMAP_DEV_MODE", None)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["200 acme refund policy", "200 globex refund policy"]
    assert lines[2] == "401" and lines[3] == "refused"
    analysis = analyze([tmp_path / "t.jsonl"])
    assert analysis.spans >= 4 and len(analysis.tenant_tags) == 2
    serious = [(f.rule, f.span_name) for f in analysis.findings if f.severity >= Severity.MEDIUM]
    assert serious == [("orphan-root", "search_docs")]  # only the refused call made outside any request
    raw = (tmp_path / "t.jsonl").read_text()
    assert "acme-corp" not in raw and "globex-inc" not in raw


def test_docs_two_tenant_example_catches_its_cache_leak(tmp_path):
    """docs/pytest.md's two-tenant example runs as written and fails on the leak it shows."""
    text = (ROOT / "docs" / "pytest.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = next(b for b in blocks if "flowmap_two_tenants.run(flow, seed=seed)" in b)
    (tmp_path / "test_example.py").write_text("import flowmap\n\n" + example, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "two-tenant run leaked across tenants" in proc.stdout
    assert "holds tenant " in proc.stdout and "canary" in proc.stdout


# --- the docs name only what exists, and name all of it ------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = ("check", "report", "run", "demo", "tag")


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS)


def _options() -> dict[str, dict[str, bool]]:
    """Each command's option names (``--format``, ``-f``, ``--help``), from the CLI itself,
    and whether each takes a value."""
    import typer

    from flowmap.cli import app

    group = typer.main.get_command(app)
    return {name: {"--help": False} | {o: not getattr(p, "is_flag", False) for p in group.commands[name].params
                                       for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
            for name in COMMANDS}


def _named_options(text: str, options: dict[str, dict[str, bool]]) -> list[tuple[str, str]]:
    """(command, option) for each option a doc writes after ``flowmap COMMAND``, in a code
    span, a line of a code block or a row of a table. What follows a lone ``--``, a pipe
    or a comment belongs to another program, and so does what follows the program
    ``flowmap run`` is given (``flowmap run app.py --port 8000``)."""
    spans = re.findall(r"`([^`\n]+)`", text) + [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
                                               for line in block.splitlines()]
    rows = [line for line in text.splitlines() if line.startswith("| `flowmap ")]
    named = []
    for piece in spans + rows:
        ends = r"\s--(?=\s|$)" if piece in rows else r"\s--(?=\s|$)|\s\|\|?\s|\s#"
        for m in re.finditer(r"\bflowmap (check|report|run|demo|tag)\b(.*)", piece):
            cmd, rest = m.group(1), re.split(ends, m.group(2))[0]
            if cmd == "run" and piece not in rows:
                words, kept = rest.split(), []
                while words and words[0].startswith("-"):
                    kept.append(words.pop(0))
                    if options[cmd].get(kept[-1]) and words:
                        words.pop(0)  # its value
                rest = " ".join(kept)
            named += [(cmd, opt) for opt in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", rest)]
    return named


def test_every_cli_option_the_docs_name_exists():
    options = _options()
    named = _named_options(_docs_text(), options)
    assert ("check", "--fail-on") in named and ("demo", "--fixed") in named  # the scan finds them
    wrong = sorted({(cmd, opt) for cmd, opt in named if opt not in options[cmd]})
    assert not wrong, f"options the docs name that the command does not have: {wrong}"


def test_every_cli_option_is_documented():
    text = _docs_text()
    missing = sorted({(cmd, opt) for cmd, opts in _options().items() for opt in opts
                      if opt.startswith("--") and opt != "--help" and f"`{opt}" not in text and f" {opt}" not in text})
    assert not missing, f"CLI options no doc mentions: {missing}"


def test_every_config_key_is_documented_in_the_readme():
    from flowmap.config import KNOWN_KEYS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(k for k in KNOWN_KEYS if not re.search(rf"`{k}\b|^{k} =", readme, re.M))
    assert not missing, f"[tool.flowmap] keys the README never names: {missing}"


# Variables one flowmap process sets for another (flowmap run's bootstrap, the demo's services).
INTERNAL_ENV = {"FLOWMAP_RUN", "FLOWMAP_RUN_SERVICE", "FLOWMAP_RUN_ALLOWED_HOSTS", "FLOWMAP_DEMO_LEAKS"}


def test_environment_variables_in_the_docs_are_the_code_s():
    code = "\n".join(p.read_text(encoding="utf-8") for base in (ROOT / "flowmap", ROOT / "instrumentations")
                     for p in base.rglob("*.py"))
    in_code = set(re.findall(r"\bFLOWMAP_[A-Z_]*[A-Z]\b", code))
    in_docs = set(re.findall(r"\bFLOWMAP_[A-Z_]*[A-Z]\b", _docs_text()))
    assert not in_docs - in_code, f"variables the docs name that nothing reads: {sorted(in_docs - in_code)}"
    undocumented = in_code - in_docs - INTERNAL_ENV
    assert not undocumented, f"variables flowmap reads that no doc names: {sorted(undocumented)}"


def test_pytest_options_in_the_docs_exist():
    plugin = (ROOT / "flowmap" / "pytest_plugin.py").read_text(encoding="utf-8")
    real = set(re.findall(r"\"(--flowmap-[a-z-]+)\"", plugin)) | set(re.findall(r"addini\(\s*\"(\w+)\"", plugin))
    named = set(re.findall(r"--flowmap-[a-z-]+|\bflowmap_(?:strict|fail_on)\b", _docs_text()))
    assert named and not named - real, f"pytest options the docs name that the plugin lacks: {sorted(named - real)}"
    assert not real - named, f"pytest options no doc names: {sorted(real - named)}"


INSTRUMENTATION_DOCS = sorted(ROOT.glob("instrumentations/*/README.md"))


def _anchors(doc: Path) -> set[str]:
    """The ``#fragment``s a page has: explicit ``id="…"`` and its headings, slugged as
    GitHub does (lower case, punctuation dropped, spaces as ``-``)."""
    text = doc.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return set(re.findall(r'id="([^"]+)"', text)) | {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_to_repository_files_and_anchors_resolve():
    broken = []
    for doc in [*DOCS, *INSTRUMENTATION_DOCS]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", doc.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = doc.parent / target if target else doc
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
                broken.append(f"{doc.relative_to(ROOT)} -> {target}#{anchor}")
    assert not broken, broken


def test_every_configure_keyword_is_in_the_readme():
    import inspect

    from flowmap.configure import configure

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [k for k in inspect.signature(configure).parameters if f"{k}=" not in readme]
    assert not missing, f"flowmap.configure() keywords the README never names: {missing}"


def test_the_rules_table_has_every_rule_at_its_severity():
    from flowmap.formats.rules import RULES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r'^\| <a id="[^"]+"></a>`([a-z-]+)` \| (\w+)', readme, re.M))
    assert rows == {r.id: r.severity.name.lower() for r in RULES}


def test_the_caps_the_readme_quotes_are_the_defaults():
    """Each ``max_*`` key of ``[tool.flowmap]`` is stated with its default."""
    import dataclasses

    from flowmap.settings import AnalysisSettings

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    where = {"max_operations_per_service": "at most {} distinct span names a service",
             "max_operations": "distinct span names a service and {} operations"}
    wrong = []
    for f in dataclasses.fields(AnalysisSettings):
        if not f.name.startswith("max_"):
            continue
        if f.default is None:
            claim = rf"`{f.name}` \([^()]*default: all"
        else:
            claim = re.escape(where.get(f.name, f"`{f.name}` ({{}}")).replace(r"\{\}", r"(?:the )?{}")
            claim = claim.format(f"{f.default:,}") + r"\b"
        if not re.search(claim, readme):
            wrong.append(f.name)
    assert not wrong, f"caps the README does not state with their default: {wrong}"


def test_the_sarif_cap_is_the_code_s():
    from flowmap.formats.sarif import MAX_RESULTS

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"at most {MAX_RESULTS:,} results" in readme


def test_the_report_caps_table_is_the_code_s():
    from flowmap.report_data import DEFAULT_CAPS as c
    from flowmap.report_data import NAME_CHARS

    text = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    rows = {name: [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", limits)]
            for name, limits in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", text, re.M)}
    assert {
        "operations on the map": [c.nodes],
        "call edges on the map": [c.edges],
        "rows in the findings table": [c.findings],
        "traces in the trace view": [c.traces, c.span_budget],
        "spans shown per trace": [c.spans_per_trace],
        "example traces per arrow / operation": [c.examples_per_edge],
        "attributes per span / characters per value": [c.attributes_per_span, c.value_chars, c.attribute_chars],
        "characters of a span name / service name": [c.name_chars, c.service_chars, NAME_CHARS],
    }.items() <= rows.items()


def test_every_public_name_is_documented():
    import flowmap

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in flowmap.__all__ if not re.search(rf"`(?:flowmap\.)?{name}\b", readme)]
    assert not missing, f"flowmap.__all__ names the README never mentions: {missing}"


def test_every_module_is_in_the_readme_layout():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1]
    modules = sorted(p.stem for p in (ROOT / "flowmap").glob("*.py") if not p.stem.startswith("__"))
    missing = [m for m in modules if f"`{m}`" not in layout]
    assert not missing, f"modules the README's layout leaves out: {missing}"
    scripts = sorted(p.name for base in ("benchmarks", "scripts") for p in (ROOT / base).glob("*.*") if p.suffix != ".md")
    missing = [s for s in scripts if s not in layout]
    assert not missing, f"benchmarks and scripts the README's layout leaves out: {missing}"
