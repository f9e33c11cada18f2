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
