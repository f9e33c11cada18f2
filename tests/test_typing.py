"""The public API as a type checker sees it: flowmap ships py.typed, so mistakes in code
that uses ``flowmap.RequestContext`` or ``flowmap.current()`` must be type errors, not ``Any``."""

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flowmap

PACKAGE = Path(flowmap.__file__).parent


def _lazy_names_and_type_checking_imports() -> tuple[set[str], set[str]]:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    lazy: set[str] = set()
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            lazy = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    # "import x as x": the explicit re-export a strict checker accepts
                    typed |= {a.asname for a in stmt.names if a.asname == a.name}
    return lazy, typed


def test_every_lazily_exported_name_is_known_to_type_checkers():
    lazy, typed = _lazy_names_and_type_checking_imports()
    assert lazy, "flowmap/__init__.py no longer has the _LAZY table this test reads"
    assert set(flowmap.__all__) >= lazy
    assert lazy - typed == set(), "lazy names without an `if TYPE_CHECKING:` import"


def test_the_lazy_names_still_load_lazily():
    code = "import sys, flowmap; print(sorted(m for m in sys.modules if m.startswith(('flowmap.context', 'opentelemetry.sdk'))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    ).stdout
    assert out.strip() == "[]"


USER_CODE = textwrap.dedent(
    """\
    import flowmap
    from flowmap import RequestContext

    flowmap.RequestContext(tenant_id=1)
    RequestContext(tenant="a")
    flowmap.current().tenant_idd
    with flowmap.bind(flowmap.RequestContext("acme")) as ctx:
        reveal_type(ctx)
    reveal_type(flowmap.boundary)
    reveal_type(flowmap.configure)
    reveal_type(flowmap.analyze)
    """
)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is in the test extra; not installed here")
def test_mypy_reports_misuse_of_the_public_api(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
            "--python-executable", sys.executable, "--no-error-summary", "--hide-error-context",
            str(user.name),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MYPYPATH": str(PACKAGE.parent)},  # this checkout's flowmap, not an installed one
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr

    def on(line_no: int) -> str:
        return "\n".join(line for line in lines if line.startswith(f"user_code.py:{line_no}:"))

    assert 'incompatible type "int"; expected "str"' in on(4)
    assert 'Unexpected keyword argument "tenant"' in on(5)
    assert '"RequestContext" has no attribute "tenant_idd"' in on(6)
    assert 'Revealed type is "flowmap.context.RequestContext' in on(8)
    for line_no in (9, 10, 11):  # the real signatures, not Any
        assert "Revealed type is" in on(line_no) and '"Any"' not in on(line_no), on(line_no)
