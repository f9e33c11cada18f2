"""RedactionProcessor: the request's raw tenant id never leaves the process in a span.

How, with SDK 1.45.2: ``Span.end()`` calls every processor's ``_on_ending(span)``
*before* it builds the ReadableSpan that every ``on_end`` (and so every exporter,
flowmap's or the application's) receives. So rewriting the ending span there covers all
export processors whatever their order — also on a provider the application configured
itself. The span may end on another thread or after its request, so the raw ids are
found without the binding too: from the span's own ``flowmap.tenant`` tag (mapped back
in-process to the raw id bound under it), or captured at ``on_start`` by the standalone
processor. Raw ids stay in process memory only, never in an attribute.

What is scrubbed: span name, attribute keys and values (strings, sequences, maps, and
numbers equal to the id under an attribute whose key names a tenant — ``tenant_id``,
``app.account_id`` …, see :data:`flowmap.attributes.TENANT_ID_ATTRIBUTE_NAMES`; an
``http.status_code`` of 200 is never a tenant "200"), event names and attributes, link
attributes, the status description. The span then carries ``flowmap.redacted`` = number
of values rewritten. A value that cannot be inspected (an int too long to print) costs
only itself: it is left as is, or replaced when inspecting it failed, and the rest of the
span is still scrubbed.

A span that ends with neither a binding nor a ``flowmap.tenant`` tag — an orphan in a
thread pool, an outer instrumentation's server span started before the binding, a batch
job — is the uncommon path (exactly the spans alerts fire on). It is scrubbed against
every raw id this process has bound recently (:class:`_KnownIds`, mirrored from
``flowmap.context._RAW_BY_TAG``, bounded), found by set lookups so the cost does not grow
with the number of tenants. :func:`register_tenant_id` still adds an id for one span.
Spans that carry a tag are scrubbed only against their own tenant's id: looking for
*other* tenants' ids there would cost every span.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status

from . import attributes as A
from .context import _BINDING, _RAW_BY_TAG, Binding, _bound
from .exporter import name_text
from .forking import renew_after_fork
from .safelog import debug_quietly
from .substrings import HEAD, SubstringIndex
from .tagging import is_opaque_tag

__all__ = ["RedactionProcessor", "REDACTED_VALUE", "scrub_text", "scrub_known", "register_tenant_id"]

_log = logging.getLogger("flowmap.redaction")

REDACTED_VALUE = "[flowmap:redacted]"
_REDACTED_BYTES = REDACTED_VALUE.encode("ascii")
_DEPTH_MAX = 64  # nesting looked into on spans with no binding and no tag (maps, sequences)
# Raw ids to scrub from live spans, keyed by id(span): set at start (or by
# register_tenant_id), popped at the end. A side table rather than an attribute on the
# span because adding an attribute to an SDK Span un-shares its instance dict, which
# alone costs more than everything else flowmap does per span. Only spans that never end
# leave an entry behind, so the table is capped; a stale entry can only add an id to
# scrub, never remove one.
_PENDING: dict[int, tuple[str, ...]] = {}
_PENDING_CAP = 1 << 16
_TENANT = A.TENANT
# Ids shorter than this would match inside unrelated words (tenant "test" in "contest",
# "user" in "user_agent.original"): they are scrubbed only as whole words (of letters and
# digits; in an attribute key ``_`` joins words too). Longer ids are scrubbed wherever
# they are.
_MIN_SUBSTRING_LEN = 8
# Ids shorter than this ("a", "7", "eu") are a word of any text ("page 7", "/orgs/7/"):
# a whole token of them is still scrubbed, but counted as a raw id found (the span's
# flowmap.redacted, a HIGH finding) only when the whole value is the id.
_MIN_WORD_LEN = HEAD
# flowmap's own attributes and the values flowmap writes in them: never rewritten, even
# when an id happens to be inside one (tenant "22782" inside its tag "2278295972107893",
# a tenant named "stream" like the boundary kind). A tag attribute that *equals* a raw
# id is still scrubbed (an application that wrote the id there).
_OWN_VALUES: dict[str, frozenset[str]] = {
    A.BOUNDARY: A.BOUNDARY_KINDS,
    A.TENANT_SOURCE: frozenset({A.SOURCE_CONTEXT, A.SOURCE_BAGGAGE, A.SOURCE_EXPLICIT}),
}
_OWN_TAGS = frozenset({A.TENANT, A.TENANT_INBOUND})
_OWN_TEXTS = frozenset({*_OWN_VALUES, *_OWN_TAGS})  # flowmap's own attributes that hold text
_OWN_KEYS = _OWN_TEXTS | {A.SCOPED, A.BAGGAGE_SENT, A.REDACTED, A.UNSCOPED, A.AUTHENTICATING}
# A value cut by the SDK's attribute length limit (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT) may
# end in the first characters of an id: an end of at least this many characters that
# begins an id is cut off too.
_CUT_MIN = 3


@functools.lru_cache(maxsize=1024)
def _pattern(raw: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9A-Za-z])" + re.escape(raw) + r"(?![0-9A-Za-z])")


@functools.lru_cache(maxsize=1024)
def _key_pattern(raw: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9A-Za-z_])" + re.escape(raw) + r"(?![0-9A-Za-z_])")


def scrub_text(
    text: str, raw_ids: Sequence[str], word: Callable[[str], re.Pattern[str]] = _pattern
) -> tuple[str, int]:
    """``text`` with every raw id replaced, and how many occurrences were found: all but
    the whole-token ones of ids under :data:`_MIN_WORD_LEN` characters, replaced
    without being counted (the 7 of "page 7" may not be tenant "7"). ``word`` tells
    where an id under :data:`_MIN_SUBSTRING_LEN` characters is a whole word (in a key,
    ``_`` joins words: :func:`_key_pattern`)."""
    n = 0
    if len(raw_ids) > 1:
        raw_ids = sorted(raw_ids, key=len, reverse=True)  # "acme-corp" before "acme"
    for raw in raw_ids:
        if len(raw) >= _MIN_SUBSTRING_LEN:
            if raw in text:
                n += text.count(raw)
                text = text.replace(raw, REDACTED_VALUE)
        elif len(raw) < _MIN_WORD_LEN:
            if text.strip() == raw:
                return REDACTED_VALUE, n + 1
            if raw in text:
                text = word(raw).sub(REDACTED_VALUE, text)
        elif raw in text:
            text, k = word(raw).subn(REDACTED_VALUE, text)
            n += k
    return text, n


def _own(key: Any, value: Any, ids: Sequence[str]) -> bool:
    """Whether ``value`` is flowmap's own value of flowmap's own attribute ``key``."""
    if key in _OWN_TAGS:
        return is_opaque_tag(value) and value not in ids
    allowed = _OWN_VALUES.get(key)
    return allowed is not None and value in allowed


def _cut_end(text: str, raw: str) -> int:
    """How many characters at the end of ``text`` are the start of ``raw`` (a value the
    length limit cut inside the id): 0 when fewer than :data:`_CUT_MIN`, or when ``raw``
    is short and the end does not start a token (short ids match whole tokens only)."""
    for k in range(min(len(raw) - 1, len(text)), _CUT_MIN - 1, -1):
        if text.endswith(raw[:k]):
            at = len(text) - k
            if len(raw) >= _MIN_SUBSTRING_LEN or at == 0 or not text[at - 1].isalnum():
                return k
    return 0


def _cut_values(attrs: Any) -> bool:
    """Whether some string of ``attrs`` reaches its container's length limit (so it may
    have been cut inside an id). False when no limit is set: the usual case, no scan."""
    limit = getattr(attrs, "max_value_len", None)
    if limit is None or not attrs:
        return False
    for v in attrs.values():
        if isinstance(v, str):
            if len(v) >= limit:
                return True
        elif isinstance(v, (tuple, list)) and any(isinstance(x, str) and len(x) >= limit for x in v):
            return True
    return False


_tenant_key_check: Any = None


def _event_name(ev: Any) -> str:
    """An event's (or a span's) name as text, as the exporter writes it."""
    return name_text(ev.name)


def _is_tenant_key(key: Any) -> bool:
    """Whether an attribute key names a tenant (``tenant_id``, ``app.org_id``,
    ``enduser.account.id`` …), as the analyzer's tenant-in-telemetry rule reads it.
    Only asked for numbers that could equal a numeric raw id, so the analyzer's masking
    module (and its model) is imported on first use, not with the runtime."""
    global _tenant_key_check
    if type(key) is not str:
        return False
    check = _tenant_key_check
    if check is None:
        from .masking import is_tenant_key

        names = A.TENANT_ID_ATTRIBUTE_NAMES
        check = _tenant_key_check = lambda k: is_tenant_key(k, names)
    return check(key)


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
    """Rewrites values; ``count`` is how many held a raw id (``flowmap.redacted``, which
    the analyzer reports), ``changes`` how many were rewritten, also the ends of values
    the length limit cut (which may only look like the start of an id)."""

    __slots__ = ("ids", "count", "changes", "limit")

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = ids
        self.count = 0
        self.changes = 0
        self.limit: int | None = None  # the length limit of the attributes being scrubbed

    def _found(self, n: int = 1) -> None:
        self.count += n
        self.changes += n

    def text(self, s: str, word: Callable[[str], re.Pattern[str]] = _pattern) -> str:
        out, n = scrub_text(s, self.ids, word)
        self._found(n)
        if not n and out != s:  # (a very short id's whole token: rewritten, not counted)
            self.changes += 1
        return out

    def value(self, v: Any, key: Any = None) -> Any:
        """``v`` scrubbed; a number only under a key that names a tenant."""
        if isinstance(v, str):
            out = self.text(v)
            if self.limit is not None and len(v) >= self.limit:  # cut: the end may start an id
                for raw in self.ids:
                    k = _cut_end(out, raw)
                    if k:
                        # maybe an id, maybe a word that starts alike ("the…" of "thermo-
                        # fisher"): the value, cut already, is cut before it; not counted
                        # as a raw id found
                        self.changes += 1
                        return out[:-k]
            return out
        if isinstance(v, (bytes, bytearray)):  # (SDK 1.45 keeps bytes: a request body, a key)
            for raw in self.ids:
                rb = raw.encode("utf-8")
                if rb in v:
                    self._found(v.count(rb))
                    v = bytes(v).replace(rb, _REDACTED_BYTES)
            return v
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            if key is not None and _is_tenant_key(key):
                longest = max((len(r) for r in self.ids if _could_be_number(r)), default=0)
                if longest and _number_text(v, longest) in self.ids:
                    self._found()
                    return REDACTED_VALUE
            return v
        if isinstance(v, Mapping):
            return {self.key(k): self.one(x, k) for k, x in v.items()}
        if isinstance(v, Sequence):
            before = self.changes
            items = [self.one(x, key) for x in v]
            if self.changes != before and any(isinstance(x, str) for x in items):
                # keep the sequence homogeneous once a number became a placeholder
                items = [x if isinstance(x, str) else str(x) for x in items]
            return tuple(items)
        return v

    def key(self, k: Any) -> Any:
        """An attribute key, scrubbed as a value is but with ``_`` joining words (a tenant
        "user" is not in ``user_agent.original``, but is in ``quota.user`` and
        ``x-user-signature``)."""
        return self.text(k, _key_pattern) if isinstance(k, str) else k

    def one(self, v: Any, key: Any) -> Any:
        """One value, so that a value that cannot be inspected costs only itself (and
        is replaced: it might hold the id)."""
        try:
            return self.value(v, key)
        except Exception:  # noqa: BLE001 - hostile value: fail closed, carry on
            _log.debug("flowmap: redaction could not inspect a value", exc_info=True)
            self._found()
            return REDACTED_VALUE

    def attrs(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not attrs:
            return None
        before = self.changes
        self.limit = getattr(attrs, "max_value_len", None)
        out = {}
        for k, v in list(attrs.items()):
            if k in _OWN_KEYS:  # flowmap's own name, kept; its value only if flowmap's own
                out[k] = v if _own(k, v, self.ids) else self.one(v, k)
                continue
            try:
                nk = self.key(k)
            except Exception:  # noqa: BLE001
                nk = k
            out[nk] = self.one(v, k)
        self.limit = None
        return out if self.changes != before else None


def _bounded(old: Any, new: dict[str, Any]) -> BoundedAttributes:
    ba = BoundedAttributes(
        getattr(old, "maxlen", None), new, immutable=True, max_value_len=getattr(old, "max_value_len", None)
    )
    ba.dropped += getattr(old, "dropped", 0)  # (and what the rebuild itself evicted)
    d = ba._dict  # noqa: SLF001
    if ba.max_value_len is not None:  # flowmap's own values stay whole (a cut tag names no tenant)
        for key in _OWN_TEXTS.intersection(d):
            if isinstance(new[key], str):
                d[key] = new[key]
    if ba.maxlen is not None and ba.maxlen < len(new):
        # flowmap's own (last in ``new``) exceed a limit smaller than their number, as the
        # processor's restore put them back (see flowmap.processors._restore)
        lost = [k for k in new if k in _OWN_KEYS and k not in d]
        for key in lost:
            d[key] = new[key]
        ba.dropped -= len(lost)
    return ba


def _hit(v: Any, raw: str, key: Any = None) -> bool:
    """Cheap pre-check (a superset of what ``_Scrubber`` rewrites); never raises."""
    try:
        if isinstance(v, str):
            return raw in v
        if isinstance(v, (bytes, bytearray)):
            return raw.encode("utf-8") in v
        if isinstance(v, bool) or v is None:
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
    """At span end (``_on_ending``): scrub the raw ids this span may hold; returns how
    many values were rewritten.

    The ids: the tenant bound now; the tenant whose tag the span carries (so a span that
    ends on another thread or after its request is still covered); any captured at start
    by :class:`RedactionProcessor` or registered with :func:`register_tenant_id`; and, for
    a span with neither a binding nor a tag, every raw id bound recently (see
    :func:`_redact_untagged`).

    This runs for every span, and most hold no raw id: the check reads the ending span's
    containers directly (pinned SDK 1.45.2; the span has ended, so nothing mutates them
    any more), allocates nothing, and falls back to the public views when they are not
    the types that version builds.
    """
    attrs = span._attributes  # noqa: SLF001
    d = attrs._dict if type(attrs) is BoundedAttributes else dict(attrs or {})  # noqa: SLF001
    tag = d.get(_TENANT)
    b = _BINDING.get()
    ids: tuple[str, ...] | None
    if b is not None and b.raw_ids and (tag is None or tag == b.tag):
        ids = b.raw_ids  # the common case: ends in the binding it started in
    else:
        if tag is None:
            return _redact_untagged(span, d)  # no binding, no tag: the uncommon path
        ids = _RAW_BY_TAG.get(tag) if type(tag) is str else None
        if b is not None and b.raw_ids:
            ids = b.raw_ids if not ids else (*ids, *b.raw_ids)
    if _PENDING:
        extra = _PENDING.pop(id(span), None)
        if extra:
            ids = extra if not ids else (*ids, *(r for r in extra if r not in ids))
    if not ids:
        return 0

    try:  # the SDK's deques and fields (free in 3.11 when nothing raises)
        events = span._events._dq  # noqa: SLF001
        links = span._links._dq  # noqa: SLF001
        desc = span._status._description  # noqa: SLF001
    except AttributeError:
        events, links = list(span.events), list(span.links)
        desc = span.status.description if span.status is not None else None
    name = _event_name(span)  # (the SDK takes any name: 404, None)
    if (
        _cut_values(attrs)
        or (events and any(_cut_values(ev.attributes) for ev in events))
        or (links and any(_cut_values(link.attributes) for link in links))
    ):
        return _scrub_span(span, ids)  # a value the length limit cut may end inside an id
    for raw in ids:
        if raw in name or (desc and raw in desc):
            return _scrub_span(span, ids)
        numeric: bool | None = None
        for k, v in d.items():
            if raw in k:
                return _scrub_span(span, ids)
            t = type(v)
            if t is str:
                if raw in v:
                    return _scrub_span(span, ids)
            elif t is int or t is float:
                if numeric is None:
                    numeric = _could_be_number(raw)
                # a number is the tenant only under a key that names one (not a status 200)
                if numeric and _is_tenant_key(k) and _number_is(v, raw):
                    return _scrub_span(span, ids)
            elif _hit(v, raw, k):
                return _scrub_span(span, ids)
        if events:
            for ev in events:
                if raw in _event_name(ev) or any(raw in k or _hit(v, raw, k) for k, v in (ev.attributes or {}).items()):
                    return _scrub_span(span, ids)
        if links:
            for link in links:
                if any(raw in k or _hit(v, raw, k) for k, v in (link.attributes or {}).items()):
                    return _scrub_span(span, ids)
    return 0


# --- every raw id bound recently, for spans with neither a binding nor a tag -------------

_KNOWN_CAP = 1 << 17  # ids kept (twice context's table, so a clear there forgets nothing yet)
_DIRECT_MAX = 48  # up to this many ids, ``raw in text`` per id beats the 4-gram lookups
_HEAD = HEAD  # ids this long or longer are found through the index (a superset of what
# the scrubber matches: one shorter than _MIN_SUBSTRING_LEN must be a whole token there)
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_SCRUBBED_MAX = 4096  # alert names remembered scrubbed


class _KnownIds:
    """The raw ids this process has bound recently, indexed for set lookups.

    Mirrors the values of ``flowmap.context._RAW_BY_TAG`` (every tenant bound with a
    tagger configured, or tagged by flowmap's processor), read incrementally: that dict
    only grows, until it is cleared at its cap, so the entries added since the last look
    are its newest ones. Ids are kept across such a clear until this index reaches
    :data:`_KNOWN_CAP` (then it restarts from the current table): bounded memory.

    A text is searched without a pattern of all ids (whose building and matching cost
    grows with their number): ids of :data:`_HEAD` characters or more through a
    :class:`~flowmap.substrings.SubstringIndex`, shorter ids as whole tokens of letters
    and digits (one set lookup per token). With few ids, plain ``in`` per id is faster
    and is used instead.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        renew_after_fork(self)  # taken as untagged spans end, in any thread
        self.seen = 0  # entries of _RAW_BY_TAG already read
        self.first: Any = None  # its first key then (changes when it was cleared)
        self._reset()

    def _reset(self) -> None:
        self.exact: set[str] = set()
        self.long: list[str] = []
        self.index = SubstringIndex()  # the long ids, once there are many
        self.short: set[str] = set()  # short ids of letters and digits only
        self.short_other: list[str] = []  # short ids with other characters (rare)
        self.max_len = 0
        self.numeric_len = 0  # the longest id a number could print as
        self.scrubbed: dict[str, str] = {}
        self.heads: dict[str, list[str]] = {}  # first _CUT_MIN characters -> ids (values cut by a limit)

    def sync(self) -> bool:
        """Catch up with ``_RAW_BY_TAG``; whether any id is known. O(1) when nothing
        changed; O(new entries) otherwise."""
        table = _RAW_BY_TAG
        n = len(table)
        if n == self.seen and (not n or next(iter(table)) == self.first):
            return bool(self.exact)
        with self.lock:
            for _ in range(3):  # another thread may bind meanwhile: read again
                n = len(table)
                first = next(iter(table)) if n else None
                if self.seen and first == self.first and n >= self.seen:
                    new = list(islice(reversed(table.values()), n - self.seen))
                else:  # cleared since: read it all
                    new = list(table.values())
                if len(table) == n:
                    break
            if len(self.exact) + len(new) > _KNOWN_CAP:
                self._reset()
                new = list(table.values())
            self._add(r for raws in new for r in raws)
            self.seen, self.first = n, first
        return bool(self.exact)

    def _add(self, raws: Any) -> None:
        before = len(self.exact)
        for r in raws:
            if type(r) is not str or not r or r in self.exact:
                continue
            self.exact.add(r)
            self.max_len = max(self.max_len, len(r))
            if _could_be_number(r):
                self.numeric_len = max(self.numeric_len, len(r))
            if len(r) > _CUT_MIN:
                self.heads.setdefault(r[:_CUT_MIN], []).append(r)
            if len(r) >= _HEAD:
                self.long.append(r)
                self.index.add(r)
            elif _TOKEN.fullmatch(r):
                self.short.add(r)
            else:
                self.short_other.append(r)
        if len(self.exact) != before:
            self.scrubbed = {}

    def find(self, s: str, out: set[str]) -> None:
        """Add to ``out`` the known ids that ``s`` may hold: every one the scrubber would
        match, and maybe some it then finds only inside a longer word."""
        long = self.long
        if long:
            if len(long) <= _DIRECT_MAX:
                for r in long:
                    if r in s:
                        out.add(r)
            else:
                out.update(s[i:j] for i, j in self.index.matches(s))
        if self.short:
            if len(self.short) <= _DIRECT_MAX:
                for r in self.short:
                    if r in s and _pattern(r).search(s):
                        out.add(r)
            else:
                hits = self.short.intersection(_TOKEN.findall(s))
                if hits:
                    out.update(hits)
        for r in self.short_other:
            if r in s and _pattern(r).search(s):
                out.add(r)

    def _collect(self, v: Any, key: Any, texts: list[str], out: set[str], depth: int = 0) -> None:
        """Strings of ``v`` into ``texts``; a number equal to a known id under a key
        naming a tenant straight into ``out``."""
        if isinstance(v, str):
            texts.append(v)
        elif isinstance(v, (bytes, bytearray)):
            texts.append(bytes(v).decode("utf-8", "replace"))
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            if self.numeric_len and _is_tenant_key(key):
                t = _number_text(v, self.numeric_len)
                if t is not None and t in self.exact:
                    out.add(t)
        elif depth < _DEPTH_MAX and isinstance(v, Mapping):
            for k, x in v.items():
                if isinstance(k, str):
                    texts.append(k)
                self._collect(x, k, texts, out, depth + 1)
        elif depth < _DEPTH_MAX and isinstance(v, Sequence):
            for x in v:
                self._collect(x, key, texts, out, depth + 1)

    def _attrs(self, attrs: Mapping[str, Any] | None, texts: list[str], out: set[str]) -> None:
        for k, v in (attrs or {}).items():
            if isinstance(k, str):
                texts.append(k)
            try:
                self._collect(v, k, texts, out)
            except Exception:  # noqa: BLE001 - hostile value: let the scrubber judge it
                _log.debug("flowmap: redaction could not inspect a value", exc_info=True)
        self._cut(attrs, out)

    def _cut(self, attrs: Any, out: set[str]) -> None:
        """Add to ``out`` the known ids whose start a value of ``attrs`` that reaches the
        length limit ends with (cut inside the id)."""
        if _cut_values(attrs):
            limit = attrs.max_value_len
            for v in attrs.values():
                for t in (v,) if isinstance(v, str) else v if isinstance(v, (tuple, list)) else ():
                    if isinstance(t, str) and len(t) >= limit:
                        self._cut_ids(t, out)

    def _cut_ids(self, text: str, out: set[str]) -> None:
        """Add to ``out`` the known ids whose start ``text`` ends with: one lookup per
        position near the end."""
        heads = self.heads
        n = len(text)
        for i in range(max(0, n - self.max_len), n - _CUT_MIN + 1):
            ids = heads.get(text[i : i + _CUT_MIN])
            if ids:
                for r in ids:
                    if _cut_end(text, r) == n - i:
                        out.add(r)

    def in_span(self, span: Span, d: Mapping[str, Any]) -> set[str]:
        """The known ids ``span`` may hold: a superset (verified by the scrubber), found
        in one pass over all its texts joined (a match across two of them is harmless)."""
        out: set[str] = set()
        texts = [_event_name(span)]
        self._attrs(d, texts, out)
        self._cut(span._attributes, out)  # noqa: SLF001 - (d is its plain dict: no limit)
        for ev in span._events:  # noqa: SLF001
            texts.append(_event_name(ev))
            self._attrs(ev.attributes, texts, out)
        for link in span._links:  # noqa: SLF001
            self._attrs(link.attributes, texts, out)
        status = span._status  # noqa: SLF001
        if status is not None and status.description:
            texts.append(status.description)
        self.find("\x00".join([t for t in texts if isinstance(t, str)]), out)
        return out

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


_KNOWN = _KnownIds()


def _redact_untagged(span: Span, d: Mapping[str, Any]) -> int:
    """A span with neither a binding nor a tag (an orphan, an outer server span, a batch
    job): scrub every recently bound raw id it holds, and any registered for it."""
    ids: tuple[str, ...] = _PENDING.pop(id(span), ()) if _PENDING else ()
    found: set[str] = set()
    try:
        if _KNOWN.sync():
            found = _KNOWN.in_span(span, d)
    except Exception:  # noqa: BLE001 - could not look: fall back to what was registered
        _log.debug("flowmap: redaction could not search a span", exc_info=True)
    if found:
        ids = (*ids, *(r for r in found if r not in ids))
    if not ids:
        return 0
    return _scrub_span(span, ids)


def scrub_known(text: str) -> str:
    """``text`` with every raw id this process has bound recently replaced by
    :data:`REDACTED_VALUE` (for alert outlets: a span name must not carry one). Never raises."""
    try:
        if not text or not _KNOWN.sync():
            return text
        return _KNOWN.scrub(text)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not scrub a text", exc_info=True)
        return text


def _scrub_span(span: Span, ids: Sequence[str]) -> int:
    """Rewrite the span. Each part is scrubbed on its own, and each value too: one that
    cannot be inspected does not stop the others (nor the ``flowmap.redacted`` mark)."""
    s = _Scrubber(ids)
    try:
        # (a name that is no text — the SDK takes 404 or None — is written as text)
        name = _event_name(span)
        if not (name in A.BOUNDARY_KINDS and (span._attributes or {}).get(A.BOUNDARY) == name):
            # (a boundary span flowmap named after its kind: its own value, kept)
            name = s.text(name)
        if name != span._name:
            span._name = name
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not redact a span name", exc_info=True)

    new_attrs = s.attrs(span._attributes)

    try:
        events = list(span._events)
        new_events, changed_events = [], False
        for ev in events:
            before = s.changes
            ev_name = s.text(_event_name(ev))
            ev_attrs = s.attrs(ev.attributes)
            if s.changes != before:
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

    if s.changes:
        current = new_attrs if new_attrs is not None else dict(span._attributes or {})
        # flowmap's own last: at the attribute-count limit the bounded map evicts the oldest,
        # and the tag, set first, must not be what the count's one more entry pushes out
        final = {k: v for k, v in current.items() if k not in _OWN_KEYS}
        final.update((k, v) for k, v in current.items() if k in _OWN_KEYS)
        if s.count:
            final[A.REDACTED] = s.count
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
            capture(span, _bound(parent_context))
        except Exception:  # noqa: BLE001
            debug_quietly(_log, "flowmap: redaction capture failed")

    def _on_ending(self, span: Span) -> None:
        try:
            redact_ending(span)
        except Exception:  # noqa: BLE001
            debug_quietly(_log, "flowmap: redaction failed")

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
