"""Imported by Python at start-up in every process ``flowmap run`` starts (via PYTHONPATH).

It hands over to :func:`flowmap._bootstrap.start`, then runs the ``sitecustomize`` this
one shadows, if there is one, so the environment's own start-up code still runs.
Nothing here may stop the program: every failure is one line on stderr.
"""

import os
import sys


def _flowmap_start() -> None:
    try:
        from flowmap._bootstrap import start
    except Exception as exc:  # noqa: BLE001 - e.g. another interpreter without flowmap
        if os.environ.get("FLOWMAP_RUN") == "1":
            sys.stderr.write(f"flowmap run: this Python cannot import flowmap ({type(exc).__name__}); "
                             f"{sys.executable} is not traced\n")
        return
    start()


def _chain() -> None:
    """Load the next ``sitecustomize`` on sys.path (the one this module shadows)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - as site.py does: report and continue
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")


_flowmap_start()
_chain()
