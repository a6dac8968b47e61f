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

:func:`origin_allowed` is what a CORS answer (``Access-Control-Allow-Origin``) would echo.
"""

from __future__ import annotations

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
