"""Imported by Python at start-up in every process ``flowmap run`` starts (via PYTHONPATH).

It hands over to :func:`flowmap._bootstrap.start`, then runs the ``sitecustomize`` this
one shadows, if there is one, so the environment's own start-up code still runs (such as
opentelemetry-instrument's), and keeps flowmap's directory first on ``PYTHONPATH`` for the
processes this one starts.
Nothing here may stop the program: every failure is one line on stderr.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


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

    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - as site.py does: report and continue
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")


def _stay_first() -> None:
    """Keep flowmap's directory first on PYTHONPATH for the processes this one starts.

    opentelemetry-instrument's ``sitecustomize`` (run by :func:`_chain`) puts its own
    directory back first when it is done, and it runs no other ``sitecustomize``: the
    program's child Python processes would run it alone, untraced by flowmap. With
    flowmap's first again they run both, flowmap's first, as this process did.
    """
    if os.environ.get("FLOWMAP_RUN") != "1":
        return
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    mine = [os.path.abspath(p) == _HERE for p in parts]
    if any(mine) and not mine[0]:
        os.environ["PYTHONPATH"] = os.pathsep.join([_HERE] + [p for p, m in zip(parts, mine) if not m])


_flowmap_start()
_chain()
_stay_first()
