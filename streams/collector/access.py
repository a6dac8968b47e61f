"""What an authenticated write key may do: scopes and origins (pure; no aiohttp).

A request is checked here after its key is known and before anything of it is stored. A
refusal is an authorisation failure, answered ``403`` and, like a ``401``, stored nowhere (not
even as a dead letter): the sender is not trusted with the endpoint, so its bytes are not ours
to keep.

* **Scope**: ``/v1/crm`` needs ``crm``; the Segment endpoints (``/v1/track`` … ``/v1/batch``)
  need ``segment``.
* **Origin**: a key with ``origins`` refuses a request whose ``Origin`` header names another
  one. A request without the header (a server, an SDK outside a browser) is not refused: the
  header is a browser's statement, not a credential.

:func:`origin_allowed` is also what a CORS answer (``Access-Control-Allow-Origin``) echoes:

* **Preflight** (``OPTIONS``, sent by a browser before a request it may not send unasked, e.g.
  one with ``Authorization`` or ``Content-Type: application/json``): it carries no key, so it is
  answered for an origin that *any* key allowed the endpoint allows (:func:`preflight_allowed`).
* **Request**: its answer carries the CORS headers when its key allows the origin
  (:func:`cors_allowed`); the key↔origin check itself is :func:`refusal`'s.
* A key without ``origins`` allows any origin, browsers included (as it always accepted
  requests with any ``Origin``); the origin ``null`` (sandboxed frames, ``file:``) is never
  echoed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.collector.settings import Source, normalize_origin


@dataclass(frozen=True)
class Refusal:
    """Why a known key may not do what it asked: ``code`` and ``message`` for the 403 body."""

    code: str
    message: str
    status: int = 403


def scope_of(endpoint: str) -> str:
    """The scope a ``/v1/<endpoint>`` request needs."""
    return "crm" if endpoint == "crm" else "segment"


def origin_allowed(source: Source, origin: str | None) -> bool:
    """May a request carrying this ``Origin`` header (None: none) use the key?"""
    if origin is None or not source.origins:
        return True
    return normalize_origin(origin) in source.origins


def refusal(source: Source, endpoint: str, origin: str | None) -> Refusal | None:
    """None when ``source``'s key may post to ``/v1/<endpoint>`` from ``origin``, else why not."""
    needed = scope_of(endpoint)
    if needed not in source.allow:
        what = "CRM records" if needed == "crm" else "Segment calls"
        return Refusal("scope_not_allowed", (
            f"this write key (source {source.name!r}) may not post {what} to /v1/{endpoint}: it is allowed "
            f"{sorted(source.allow)}; use a key allowed {needed!r}"))
    if origin is not None and not origin_allowed(source, origin):
        return Refusal("origin_not_allowed",
                       f"origin {origin[:200]!r} may not use this write key (source {source.name!r})")
    return None


CORS_METHODS = "POST, OPTIONS"
CORS_HEADERS = ("Content-Type, Authorization, AnonymousId, SentAt, Rsa-Recovered, Rsa-Retry-Attempt, "
                "Rsa-Since-Last-Attempt, Rsa-Since-First-Attempt, Rsa-Retry-Reason")
"""Request headers a page may send: analytics.js needs none beyond ``Content-Type``; RudderStack's
JS SDK (v3, XhrQueue plugin) sends Basic ``Authorization``, ``AnonymousId`` (base64), ``SentAt``
and, on a retry or an event recovered from storage, the ``Rsa-*`` headers. Without them in the
preflight's answer the browser never sends the call."""
CORS_MAX_AGE = "600"


def _echoable(origin: str) -> bool:
    return normalize_origin(origin) not in ("", "null")


def cors_allowed(source: Source, origin: str) -> bool:
    """May the answer to a request with this key, from this ``Origin``, be read by the page?"""
    return _echoable(origin) and origin_allowed(source, origin)


def preflight_allowed(sources: Iterable[Source], endpoint: str, origin: str) -> bool:
    """Answer a preflight for ``/v1/<endpoint>`` from ``origin``: does any key that may post
    there allow the origin? (The request itself is checked against its own key.)"""
    needed = scope_of(endpoint)
    return _echoable(origin) and any(needed in s.allow and origin_allowed(s, origin) for s in sources)


def cors_headers(origin: str, *, preflight: bool = False) -> dict[str, str]:
    """The CORS headers of an answer to ``origin`` (echoed as sent, ``Vary: Origin``)."""
    headers = {"Access-Control-Allow-Origin": origin.strip(), "Vary": "Origin"}
    if preflight:
        headers |= {"Access-Control-Allow-Methods": CORS_METHODS, "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": CORS_MAX_AGE}
    return headers
