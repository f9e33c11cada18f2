"""RedactionProcessor: no raw tenant id this process knows leaves it in a span.

How, with SDK 1.45.2: ``Span.end()`` calls every processor's ``_on_ending(span)``
*before* it builds the ReadableSpan that every ``on_end`` (and so every exporter,
flowmap's or the application's) receives. So rewriting the ending span there covers all
export processors whatever their order — also on a provider the application configured
itself. Raw ids stay in process memory only, never in an attribute.

Which ids: every span is scrubbed of

* its own tenant's id — the tenant bound now, the tenant whose ``flowmap.tenant`` tag the
  span carries (mapped back in-process, so a span that ends on another thread or after
  its request is covered), any captured at ``on_start`` by the standalone processor or
  registered with :func:`register_tenant_id`;
* and every raw id this process has bound recently (:class:`_KnownIds`: the most recent
  :func:`known_ids_limit` distinct ids, 10,000 by default, settable with
  :func:`set_known_ids_limit` or ``FLOWMAP_REDACT_KNOWN_IDS``), whatever the span's own
  tenant. Tenant B's request whose span holds tenant A's id (``url.path=/t/<A>/docs``,
  a cache entry served across tenants) is the cross-tenant (IDOR) case flowmap exists to
  catch: the id is scrubbed like the span's own, and the span is marked
  ``flowmap.redacted.foreign`` = how many *other* tenants' ids were scrubbed from it
  (only when the span's own tenant is known here: its tag maps to a raw id bound in this
  process, or it ends in its binding). Spans with neither a binding nor a tag (a thread
  pool orphan, an outer server span, a batch job) get the same scan.

What is scrubbed: span name, attribute keys and values (strings, sequences, maps, and
numbers equal to the id under an attribute whose key names a tenant — ``tenant_id``,
``app.account_id`` …, see :data:`flowmap.attributes.TENANT_ID_ATTRIBUTE_NAMES`; an
``http.status_code`` of 200 is never a tenant "200"), event names and attributes, link
attributes, the status description. Ids of :data:`~flowmap.substrings.HEAD` characters
or more anywhere, shorter ones as whole tokens. The span then carries
``flowmap.redacted`` = number of values rewritten (and ``flowmap.redacted.foreign``, see
above); flowmap's own attributes are never the ones evicted to make room for these
marks under the SDK's attribute-count limit. A value that cannot be inspected (an int
too long to print) costs only itself: it is left as is, or replaced when inspecting it
failed, and the rest of the span is still scrubbed.

Cost: the scan runs on every span end, so it is built for the span that holds no id.
Every text of the span (name, keys, string values …) is looked up in a table of texts
already found clean (one dict lookup each: attribute keys, methods, hosts, route-shaped
span names repeat); only a text not seen since the known ids last changed is searched,
for the ids added since it was verified (a short log), or afresh with one combined
matcher (:class:`~flowmap.substrings.SubstringIndex`, updated in O(1) as an id is bound
or evicted, never rebuilt; plain ``in`` while there are few ids). So the cost does not
grow with the number of known tenants. Texts over 512 characters (prompts, documents)
are searched every time, at a cost proportional to their length.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status

from . import attributes as A
from .context import (
    _BINDING,
    _RAW_BY_TAG,
    Binding,
    _listen_known,
    known_ids_limit,
    set_known_ids_limit,
)
from .substrings import HEAD, SubstringIndex
from .tagging import is_opaque_tag

__all__ = [
    "RedactionProcessor",
    "REDACTED_VALUE",
    "REDACTED_FOREIGN",
    "scrub_text",
    "scrub_known",
    "register_tenant_id",
    "set_known_ids_limit",
    "known_ids_limit",
]

_log = logging.getLogger("flowmap.redaction")

REDACTED_VALUE = "[flowmap:redacted]"
#: how many *other* tenants' raw ids were scrubbed from a span (the cross-tenant case)
REDACTED_FOREIGN = A.REDACTED_FOREIGN
# flowmap's own attributes: never the ones evicted to make room for the redaction marks,
# and never rewritten while they hold what flowmap writes (see _flowmap_own)
_PROTECTED = frozenset(
    {A.TENANT, A.TENANT_SOURCE, A.BOUNDARY, A.SCOPED, A.UNSCOPED, A.TENANT_INBOUND, A.BAGGAGE_SENT,
     A.REDACTED, REDACTED_FOREIGN}
)
_SOURCES = frozenset({A.SOURCE_CONTEXT, A.SOURCE_BAGGAGE, A.SOURCE_EXPLICIT})


def _flowmap_own(key: str, value: Any) -> bool:
    """Whether ``key: value`` is one of flowmap's own attributes in the form flowmap writes
    it: never a raw id, so never scrubbed — a known id that happens to occur inside an
    opaque tag's hex (``4471``), or a tenant named like a source or a boundary kind, must
    not corrupt them. Anything else under these keys is scrubbed like any value."""
    if key == _TENANT or key == A.TENANT_INBOUND:
        return type(value) is str and is_opaque_tag(value)
    if key == A.TENANT_SOURCE:
        return type(value) is str and value in _SOURCES
    if key == A.BOUNDARY:
        return type(value) is str and value in A.BOUNDARY_KINDS
    return type(value) is bool or type(value) is int
# Raw ids to scrub from live spans, keyed by id(span): set at start (or by
# register_tenant_id), popped at the end. A side table rather than an attribute on the
# span because adding an attribute to an SDK Span un-shares its instance dict, which
# alone costs more than everything else flowmap does per span. Only spans that never end
# leave an entry behind, so the table is capped; a stale entry can only add an id to
# scrub, never remove one.
_PENDING: dict[int, tuple[str, ...]] = {}
_PENDING_CAP = 1 << 16
_TENANT = A.TENANT
# Ids this short would match inside unrelated words: only redact them as whole tokens.
_MIN_SUBSTRING_LEN = HEAD  # shorter ids are only scrubbed as whole tokens


@functools.lru_cache(maxsize=1024)
def _pattern(raw: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9A-Za-z])" + re.escape(raw) + r"(?![0-9A-Za-z])")


def scrub_text(text: str, raw_ids: Sequence[str]) -> tuple[str, int]:
    """``text`` with every raw id replaced, and how many occurrences were replaced."""
    n = 0
    if len(raw_ids) > 1:
        raw_ids = sorted(raw_ids, key=len, reverse=True)  # "acme-corp" before "acme"
    for raw in raw_ids:
        if len(raw) >= _MIN_SUBSTRING_LEN:
            if raw in text:
                n += text.count(raw)
                text = text.replace(raw, REDACTED_VALUE)
        elif raw in text:
            text, k = _pattern(raw).subn(REDACTED_VALUE, text)
            n += k
    return text, n


_tenant_key_check: Any = None
_TENANT_KEYS: dict[str, bool] = {}  # key -> whether it names a tenant (keys repeat)


def _is_tenant_key(key: Any) -> bool:
    """Whether an attribute key names a tenant (``tenant_id``, ``app.org_id``,
    ``enduser.account.id`` …), as the analyzer's tenant-in-telemetry rule reads it.
    Only asked for numbers that could equal a numeric raw id, so the analyzer's masking
    module (and its model) is imported on first use, not with the runtime."""
    global _tenant_key_check
    if type(key) is not str:
        return False
    known = _TENANT_KEYS.get(key)
    if known is not None:
        return known
    check = _tenant_key_check
    if check is None:
        from .masking import is_tenant_key

        names = A.TENANT_ID_ATTRIBUTE_NAMES
        check = _tenant_key_check = lambda k: is_tenant_key(k, names)
    known = bool(check(key))
    if len(_TENANT_KEYS) >= 4096:
        _TENANT_KEYS.clear()
    _TENANT_KEYS[key] = known
    return known


# A number is compared with a raw id only when it could print as that many digits:
# ``str()`` of an int beyond ``sys.get_int_max_str_digits()`` (4300 by default) raises.
_INT_BITS_MAX = 14_000  # ~4215 digits: below the default limit


def _number_text(v: Any, max_len: int) -> str | None:
    """``str(v)`` for an int or float, or None when it cannot have ``max_len`` characters
    or fewer (ints: decided from the bit length, before any conversion). Never raises."""
    try:
        # a d-digit int has at most 3.33 d + 1 bits
        if isinstance(v, int) and v.bit_length() > min(4 * max_len + 4, _INT_BITS_MAX):
            return None
        t = str(v)  # still guarded: the limit may have been lowered
    except (ValueError, OverflowError, TypeError):
        return None
    return t if len(t) <= max_len else None


def _number_is(v: Any, raw: str) -> bool:
    return _number_text(v, len(raw)) == raw


class _Scrubber:
    __slots__ = ("ids", "id_set", "count", "hits")

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = sorted(ids, key=len, reverse=True)  # "acme-corp" before "acme"
        self.id_set = frozenset(ids)
        self.count = 0
        self.hits: set[str] = set()  # the ids actually replaced somewhere

    def text(self, s: str) -> str:
        for raw in self.ids:
            if raw in s:
                if len(raw) >= _MIN_SUBSTRING_LEN:
                    n = s.count(raw)
                    s = s.replace(raw, REDACTED_VALUE)
                else:
                    s, n = _pattern(raw).subn(REDACTED_VALUE, s)
                if n:
                    self.count += n
                    self.hits.add(raw)
        return s

    def value(self, v: Any, key: Any = None) -> Any:
        """``v`` scrubbed; a number only under a key that names a tenant."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, bool) or v is None or isinstance(v, (bytes, bytearray)):
            return v
        if isinstance(v, (int, float)):
            if key is not None and _is_tenant_key(key):
                longest = max((len(r) for r in self.ids if _could_be_number(r)), default=0)
                t = _number_text(v, longest) if longest else None
                if t is not None and t in self.id_set:
                    self.count += 1
                    self.hits.add(t)
                    return REDACTED_VALUE
            return v
        if isinstance(v, Mapping):
            return {self.key(k): self.one(x, k) for k, x in v.items()}
        if isinstance(v, Sequence):
            before = self.count
            items = [self.one(x, key) for x in v]
            if self.count != before and any(isinstance(x, str) for x in items):
                # keep the sequence homogeneous once a number became a placeholder
                items = [x if isinstance(x, str) else str(x) for x in items]
            return tuple(items)
        return v

    def key(self, k: Any) -> Any:
        return self.text(k) if isinstance(k, str) else k

    def one(self, v: Any, key: Any) -> Any:
        """One value, so that a value that cannot be inspected costs only itself (and
        is replaced: it might hold the id)."""
        try:
            return self.value(v, key)
        except Exception:  # noqa: BLE001 - hostile value: fail closed, carry on
            _log.debug("flowmap: redaction could not inspect a value", exc_info=True)
            self.count += 1
            return REDACTED_VALUE

    def attrs(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not attrs:
            return None
        before = self.count
        out = {}
        for k, v in list(attrs.items()):
            if k in _PROTECTED:  # flowmap's key: never renamed; its own value kept
                if _flowmap_own(k, v):
                    out[k] = v
                    continue
                nk = k
            else:
                try:
                    nk = self.key(k)
                except Exception:  # noqa: BLE001
                    nk = k
            out[nk] = self.one(v, k)
        return out if self.count != before else None


def _bounded(old: Any, new: dict[str, Any]) -> BoundedAttributes:
    """``new`` in a container with ``old``'s limits and dropped count. When adding the
    redaction marks overflows the count limit, the oldest attributes that are not
    flowmap's own make room (the SDK would evict the oldest: the tenant tag, say)."""
    maxlen = getattr(old, "maxlen", None)
    dropped = getattr(old, "dropped", 0)
    if maxlen is not None and len(new) > maxlen:
        for k in [k for k in new if k not in _PROTECTED][: len(new) - maxlen]:
            del new[k]
            dropped += 1
    ba = BoundedAttributes(maxlen, new, immutable=True, max_value_len=getattr(old, "max_value_len", None))
    ba.dropped += dropped
    return ba


def _hit(v: Any, raw: str, key: Any = None) -> bool:
    """Cheap pre-check (a superset of what ``_Scrubber`` rewrites); never raises."""
    try:
        if isinstance(v, str):
            return raw in v
        if isinstance(v, bool) or v is None or isinstance(v, (bytes, bytearray)):
            return False
        if isinstance(v, (int, float)):
            return _could_be_number(raw) and _is_tenant_key(key) and _number_is(v, raw)
        if isinstance(v, Mapping):
            return any((isinstance(k, str) and raw in k) or _hit(x, raw, k) for k, x in v.items())
        if isinstance(v, Sequence):
            return any(_hit(x, raw, key) for x in v)
        return False
    except Exception:  # noqa: BLE001 - cannot tell: let the scrubber look (it fails closed)
        return True


@functools.lru_cache(maxsize=4096)
def _could_be_number(raw: str) -> bool:
    """Whether some int/float attribute could print as ``raw`` (else numbers are skipped).
    Cached: it runs per span and a failed ``float()`` raises, which is slow."""
    try:
        float(raw)
    except ValueError:
        return False
    return True


def register_tenant_id(span: Any, tenant_id: str) -> None:
    """Have redaction scrub ``tenant_id`` from ``span`` whenever it ends.

    Spans started inside ``flowmap.bind`` are covered already. This is for a span that
    starts before the binding and ends after it — e.g. the SERVER span of an outer ASGI
    instrumentation, whose ``url.path`` may hold the id. The id is kept on the live span
    object only, never in an attribute. A no-op for non-SDK or ended spans; never raises.
    """
    try:
        if not isinstance(tenant_id, str) or not tenant_id or not isinstance(span, Span):
            return
        if not span.is_recording():
            return
        ids = _PENDING.get(id(span)) or ()
        if tenant_id not in ids:
            _remember(span, (*ids, tenant_id))
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not register a tenant id for redaction", exc_info=True)


def _remember(span: Span, ids: tuple[str, ...]) -> None:
    if len(_PENDING) >= _PENDING_CAP:
        _PENDING.clear()  # only never-ended spans pile up; their ends fall back to the binding
    _PENDING[id(span)] = ids


def capture(span: Span, binding: Binding | None) -> None:
    """At span start: remember the bound raw id for the span's end (which may be elsewhere)."""
    if binding is not None and binding.raw_ids:
        _remember(span, binding.raw_ids)


def redact_ending(span: Span) -> int:
    """At span end (``_on_ending``): scrub the raw ids this span holds; returns how many
    values were rewritten.

    The ids: every raw id bound recently (:class:`_KnownIds`, found by lookups whose cost
    does not grow with their number), and the span's own tenant's ids even when that
    table no longer holds them — the tenant bound now, the one whose tag the span
    carries, any captured at start by :class:`RedactionProcessor` or registered with
    :func:`register_tenant_id`.

    Reads the ending span's containers directly (pinned SDK 1.45.2; the span has ended,
    so nothing mutates them any more), and falls back to the public views when they are
    not the types that version builds.
    """
    attrs = span._attributes  # noqa: SLF001
    d = attrs._dict if type(attrs) is BoundedAttributes else dict(attrs or {})  # noqa: SLF001
    tag = d.get(_TENANT)
    b = _BINDING.get()
    bound = b.raw_ids if b is not None else ()
    other: tuple[str, ...] = ()  # bound now, but not the span's tenant
    if bound and (tag is None or tag == b.tag):  # type: ignore[union-attr]
        own = bound  # the common case: ends in the binding it started in
    else:
        own = (_RAW_BY_TAG.get(tag) or ()) if type(tag) is str else ()
        other = bound
    if _PENDING:
        extra = _PENDING.pop(id(span), None)
        if extra:
            own = (*own, *(r for r in extra if r not in own)) if own else extra

    found: set[str] = set()
    known = _KNOWN
    exact = known.exact
    if exact:
        try:
            known.in_span(span, d, found)
        except Exception:  # noqa: BLE001 - could not look: fail closed, scrub them all
            _log.debug("flowmap: redaction could not search a span", exc_info=True)
            try:
                found.update(tuple(exact))
            except RuntimeError:  # changed meanwhile: the span's own ids still are scrubbed
                pass
    for raw in own:
        if raw not in exact and raw not in found and _span_holds(span, d, raw):
            found.add(raw)
    for raw in other:
        if raw not in exact and raw not in found and _span_holds(span, d, raw):
            found.add(raw)
    if not found:
        return 0
    return _scrub_span(span, tuple(found), own)


def _span_holds(span: Span, d: Mapping[str, Any], raw: str) -> bool:
    """Whether the span may hold ``raw`` (a superset of what the scrubber rewrites):
    for an id of the span's tenant that the known-ids table does not hold (any more)."""
    try:  # the SDK's deques and fields (free in 3.11 when nothing raises)
        events = span._events._dq  # noqa: SLF001
        links = span._links._dq  # noqa: SLF001
        desc = span._status._description  # noqa: SLF001
    except AttributeError:
        events, links = list(span.events), list(span.links)
        desc = span.status.description if span.status is not None else None
    if raw in span._name or (desc and raw in desc):  # noqa: SLF001
        return True
    numeric: bool | None = None
    for k, v in d.items():
        if raw in k:
            return True
        t = type(v)
        if t is str:
            if raw in v:
                return True
        elif t is int or t is float:
            if numeric is None:
                numeric = _could_be_number(raw)
            # a number is the tenant only under a key that names one (not a status 200)
            if numeric and _is_tenant_key(k) and _number_is(v, raw):
                return True
        elif _hit(v, raw, k):
            return True
    for ev in events:
        if raw in ev.name or any(raw in k or _hit(v, raw, k) for k, v in (ev.attributes or {}).items()):
            return True
    for link in links:
        if any(raw in k or _hit(v, raw, k) for k, v in (link.attributes or {}).items()):
            return True
    return False


# --- every raw id bound recently --------------------------------------------------------

_DIRECT_MAX = 48  # up to this many ids, ``raw in text`` per id beats the 4-gram lookups
_HEAD = HEAD  # == _MIN_SUBSTRING_LEN: longer ids match anywhere, shorter as whole tokens
_SAMPLED = (8, _HEAD + 2, _HEAD)  # id lengths from which an index samples a text (see _KnownIds)
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_SCRUBBED_MAX = 4096  # alert names remembered scrubbed
_CLEAN_MAX = 8192  # texts remembered clean (then forgotten all at once)
_CLEAN_TEXT_MAX = 512  # longer texts are not remembered (rarely repeat; memory)
_DELTA_MAX = 32  # a text verified before more new ids than this is searched afresh
_LOG_MAX = 1024  # ids in the log of additions before it starts over


class _KnownIds:
    """The raw ids this process has bound recently, and what is already known clean of them.

    Fed by ``flowmap.context`` (``_listen_known``) as ids are bound and evicted; every
    write happens under that module's lock, so writes are serialised, and reads take no
    lock (they only test membership, or read tuples that are replaced, never changed).

    Ids of :data:`_HEAD` characters or more are found anywhere in a text through
    :class:`~flowmap.substrings.SubstringIndex` (one per length class, :data:`_SAMPLED`:
    ids of 8 characters or more — UUIDs, most slugs — are found reading every 5th position
    of a text only, 6 or 7 every 3rd, 4 or 5 every one), shorter ids as whole tokens
    of letters and digits (one set lookup per token); with few ids, plain ``in`` per id,
    which is faster.

    What is clean: ``state`` is ``(version, clean set)``. ``version`` counts the ids
    added; the set holds the values (texts, numbers, tuples of them) verified clean at
    that version, so the span that repeats known-clean values — nearly every span — is
    judged by two ``set.issuperset`` calls in C (keys, values). A new id starts a new,
    empty set; ``clean`` (text -> version verified at) and ``delta`` (``(base, log)``: the
    ids added since version ``base``, in order) then re-verify a text against only the ids
    added since (an eviction never makes a clean text dirty). A number is put in the set
    only when it equals no known id in any form (``8443``, ``8443.0``): whether it is the
    tenant depends on its key, the set does not. flowmap's own attribute keys are in every
    clean set, and its own values (an opaque tag …) are filed but never reported: they are
    never rewritten (:func:`_flowmap_own`). A new id is put in the index and the log
    before the state is replaced, and a reader takes the state before it looks, so a
    verdict is never filed under a version newer than what it was checked against.
    """

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.long: set[str] = set()
        self.long_direct: tuple[str, ...] | None = ()  # None: many, use the index
        # the long ids by length: the longer the shortest of an index's ids, the fewer
        # positions of a text it reads (every 5th from 8 characters, every 3rd from 6)
        self.indexes = tuple((n, SubstringIndex(removable=True, shortest=n)) for n in _SAMPLED)
        self.short: set[str] = set()  # short ids of letters and digits only
        self.short_direct: tuple[str, ...] | None = ()
        self.short_other: tuple[str, ...] = ()  # short ids with other characters (rare)
        self.numeric_lens: dict[int, int] = {}
        self.numeric_len = 0  # the longest id a number could print as
        self.state: tuple[int, set[Any]] = (0, set(_PROTECTED))
        self.delta: tuple[int, list[str]] = (0, [])
        self.clean: dict[str, int] = {}
        self.scrubbed: dict[str, str] = {}

    # -- writes (under flowmap.context's lock) ------------------------------------------
    def on_change(self, added: str | None, evicted: list[str]) -> None:
        for r in evicted:
            self._remove(r)
        if evicted:
            self._refresh()
        if added is not None and self._add(added):
            version = self.state[0]
            log = self.delta[1]
            if len(log) >= _LOG_MAX:
                self.delta = (version, [added])
            else:
                log.append(added)
            self.state = (version + 1, set(_PROTECTED))  # last: the id is in the index and the log
            self.scrubbed = {}

    def _add(self, r: Any) -> bool:
        if type(r) is not str or not r or r in self.exact:
            return False
        if _could_be_number(r):
            self.numeric_lens[len(r)] = self.numeric_lens.get(len(r), 0) + 1
            self.numeric_len = max(self.numeric_lens)
        if len(r) >= _HEAD:
            self.long.add(r)
            self._index_for(r).add(r)
        elif _TOKEN.fullmatch(r):
            self.short.add(r)
        else:
            self.short_other = (*self.short_other, r)
        self._refresh()
        self.exact.add(r)
        return True

    def _remove(self, r: str) -> None:
        if r not in self.exact:
            return
        self.exact.discard(r)
        if _could_be_number(r):
            left = self.numeric_lens.get(len(r), 1) - 1
            if left > 0:
                self.numeric_lens[len(r)] = left
            else:
                self.numeric_lens.pop(len(r), None)
            self.numeric_len = max(self.numeric_lens, default=0)
        if len(r) >= _HEAD:
            self.long.discard(r)
            self._index_for(r).remove(r)
        elif r in self.short:
            self.short.discard(r)
        else:
            self.short_other = tuple(x for x in self.short_other if x != r)

    def _index_for(self, r: str) -> SubstringIndex:
        return next(index for n, index in self.indexes if len(r) >= n)

    def _refresh(self) -> None:
        self.long_direct = tuple(self.long) if len(self.long) <= _DIRECT_MAX else None
        self.short_direct = tuple(self.short) if len(self.short) <= _DIRECT_MAX else None

    # -- reads ----------------------------------------------------------------------------
    def find(self, s: str, out: set[str]) -> bool:
        """Add to ``out`` the known ids that ``s`` holds (as the scrubber would match);
        whether there was any."""
        hit = False
        direct = self.long_direct
        if direct is None:
            for _, index in self.indexes:
                if index:
                    for i, j in index.matches(s):
                        out.add(s[i:j])
                        hit = True
        else:
            for r in direct:
                if r in s:
                    out.add(r)
                    hit = True
        direct = self.short_direct
        if direct is None:
            hits = self.short.intersection(_TOKEN.findall(s))
            if hits:
                out.update(hits)
                hit = True
        else:
            for r in direct:
                if r in s and _pattern(r).search(s):
                    out.add(r)
                    hit = True
        for r in self.short_other:
            if r in s and _pattern(r).search(s):
                out.add(r)
                hit = True
        return hit

    def text(self, s: str, out: set[str], ver: int, ok: set[Any]) -> bool:
        """Add the known ids in ``s`` to ``out``; whether it held none (then it is filed
        clean at ``ver``, the version taken before looking, with ``ok`` its clean set)."""
        if s in ok:
            return True
        clean = self.clean
        v = clean.get(s)
        if v is not None and v >= ver:
            hit = False
        else:
            base, log = self.delta
            if v is not None and ver - v <= _DELTA_MAX and v >= base:
                hit = False
                exact = self.exact
                for r in log[v - base : ver - base]:  # only the ids added since it was verified
                    if r in s and r in exact and (len(r) >= _HEAD or _pattern(r).search(s)):
                        out.add(r)
                        hit = True
            else:
                hit = self.find(s, out)
        if hit:
            return False
        if len(s) <= _CLEAN_TEXT_MAX:
            if len(clean) >= _CLEAN_MAX:
                clean.clear()
            clean[s] = ver
            _file(ok, s)
        return True

    def _number_ok(self, v: Any) -> bool:
        """Whether number ``v`` (or any number equal to it) prints as no known id."""
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if isinstance(v, int) and not -(2**53) < v < 2**53:
            return False
        forms = (str(int(v)), str(float(v))) if v == int(v) else (str(float(v)),)
        return self.exact.isdisjoint(forms)

    def value(self, v: Any, key: Any, out: set[str], ver: int, ok: set[Any], depth: int = 0) -> bool:
        """Any attribute value: add the known ids it holds to ``out`` (a number only under
        a key naming a tenant); whether it held none (then filed clean when it may be)."""
        if isinstance(v, str):
            return self.text(v, out, ver, ok)
        if isinstance(v, bool) or v is None or isinstance(v, (bytes, bytearray)):
            return True
        if isinstance(v, (int, float)):
            num = self.numeric_len
            if num and _is_tenant_key(key):
                text = _number_text(v, num)
                if text is not None and text in self.exact:
                    out.add(text)
                    return False
            if type(v) in (int, float) and (not num or self._number_ok(v)):
                _file(ok, v)
            return True
        if depth >= 8:
            return True
        clean = True
        if isinstance(v, Mapping):
            for k, x in v.items():
                if isinstance(k, str) and not self.text(k, out, ver, ok):
                    clean = False
                if not self.value(x, k, out, ver, ok, depth + 1):
                    clean = False
            return clean
        if isinstance(v, Sequence):
            for x in v:
                if not self.value(x, key, out, ver, ok, depth + 1):
                    clean = False
            if clean and type(v) is tuple and len(v) <= 64 and all(x in ok for x in v):
                _file(ok, v)  # every part clean under any key: so is the tuple
        return clean

    def _attrs(self, attrs: Mapping[str, Any], out: set[str], ver: int, ok: set[Any]) -> None:
        try:
            if ok.issuperset(attrs) and ok.issuperset(attrs.values()):
                return  # every key and value known clean (in C)
        except TypeError:  # an unhashable value
            pass
        for k, v in attrs.items():
            try:
                if k in _PROTECTED:  # in every clean set: never renamed
                    if _flowmap_own(k, v):  # never rewritten: looked at only to be filed
                        self.value(v, k, set(), ver, ok)  # clean (if it is) for next time
                        continue
                elif isinstance(k, str):
                    self.text(k, out, ver, ok)
                self.value(v, k, out, ver, ok)
            except Exception:  # noqa: BLE001 - hostile value: the scrubber judges it
                _log.debug("flowmap: redaction could not inspect a value", exc_info=True)

    def in_span(self, span: Span, d: Mapping[str, Any], out: set[str]) -> None:
        """Add to ``out`` the known ids ``span`` holds (verified again by the scrubber)."""
        ver, ok = self.state  # first: see the class docstring
        name = span._name  # noqa: SLF001
        if type(name) is str and name not in ok:
            self.text(name, out, ver, ok)
        self._attrs(d, out, ver, ok)
        try:  # the SDK's deques (pinned 1.45.2): iterating the BoundedList copies it
            events = span._events._dq  # noqa: SLF001
            links = span._links._dq  # noqa: SLF001
        except AttributeError:
            events, links = span.events, span.links
        for ev in events:
            if type(ev.name) is str and ev.name not in ok:
                self.text(ev.name, out, ver, ok)
            if ev.attributes:
                self._attrs(ev.attributes, out, ver, ok)
        for link in links:
            if link.attributes:
                self._attrs(link.attributes, out, ver, ok)
        status = span._status  # noqa: SLF001
        if status is not None and type(status.description) is str and status.description:
            self.text(status.description, out, ver, ok)

    def scrub(self, text: str) -> str:
        """``text`` with every known id replaced (results remembered: alert names repeat)."""
        done = self.scrubbed.get(text)
        if done is None:
            found: set[str] = set()
            self.find(text, found)
            done = scrub_text(text, tuple(found))[0] if found else text
            if len(self.scrubbed) >= _SCRUBBED_MAX:
                self.scrubbed = {}
            self.scrubbed[text] = done
        return done


def _file(ok: set[Any], v: Any) -> None:
    """File ``v`` in a clean set, which is bounded (flowmap's own keys always in it)."""
    if len(ok) >= _CLEAN_MAX:
        ok.clear()
        ok.update(_PROTECTED)
    ok.add(v)


_KNOWN = _KnownIds()
_listen_known(_KNOWN.on_change)  # also loads the ids bound before this module's import


def scrub_known(text: str) -> str:
    """``text`` with every raw id this process has bound recently replaced by
    :data:`REDACTED_VALUE` (for alert outlets: a span name must not carry one). Never raises."""
    try:
        if not text or not _KNOWN.exact:
            return text
        return _KNOWN.scrub(text)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not scrub a text", exc_info=True)
        return text


def _scrub_span(span: Span, ids: Sequence[str], own: Sequence[str] = ()) -> int:
    """Rewrite the span. Each part is scrubbed on its own, and each value too: one that
    cannot be inspected does not stop the others (nor the ``flowmap.redacted`` mark).
    ``own``: the span's own tenant's ids, when known; any other id replaced is counted in
    ``flowmap.redacted.foreign``."""
    s = _Scrubber(ids)
    try:
        name = s.text(span._name)  # noqa: SLF001 - pinned SDK 1.45.2, see module docstring
        if name != span._name:
            span._name = name
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not redact a span name", exc_info=True)

    new_attrs = s.attrs(span._attributes)

    try:
        events = list(span._events)
        new_events, changed_events = [], False
        for ev in events:
            before = s.count
            ev_name = s.text(ev.name)
            ev_attrs = s.attrs(ev.attributes)
            if s.count != before:
                changed_events = True
                attrs = _bounded(ev.attributes, ev_attrs if ev_attrs is not None else dict(ev.attributes or {}))
                ev = Event(ev_name, attributes=attrs, timestamp=ev.timestamp)
            new_events.append(ev)
        if changed_events:
            span._events = _rebounded(span._events, new_events)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not redact span events", exc_info=True)

    try:
        links = list(span._links)
        new_links, changed_links = [], False
        for link in links:
            la = s.attrs(link.attributes)
            if la is not None:
                changed_links = True
                link = trace_api.Link(link.context, _bounded(link.attributes, la))
            new_links.append(link)
        if changed_links:
            span._links = _rebounded(span._links, new_links)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not redact span links", exc_info=True)

    try:
        status = span._status
        if status is not None and status.description:
            desc = s.text(status.description)
            if desc != status.description:
                span._status = Status(status.status_code, desc)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not redact a span status", exc_info=True)

    if s.count:
        final = dict(new_attrs if new_attrs is not None else span._attributes or {})
        final[A.REDACTED] = s.count
        if own:
            foreign = len(s.hits.difference(own))
            if foreign:
                final[REDACTED_FOREIGN] = foreign
        span._attributes = _bounded(span._attributes, final)
    return s.count


def _rebounded(old: Any, items: list[Any]) -> Any:
    dq = getattr(old, "_dq", None)
    maxlen = dq.maxlen if dq is not None else None
    bl = BoundedList.from_seq(maxlen, items)
    bl.dropped = getattr(old, "dropped", 0)
    return bl


class RedactionProcessor(SpanProcessor):
    """Rewrites ending spans so no value carries the request's raw tenant id.

    Works whatever its position among the provider's processors (see module docstring).
    Never raises into the application.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            capture(span, _BINDING.get())
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction capture failed", exc_info=True)

    def _on_ending(self, span: Span) -> None:
        try:
            redact_ending(span)
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
