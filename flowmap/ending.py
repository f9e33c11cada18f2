"""What flowmap does as its process ends: export what is buffered first.

Why: SIGTERM (and SIGHUP) end a process without ``atexit``, so spans a batch processor
still holds are lost — a service stopped by Kubernetes, docker or systemd, ``uvicorn``
re-raising SIGTERM after its graceful shutdown, a pool's terminated workers. Both
``flowmap run``'s bootstrap and :func:`flowmap.configure` install the handler, only
where the signal is at its default (then the process would have ended without a word):
it flushes, waited for at most a few seconds, and ends the process by the same signal,
so its exit status is unchanged. Both also flush the workers ``multiprocessing`` forks,
which end with ``os._exit`` and so skip ``atexit`` (:func:`flush_multiprocessing_workers`).

What it costs: a Python signal handler runs between two bytecodes of the main thread,
so a main thread blocked in C code (a long database call, a C extension's wait) takes
the signal only when that returns — a supervisor's SIGKILL after its grace period still
ends it. Only the main thread can install a handler: ``configure()`` from another thread
installs none. So a ``multiprocessing`` worker, whose main thread may block in C for
good (on the queue lock ``Pool.terminate()`` holds), keeps the default action and writes
each span as it ends instead (:func:`keep_default_ending_signals`); and both signals are
blocked while a process forks, since CPython's after-fork code clears one that reached
the child before it (the child would neither flush nor end).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

__all__ = ["flush", "flush_on_ending_signals", "flush_multiprocessing_workers"]

_TERM_FLUSH_WAIT = 3.0  # seconds a SIGTERM waits for the flush before it ends the process

_flushing: threading.Thread | None = None  # the thread flushing now (see _on_ending_signal)
_deferred: list[int] = []  # an ending signal that came while the main thread flushed


def flush() -> None:
    """Export what this process's flowmap runtime buffered (never raises)."""
    global _flushing
    _flushing = threading.current_thread()
    try:
        from flowmap import runtime

        rt = runtime.current_runtime()
        if rt is not None:
            rt.force_flush()
    except Exception:  # noqa: BLE001
        pass
    finally:
        _flushing = None
        if _deferred and threading.current_thread() is threading.main_thread():
            _end_by(_deferred[0])


def _flush_within(seconds: float) -> None:
    """Flush from another thread, waited for at most ``seconds``: a signal handler runs
    between two bytecodes of the main thread, which may hold the exporter's lock then."""
    flusher = threading.Thread(target=flush, name="flowmap-flush", daemon=True)
    flusher.start()
    flusher.join(seconds)


def _on_ending_signal(signum: int, frame: Any) -> None:
    if _flushing is threading.current_thread():
        # The main thread was flushing already (at exit: a pool terminates its workers
        # while their exit finalizers write): it holds the exporter, so a second flush
        # would wait for it in vain. Let it finish, then end by the signal.
        _deferred.append(signum)
        return
    try:
        _flush_within(_TERM_FLUSH_WAIT)
    except Exception:  # noqa: BLE001 - e.g. no new thread at interpreter shutdown: still end
        pass
    _end_by(signum)


def _end_by(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)  # ends the process as the signal would have (its exit status too)


#: signals whose default action ends the process without ``atexit``
_ENDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


_fork_mask: set[int] | None = None  # the forking thread's signal mask while it forks
_hooks_registered = False
_default_here = False  # this process keeps SIGTERM/SIGHUP at their default (a multiprocessing child)


def _block_ending_signals_before_fork() -> None:
    """A signal sent to a child before CPython's after-fork code ran is taken by the C
    handler and then cleared (``_PySignal_AfterFork``): the child never flushes *nor ends*
    (``Process.start(); Process.terminate()`` left the child running). So the ending
    signals are blocked across the fork: one that comes meanwhile waits in the kernel."""
    global _fork_mask
    try:
        ours = [s for s in _ENDING_SIGNALS if signal.getsignal(s) is _on_ending_signal]
        if ours:
            _fork_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ours)
    except Exception:  # noqa: BLE001
        _fork_mask = None


def _unblock_in_parent() -> None:
    global _fork_mask
    mask, _fork_mask = _fork_mask, None
    if mask is not None:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        except Exception:  # noqa: BLE001
            pass


