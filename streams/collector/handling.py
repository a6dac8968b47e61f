"""Pure request handling: request body → accepted events and rejections (no I/O, no aiohttp).

Contract of :func:`handle`:

* Single calls (``/v1/track`` …): the body is one event; the path sets ``type`` when the body
  has none and rejects a body whose ``type`` names another call. Body limit ``max_event_bytes``.
* ``/v1/batch``: ``{"batch": [...], "sentAt", "context", "integrations", "writeKey"}``; each item
  is a Segment call with its own ``type``; the batch's ``sentAt``/``context``/``integrations`` fill
  what an item lacks (the item wins). CRM records are rejected here (post them to ``/v1/crm``).
* ``/v1/screen`` (``/v1/s``): every call is rejected (400, dead-lettered): screen calls are
  mobile-app screens, which the tracker does not model; a web page sends ``page`` calls.
* Short paths (analytics.js, the browser SDK): ``/v1/t|p|i|g|a|s|b`` are
  track/page/identify/group/alias/screen/batch (:data:`SHORT_PATHS`, :func:`endpoint_for`).
  The body is parsed as JSON whatever its ``Content-Type`` (analytics.js and ``sendBeacon``
  send ``text/plain``).
* ``/v1/crm``: one CRM record (conversation, lead_status, opportunity) or ``{"batch": [...]}``.
* ``writeKey`` is taken out of the body (returned for auth) and never forwarded; in a body kept
  whole as a dead letter (malformed, oversized) its value is replaced by ``[redacted]``.
* Limits: ``max_items`` calls per batch (413 above it); at most ``max_expanded_bytes`` of
  events and dead letters per request once the batch's shared fields are copied into every item
  (413 above it, nothing accepted: a big ``context`` times many minimal items); every item (or single call) nested at
  most ``max_depth`` deep — a deeper item is rejected with the path where it goes too deep,
  and the other items of its batch are accepted.
* Segment calls are stamped ``receivedAt`` (the server's clock) before validation; the client's
  ``timestamp``/``sentAt`` are kept so :func:`schemas.decode.event_time` corrects clock skew.
  CRM records are not stamped: they are strict and carry their own ``startedAt``/``changedAt``.
* Ids: a ``messageId`` starting with ``derived-`` is rejected (those are the tracker's own). A
  CRM record without one gets, given an ``id_scope`` (the write key's source), the id derived
  from its natural key *and* that scope, written into the forwarded record
  (:func:`schemas.events.derived_id`); without a scope the worker derives the unscoped id.
* Every item becomes exactly one :class:`Accepted` (its re-serialised JSON) or :class:`Rejected`
  (its re-serialised JSON, or the original bytes when the body could not be parsed).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

import orjson

from schemas.decode import (
    CUT_MARKER,
    DEPTH_EXCEEDED,
    WIDE_INTEGER,
    check_not_future,
    cut_deeper_than,
    event_time,
    parse_json,
    too_deep,
    validate,
    wide_integers,
)
from schemas.errors import InvalidEvent, Reason
from schemas.events import (
    DERIVED_PREFIX,
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_EXPANDED_BYTES,
    Conversation,
    LeadStatusChange,
    OpportunityUpdate,
    derived_id,
)
from schemas.keys import inbound_key, raw_key
from streams.deadletters import REDACTED, WRITE_KEY, redact_write_keys  # noqa: F401 - REDACTED re-exported

SEGMENT_TYPES = ("track", "page", "identify", "group", "alias")
CRM_TYPES = ("conversation", "lead_status", "opportunity")
SINGLE = (*SEGMENT_TYPES, "screen")
"""Endpoints whose body is one call (limit ``max_event_bytes``); screen calls are all rejected."""
ENDPOINTS = (*SINGLE, "batch", "crm")
SHORT_PATHS = {"t": "track", "p": "page", "i": "identify", "g": "group", "a": "alias", "s": "screen", "b": "batch"}
"""analytics.js posts to ``{apiHost}/<first letter of the type>`` and, batching, to ``/b``."""
_BATCH_DEFAULTS = ("sentAt", "integrations")
CRM_EVENTS = (Conversation, LeadStatusChange, OpportunityUpdate)
SCREEN_UNSUPPORTED = ("screen calls (mobile app screens) are not supported: a web page sends page calls "
                      "(/v1/page, /v1/p)")


def endpoint_for(path: str) -> str | None:
    """The endpoint a ``/v1/<path>`` names (a short path → its long name), or None: unknown."""
    endpoint = SHORT_PATHS.get(path, path)
    return endpoint if endpoint in ENDPOINTS else None


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = MAX_BATCH_BYTES
    max_event_bytes: int = MAX_EVENT_BYTES
    max_future: timedelta = timedelta(seconds=300)
    max_depth: int = MAX_DEPTH
    max_items: int = MAX_BATCH_ITEMS
    max_expanded_bytes: int = MAX_EXPANDED_BYTES


MAX_LISTED_REJECTIONS = 100
"""Rejected items an answer lists (with ``rejected_count`` for all of them)."""
MAX_LISTED_REASONS = 10
"""Reasons an answer lists per rejected item (then ``… and N more``)."""


_MAX_KEY_SCAN = 16


def body_write_keys(body: bytes) -> list[str]:
    """The string values of ``"writeKey"`` members anywhere in a raw body (at most 16), found
    without parsing it: enough to refuse an unknown key before doing any work."""
    keys = []
    for n, match in enumerate(WRITE_KEY.finditer(body)):
        if n >= _MAX_KEY_SCAN:
            break
        try:
            value = orjson.loads(b'"' + match.group(2) + b'"')
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, str):
            keys.append(value)
    return keys


@dataclass(frozen=True)
class Accepted:
    """A valid event: ``value`` is what goes to the inbound topic."""

    index: int | None
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Rejected:
    """An invalid event (``index`` None: the whole body): ``value`` is what goes to the DLQ."""

    index: int | None
    key: bytes | None
    value: bytes
    error: InvalidEvent


Item = Union[Accepted, Rejected]


@dataclass(frozen=True)
class Handled:
    items: list[Item] = field(default_factory=list)
    write_key: str | None = None
    """The ``writeKey`` found in the body (Segment's alternative to Basic auth)."""
    too_large: bool = False

    @property
    def accepted(self) -> list[Accepted]:
        return [i for i in self.items if isinstance(i, Accepted)]

    @property
    def rejected(self) -> list[Rejected]:
        return [i for i in self.items if isinstance(i, Rejected)]


def basic_auth_user(header: str | None) -> str | None:
    """The user part of an HTTP Basic ``Authorization`` header (Segment's write key)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def body_limit(endpoint: str, limits: Limits) -> int:
    return limits.max_event_bytes if endpoint in SINGLE else limits.max_request_bytes


def too_large(prefix: bytes, size: int | None, limit: int, keep: int) -> Rejected:
    """The rejection of a body over ``limit``: the DLQ keeps its first ``keep`` bytes."""
    said = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    reason = Reason("$", f"request body is {said}; the limit is {limit} (dead letter keeps the first {keep} bytes)")
    return Rejected(None, None, redact_write_keys(prefix[:keep]), InvalidEvent([reason], stage="decode", oversized=True))


def too_many(body: bytes, count: int, limit: int, keep: int) -> Rejected:
    """The rejection of a batch of more than ``limit`` items (answered 413, nothing accepted)."""
    reason = Reason("$.batch", f"{count} items; the limit is {limit} per request (split the batch)")
    return Rejected(None, None, redact_write_keys(body[:keep]), InvalidEvent([reason], stage="decode", oversized=True))


def too_expanded(body: bytes, reached: int, count: int, limits: Limits) -> Rejected:
    """The rejection of a batch whose items, each with the batch's shared fields, add up to more
    than ``max_expanded_bytes`` (answered 413, nothing accepted; the dead letter keeps the body's
    first ``max_event_bytes``)."""
    reason = Reason("$.batch", f"the {count} items with the batch's shared fields (context, sentAt, integrations) "
                               f"copied into each come to more than {limits.max_expanded_bytes} bytes by item "
                               f"{reached - 1}; the limit is {limits.max_expanded_bytes} bytes per request "
                               "(JOURNEYS_COLLECTOR__MAX_EXPANDED_BYTES): send a smaller batch or a smaller context")
    return Rejected(None, None, redact_write_keys(body[:limits.max_event_bytes]),
                    InvalidEvent([reason], stage="decode", oversized=True))


@dataclass(frozen=True)
class Parsed:
    """A body that is JSON: the object (``writeKey`` taken out) and that key."""

    obj: Any
    write_key: str | None
    parsed_body: bytes | None = None
    """The body as parsed when it is not the body received: too deep for the JSON parser, with
    its too-deep parts cut (:func:`schemas.decode.cut_deeper_than`)."""


def parse(body: bytes, endpoint: str, *, limits: Limits) -> Parsed | Handled:
    """Step one of :func:`handle`: the body as JSON and its ``writeKey``, or the rejection of a
    body too large or not JSON (a :class:`Handled` with no key)."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    limit = body_limit(endpoint, limits)
    if len(body) > limit:
        return Handled([too_large(body, len(body), limit, limits.max_event_bytes)], None, too_large=True)
    single = endpoint in SINGLE
    parsed_body = None
    try:  # a batch's items are checked for depth one by one (_item), so one deep item costs only itself
        obj = parse_json(body, limit=limit, max_depth=limits.max_depth if single else None, exact_integers=single)
    except InvalidEvent as exc:
        # Too deep for the JSON parser (1024 levels): cut what is deeper than an item could be
        # accepted at, then parse; the deep item is refused by its path (_item), the others kept.
        cut = cut_deeper_than(body, limits.max_depth + _ENVELOPE_LEVELS) if _too_deep_to_parse(exc) else None
        if cut is None:
            return Handled([Rejected(None, None, redact_write_keys(body), exc)])
        try:
            obj = parse_json(cut, limit=max(limit, len(cut)), max_depth=limits.max_depth if single else None,
                             exact_integers=single)
        except InvalidEvent as again:
            return Handled([Rejected(None, None, redact_write_keys(body), again)])
        parsed_body = cut
    write_key = obj.pop("writeKey", None) if isinstance(obj, dict) else None
    return Parsed(obj, write_key if isinstance(write_key, str) else None, parsed_body)


_ENVELOPE_LEVELS = 8
"""Levels kept past the nesting limit when a too-deep body is cut: the batch envelope (2) and
enough of the item that it is still refused for its depth, at the path where it goes too deep."""


def _too_deep_to_parse(exc: InvalidEvent) -> bool:
    return any(DEPTH_EXCEEDED in r.message for r in exc.reasons)


def split(parsed: Parsed, body: bytes, endpoint: str, *, received_at: datetime, limits: Limits,
          id_scope: str | None = None) -> Handled:
    """Step two of :func:`handle`: the parsed body → one accepted or rejected item per call."""
    obj, write_key = parsed.obj, parsed.write_key
    if endpoint in SEGMENT_TYPES:
        return Handled([_item(0, obj, {}, endpoint, SEGMENT_TYPES, received_at, limits, id_scope)], write_key)
    if endpoint == "screen":
        key = raw_key(obj)
        error = InvalidEvent([Reason("$.type", SCREEN_UNSUPPORTED)])
        return Handled([Rejected(0, key.encode() if key else None, redact_write_keys(_dump(obj, limits.max_depth)),
                                 error)], write_key)
    if endpoint == "crm" and not (isinstance(obj, dict) and "batch" in obj and "type" not in obj):
        return Handled([_item(0, obj, {}, None, CRM_TYPES, received_at, limits, id_scope)], write_key)
    if not isinstance(obj, dict) or not isinstance(obj.get("batch"), list):
        error = InvalidEvent([Reason("$.batch", "required: a JSON list of calls")])
        return Handled([Rejected(None, None, redact_write_keys(body), error)], write_key)
    if len(obj["batch"]) > limits.max_items:
        return Handled([too_many(body, len(obj["batch"]), limits.max_items, limits.max_event_bytes)], write_key,
                       too_large=True)
    defaults = _defaults(obj) if endpoint == "batch" else {}
    allowed = SEGMENT_TYPES if endpoint == "batch" else CRM_TYPES
    wide = _wide_by_item(parsed.parsed_body if parsed.parsed_body is not None else body)
    items: list[Item] = []
    expanded = 0
    for i, it in enumerate(obj["batch"]):
        item = _item(i, it, defaults, None, allowed, received_at, limits, id_scope, wide.get(i, wide.get(-1)))
        expanded += len(item.value)
        if expanded > limits.max_expanded_bytes:  # stop here: the rest is not even built
            return Handled([too_expanded(body, i + 1, len(obj["batch"]), limits)], write_key, too_large=True)
        items.append(item)
    return Handled(items, write_key)


def handle(body: bytes, endpoint: str, *, received_at: datetime, limits: Limits,
           id_scope: str | None = None) -> Handled:
    """Split and validate one request body posted to ``/v1/<endpoint>``.

    ``id_scope``: the namespace of the ids derived for CRM records sent without ``messageId``
    (:func:`schemas.events.derived_id`; the write key's source), written into the record."""
    parsed = parse(body, endpoint, limits=limits)
    if isinstance(parsed, Handled):
        return parsed
    return split(parsed, body, endpoint, received_at=received_at, limits=limits, id_scope=id_scope)


def _defaults(envelope: dict[str, Any]) -> dict[str, Any]:
    defaults = {k: envelope[k] for k in _BATCH_DEFAULTS if k in envelope}
    if isinstance(envelope.get("context"), dict):
        defaults["context"] = envelope["context"]
    return defaults


def _enrich(item: dict[str, Any], defaults: dict[str, Any], received_at: datetime) -> None:
    for name, value in defaults.items():
        if name == "context" and isinstance(item.get("context"), dict):
            item["context"] = {**value, **item["context"]}
        else:
            item.setdefault(name, value)
    item["receivedAt"] = received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_BATCH_ITEM = re.compile(r"^\$\.batch\[(\d+)\]")


def _wide_by_item(body: bytes) -> dict[int, str]:
    """Integers beyond 64 bits in a batch body: the first one's path within each item, by item
    index (``-1``: in the batch's shared fields, copied into every item)."""
    wide: dict[int, str] = {}
    for path in wide_integers(body, first=None):  # all: a first item's many must not hide a later one's
        match = _BATCH_ITEM.match(path)
        index, rest = (int(match.group(1)), path[match.end():]) if match else (-1, path[1:])
        wide.setdefault(index, "$" + rest)
    return wide


def _item(index: int, item: Any, defaults: dict[str, Any], forced: str | None, allowed: tuple[str, ...],
          received_at: datetime, limits: Limits, id_scope: str | None = None, wide: str | None = None) -> Item:
    own_id = isinstance(item, dict) and item.get("messageId") is not None
    if isinstance(item, dict):
        item.pop("writeKey", None)
        if forced is not None:
            item.setdefault("type", forced)
        if item.get("type") in SEGMENT_TYPES:
            _enrich(item, defaults, received_at)
    deep = too_deep(item, limits.max_depth)
    value = _dump(item, limits.max_depth) if deep else orjson.dumps(item)
    key = raw_key(item)
    try:
        if deep:
            raise InvalidEvent([Reason(deep, f"nested deeper than {limits.max_depth} levels (the nesting limit)")],
                               stage="decode")
        if wide:
            raise InvalidEvent([Reason(wide, WIDE_INTEGER)], stage="decode")
        _check_type(item, forced, allowed)
        _check_own_id(item)
        if len(value) > limits.max_event_bytes:
            raise InvalidEvent([Reason("$", f"event is {len(value)} bytes; the limit is {limits.max_event_bytes}")],
                               stage="decode", oversized=True)
        event = validate(item)
        check_not_future(event_time(event, received_at), received_at, limits.max_future)
    except InvalidEvent as exc:
        return Rejected(index, key.encode() if key else None, value, exc)
    if id_scope is not None and not own_id and isinstance(event, CRM_EVENTS):
        item["messageId"] = derived_id(event, id_scope)  # the scoped id travels with the record
        value = orjson.dumps(item)
    key = inbound_key(event)
    return Accepted(index, key.encode() if key else None, value)


def _check_own_id(item: Any) -> None:
    """Ids with the ``derived-`` prefix are the tracker's: a sender may not choose one (it could
    name another source's record and take its place in the deduplication)."""
    own = item.get("messageId") if isinstance(item, dict) else None
    if isinstance(own, str) and own.startswith(DERIVED_PREFIX):
        raise InvalidEvent([Reason("$.messageId", f"ids starting with {DERIVED_PREFIX!r} are reserved for the ids "
                                                  "the tracker derives: send your own id, or none")])


def _dump(item: Any, max_depth: int) -> bytes:
    """A too-deep item's dead-letter value: its JSON, or, past what the JSON writer can nest
    (orjson: 254 levels), the item cut at the nesting limit with a marker where it was cut."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        return orjson.dumps(_cut(item, max_depth))


def _cut(value: Any, levels: int) -> Any:
    if not isinstance(value, (dict, list)):
        return value
    if levels <= 0:
        return CUT_MARKER.format(kind=type(value).__name__)
    if isinstance(value, dict):
        return {k: _cut(v, levels - 1) for k, v in value.items()}
    return [_cut(v, levels - 1) for v in value]


def _check_type(item: Any, forced: str | None, allowed: tuple[str, ...]) -> None:
    kind = item.get("type") if isinstance(item, dict) else None
    if kind == "screen":
        raise InvalidEvent([Reason("$.type", SCREEN_UNSUPPORTED)])
    if not isinstance(kind, str) or kind not in (*SEGMENT_TYPES, *CRM_TYPES):
        return  # missing or unknown types get validate()'s own reasons
    if forced is not None and kind != forced:
        raise InvalidEvent([Reason("$.type", f"{kind!r} was posted to /v1/{forced}")])
    if kind in allowed:
        return
    if kind in CRM_TYPES:
        raise InvalidEvent([Reason("$.type", f"{kind!r} is a CRM record: post it to /v1/crm")])
    if kind in SEGMENT_TYPES:
        raise InvalidEvent([Reason("$.type", f"{kind!r} is a Segment call: post it to /v1/batch or /v1/{kind}")])


def response(handled: Handled) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body: 200 ``{"success": true}`` only when nothing was rejected.
    The answer lists at most :data:`MAX_LISTED_REJECTIONS` rejected items (``rejected_count``:
    all of them) with at most :data:`MAX_LISTED_REASONS` reasons each."""
    rejected = handled.rejected
    if not rejected:
        return 200, {"success": True}
    accepted = len(handled.items) - len(rejected)
    code = "payload_too_large" if handled.too_large else "invalid_events"
    if handled.too_large:
        message = rejected[0].error.reasons[0].message
    elif accepted:
        message = f"{len(rejected)} of {len(handled.items)} events rejected (see 'rejected'); {accepted} accepted"
    else:
        message = f"every event rejected ({len(rejected)}; see 'rejected')"
    if len(rejected) > MAX_LISTED_REJECTIONS:
        message += f" (the first {MAX_LISTED_REJECTIONS} are listed)"
    return (413 if handled.too_large else 400), {
        "success": False,
        "code": code,
        "message": message,
        "accepted": accepted,
        "rejected_count": len(rejected),
        "rejected": [{"index": r.index, "reasons": _listed(r.error.reasons)} for r in rejected[:MAX_LISTED_REJECTIONS]],
    }


def _listed(reasons: list[Reason]) -> list[str]:
    """The first :data:`MAX_LISTED_REASONS` reasons, each at most 500 characters (an answer stays
    small however many items or fields a request gets wrong)."""
    listed = [str(x)[:500] for x in reasons[:MAX_LISTED_REASONS]]
    if len(reasons) > MAX_LISTED_REASONS:
        listed.append(f"… and {len(reasons) - MAX_LISTED_REASONS} more")
    return listed
