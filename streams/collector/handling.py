"""Pure request handling: request body → accepted events and rejections (no I/O, no aiohttp).

Contract of :func:`handle`:

* Single calls (``/v1/track`` …): the body is one event; the path sets ``type`` when the body
  has none and rejects a body whose ``type`` names another call. Body limit ``max_event_bytes``.
* ``/v1/batch``: ``{"batch": [...], "sentAt", "context", "integrations", "writeKey"}``; each item
  is a Segment call with its own ``type``; the batch's ``sentAt``/``context``/``integrations`` fill
  what an item lacks (the item wins). CRM records are rejected here (post them to ``/v1/crm``).
* ``/v1/crm``: one CRM record (conversation, lead_status, opportunity) or ``{"batch": [...]}``.
* ``writeKey`` is taken out of the body (returned for auth) and never forwarded.
* Segment calls are stamped ``receivedAt`` (the server's clock) before validation; the client's
  ``timestamp``/``sentAt`` are kept so :func:`schemas.decode.event_time` corrects clock skew.
  CRM records are not stamped: they are strict and carry their own ``startedAt``/``changedAt``.
* Every item becomes exactly one :class:`Accepted` (its re-serialised JSON) or :class:`Rejected`
  (its re-serialised JSON, or the original bytes when the body could not be parsed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

import orjson

from schemas.decode import check_not_future, event_time, parse_json, validate
from schemas.errors import InvalidEvent, Reason
from schemas.events import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from schemas.keys import inbound_key, raw_key

SEGMENT_TYPES = ("track", "page", "identify", "group", "alias")
CRM_TYPES = ("conversation", "lead_status", "opportunity")
ENDPOINTS = (*SEGMENT_TYPES, "batch", "crm")
_BATCH_DEFAULTS = ("sentAt", "integrations")


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = MAX_BATCH_BYTES
    max_event_bytes: int = MAX_EVENT_BYTES
    max_future: timedelta = timedelta(seconds=300)


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
    return limits.max_event_bytes if endpoint in SEGMENT_TYPES else limits.max_request_bytes


def too_large(prefix: bytes, size: int | None, limit: int, keep: int) -> Rejected:
    """The rejection of a body over ``limit``: the DLQ keeps its first ``keep`` bytes."""
    said = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    reason = Reason("$", f"request body is {said}; the limit is {limit} (dead letter keeps the first {keep} bytes)")
    return Rejected(None, None, prefix[:keep], InvalidEvent([reason], stage="decode", oversized=True))


def handle(body: bytes, endpoint: str, *, received_at: datetime, limits: Limits) -> Handled:
    """Split and validate one request body posted to ``/v1/<endpoint>``."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    limit = body_limit(endpoint, limits)
    if len(body) > limit:
        return Handled([too_large(body, len(body), limit, limits.max_event_bytes)], None, too_large=True)
    try:
        obj = parse_json(body, limit=limit)
    except InvalidEvent as exc:
        return Handled([Rejected(None, None, body, exc)])
    write_key = obj.pop("writeKey", None) if isinstance(obj, dict) else None
    write_key = write_key if isinstance(write_key, str) else None
    if endpoint in SEGMENT_TYPES:
        return Handled([_item(0, obj, {}, endpoint, SEGMENT_TYPES, received_at, limits)], write_key)
    if endpoint == "crm" and not (isinstance(obj, dict) and "batch" in obj and "type" not in obj):
        return Handled([_item(0, obj, {}, None, CRM_TYPES, received_at, limits)], write_key)
    if not isinstance(obj, dict) or not isinstance(obj.get("batch"), list):
        error = InvalidEvent([Reason("$.batch", "required: a JSON list of calls")])
        return Handled([Rejected(None, None, body, error)], write_key)
    defaults = _defaults(obj) if endpoint == "batch" else {}
    allowed = SEGMENT_TYPES if endpoint == "batch" else CRM_TYPES
    items = [_item(i, it, defaults, None, allowed, received_at, limits) for i, it in enumerate(obj["batch"])]
    return Handled(items, write_key)


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


def _item(index: int, item: Any, defaults: dict[str, Any], forced: str | None, allowed: tuple[str, ...],
          received_at: datetime, limits: Limits) -> Item:
    if isinstance(item, dict):
        item.pop("writeKey", None)
        if forced is not None:
            item.setdefault("type", forced)
        if item.get("type") in SEGMENT_TYPES:
            _enrich(item, defaults, received_at)
    value = orjson.dumps(item)
    key = raw_key(item)
    try:
        _check_type(item, forced, allowed)
        if len(value) > limits.max_event_bytes:
            raise InvalidEvent([Reason("$", f"event is {len(value)} bytes; the limit is {limits.max_event_bytes}")],
                               stage="decode", oversized=True)
        event = validate(item)
        check_not_future(event_time(event, received_at), received_at, limits.max_future)
    except InvalidEvent as exc:
        return Rejected(index, key.encode() if key else None, value, exc)
    key = inbound_key(event)
    return Accepted(index, key.encode() if key else None, value)


def _check_type(item: Any, forced: str | None, allowed: tuple[str, ...]) -> None:
    kind = item.get("type") if isinstance(item, dict) else None
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
    """HTTP status and JSON body: 200 ``{"success": true}`` only when nothing was rejected."""
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
    return (413 if handled.too_large else 400), {
        "success": False,
        "code": code,
        "message": message,
        "accepted": accepted,
        "rejected": [{"index": r.index, "reasons": [str(x) for x in r.error.reasons]} for r in rejected],
    }