def _unblock_in_child() -> None:
    global _fork_mask
    mask, _fork_mask = _fork_mask, None
    if mask is None:
        return
    try:
        for signum in signal.sigpending() & set(_ENDING_SIGNALS):
            if signum not in mask:  # sent before the child ran: it ends now, as without flowmap
                signal.signal(signum, signal.SIG_DFL)  # (nothing of its own to flush yet)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    except Exception:  # noqa: BLE001
        pass


def keep_default_ending_signals() -> None:
    """For a multiprocessing child (its spans are exported as they end: configure's
    _BatchSpanProcessor; installed by :func:`flush_multiprocessing_workers`):
    SIGTERM/SIGHUP end it at once, as without flowmap. A Python handler runs only when the
    main thread runs Python again: a Pool worker whose main thread is about to block on the
    queue lock that Pool.terminate() holds for good takes the C-level signal, then blocks
    for ever, and the pool's join with it."""
    global _default_here
    _default_here = True
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _ENDING_SIGNALS:
        if signal.getsignal(signum) is _on_ending_signal:
            signal.signal(signum, signal.SIG_DFL)


def ends_by_default_here() -> bool:
    """Whether this process is a multiprocessing child whose ending signals were left at
    their default (:func:`keep_default_ending_signals`): its spans are exported as they end."""
    return _default_here


def flush_on_ending_signals() -> None:
    """SIGTERM (and SIGHUP) end a process without ``atexit``, losing what the exporter
    buffered (a server stopped by its supervisor, ``uvicorn`` re-raising SIGTERM after a
    graceful shutdown, a pool's terminated workers, a closed terminal). Only where the
    program left the signal at its default: a handler of its own is its own business
    (and servers that restore the previous handler on shutdown restore this one)."""
    global _hooks_registered
    if _default_here or threading.current_thread() is not threading.main_thread():
        return
    for signum in _ENDING_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_ending_signal)
    if not _hooks_registered and hasattr(os, "register_at_fork"):
        _hooks_registered = True
        os.register_at_fork(before=_block_ending_signals_before_fork,
                            after_in_parent=_unblock_in_parent, after_in_child=_unblock_in_child)


class _Token:
    """Kept alive for multiprocessing's after-fork registry (it holds weak references)."""


_AFTER_FORK = _Token()
_workers_hooked = False
_workers_guard = threading.Lock()


def flush_multiprocessing_workers() -> None:
    """The workers ``multiprocessing`` forks end with ``os._exit``, which skips ``atexit``
    (and the SDK's own flush there): what they buffered was lost. In each of them
    multiprocessing's exit finalizers flush instead, and SIGTERM/SIGHUP keep their
    default action, each span being written as it ends (:func:`keep_default_ending_signals`).
    For ``flowmap run``'s bootstrap and :func:`flowmap.configure` alike; the child of a
    plain ``os.fork()`` gets no help (it ends as the program makes it)."""
    global _workers_hooked
    if _being_started_by_multiprocessing():
        # a worker forked by a forkserver (Python 3.14's default on Linux) imports the
        # program's main module, and the configure() in it, after the fork: no fork hook
        # of ours ran there (nor in a spawned one, which exits by atexit but is a
        # worker Pool.terminate() may find blocked in C all the same)
        _in_forked_child()
    with _workers_guard:
        if _workers_hooked or not hasattr(os, "register_at_fork"):
            return
        _workers_hooked = True
    os.register_at_fork(after_in_child=_in_forked_child)  # once: hooks cannot be removed


def _being_started_by_multiprocessing() -> bool:
    """Whether this process is a multiprocessing child (spawned, or forked by a
    forkserver) importing what its target needs, before it runs its after-fork hooks
    (or a forkserver preloading the main module): ``multiprocessing.spawn`` marks the
    process ``_inheriting`` meanwhile."""
    mp_process = sys.modules.get("multiprocessing.process")
    return mp_process is not None and bool(getattr(mp_process.current_process(), "_inheriting", False))


def _in_forked_child() -> None:
    # a multiprocessing worker runs its after-fork hooks after clearing its finalizers
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.register_after_fork(_AFTER_FORK, _finalize_worker)


_finalized_in = 0  # the pid of the worker _finalize_worker ran in


def _finalize_worker(_: Any) -> None:
    global _finalized_in
    if _finalized_in == os.getpid():
        return  # registered twice: inherited (from a forkserver that configured, say) and here
    _finalized_in = os.getpid()
    sys.modules["multiprocessing.util"].Finalize(None, flush, exitpriority=10)
    keep_default_ending_signals()  # terminate() ends it at once; its spans are written as they end
