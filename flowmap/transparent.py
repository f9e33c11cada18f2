"""Spans the analysis passes through: service-mesh proxies and configured services.

Why: a sidecar or gateway (Envoy, under Istio, Consul or as an edge proxy) traces every
request it forwards, and never carries the tenant: it runs no application code. Left in,
each hop out of a tagged service would read as a dropped context (a tagged client span
whose child, the proxy's egress span, has no tag), and a mesh would fail CI on every
call. Such spans are taken out before the span graph is built and their children hang
from the nearest span above them, so the tenant is judged from the calling service to
the called one, across the proxies, as if they were not there.

Which spans: those Envoy marks ``component=proxy`` (it sets this on every span it makes;
found by the loader at no cost to other spans), and every span of a service named in the
``transparent_services`` setting (``[tool.flowmap]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import msgspec

from .conventions import PROXY_KEY, PROXY_VALUE
from .model import Trace

__all__ = ["PROXY_KEY", "PROXY_VALUE", "transparent_spans", "pass_through"]



def transparent_spans(trace: Trace, services: frozenset[str] = frozenset()) -> list[str]:
    """Ids of the spans of ``trace`` to pass through (in the trace, each once)."""
    spans = trace.spans
    marked: Iterable[str] | None = trace.transparent
    if marked is None:  # a trace the loader did not read: look at the attributes
        marked = [sid for sid, s in spans.items() if s.attributes.get(PROXY_KEY) == PROXY_VALUE]
    ids = dict.fromkeys(sid for sid in marked if sid in spans)
    if services:
        ids.update(dict.fromkeys(sid for sid, s in spans.items() if s.service in services))
    return list(ids)


def pass_through(trace: Trace, ids: Iterable[str]) -> Trace:
    """``trace`` without the spans ``ids``, each of their children re-parented to the
    nearest span above that stays (or to none: it then starts its own subtree, a root when
    the passed-through span was one). The given trace and its spans are left as they were:
    re-parented children are copies."""
    spans = trace.spans
    gone = {sid: spans[sid].parent_span_id for sid in ids if sid in spans}
    above = _kept_above(gone)
    kept = {}
    for sid, span in spans.items():
        if sid in gone:
            continue
        parent = span.parent_span_id
        if parent in gone:
            span = _with_parent(span, above[parent])
        kept[sid] = span
    return Trace(trace.trace_id, kept, trace.maybe_linked, trace.links_in, (), trace.linked_spans)


def _kept_above(gone: dict[str, str | None]) -> dict[str, str | None]:
    """For each passed-through span, the nearest span above it that stays (None at the
    top, or for proxies in a parent cycle): each chain walked once, so linear."""
    above: dict[str, str | None] = {}
    for start in gone:
        walk: dict[str, None] = {}  # in order, with set lookups
        node: str | None = start
        while node in gone and node not in above:
            if node in walk:  # a cycle of passed-through spans: nothing above stays
                break
            walk[node] = None
            node = gone[node]
        end = above[node] if node in above else (None if node in gone else node)
        for sid in walk:
            above[sid] = end
    return above


def _with_parent(span: object, parent: str | None) -> object:
    if isinstance(span, msgspec.Struct):
        return msgspec.structs.replace(span, parent_span_id=parent)
    return dataclasses.replace(span, parent_span_id=parent)  # type: ignore[type-var]
