"""Collector settings (``JOURNEYS_COLLECTOR__*``), nested in :class:`streams.settings.Settings`."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from schemas.errors import ConfigurationError
from schemas.events import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, MAX_EVENT_BYTES, MAX_EXPANDED_BYTES

RATE_LIMIT_PER_SECOND = 200.0
RATE_LIMIT_BURST = 1000

Scope = Literal["segment", "crm"]
SCOPES: tuple[Scope, ...] = ("segment", "crm")
"""``segment``: the Segment endpoints (``/v1/track`` … ``/v1/batch``); ``crm``: ``/v1/crm``."""
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s@]+$")


def key_id(write_key: str) -> str:
    """A short, non-reversible id for a write key: safe in logs, headers and dead letters."""
    return hashlib.sha256(write_key.encode()).hexdigest()[:12]


def normalize_origin(origin: str) -> str:
    """An ``Origin`` as compared: lower case, no trailing slash (``https://Shop.Example/`` →
    ``https://shop.example``). The browser sends ``scheme://host[:port]`` or ``null``."""
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True)
class Source:
    """Who sent a request: the configured source name and the id of the key it used, with what
    that key may do (:mod:`streams.collector.access` applies it)."""

    name: str
    key_id: str
    allow: frozenset[str] = frozenset(SCOPES)
    origins: tuple[str, ...] = ()
    """Normalised origins a browser may post from with this key; empty: any."""
    id_scope: str | None = None
    """Namespace of the ids derived for its CRM records (:func:`schemas.events.derived_id`);
    None: the unscoped ids of the plain ``key → source`` form."""


class WriteKey(BaseModel):
    """What one write key is: the source its events are recorded under, and what it may do.

    The object form of a ``JOURNEYS_COLLECTOR__WRITE_KEYS`` entry. The plain form
    ``"key": "website"`` is the same as ``{"source": "website", "scoped_ids": false}``: every
    endpoint, any origin, ids as before scopes existed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=200, description="Source name recorded with the key's events.")
    allow: frozenset[Scope] = Field(
        frozenset(SCOPES), min_length=1,
        description="Endpoints the key may post to: 'segment' (/v1/track … /v1/batch), 'crm' (/v1/crm).")
    origins: tuple[str, ...] = Field(
        (), description="Browser origins (scheme://host[:port]) the key may be used from; empty: any. "
        "Requests without an Origin header (servers, SDKs outside a browser) are not affected.")
    scoped_ids: bool = Field(
        True, description="Derive the ids of CRM records sent without messageId from the source name too, "
        "so another source cannot pre-empt them (false: the unscoped ids of the plain form).")

    @field_validator("origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(normalize_origin(o) for o in origins)
        for given, origin in zip(origins, normalized, strict=True):
            if not _ORIGIN.match(origin):
                raise ValueError(f"{given!r} is not an origin: write scheme://host[:port], no path, no wildcard")
        return normalized

    def source_for(self, write_key: str) -> Source:
        return Source(self.source, key_id(write_key), frozenset(self.allow), self.origins,
                      self.source if self.scoped_ids else None)


def parse_write_key(key: str, value: Any) -> WriteKey:
    """One ``JOURNEYS_COLLECTOR__WRITE_KEYS`` entry, plain or object form; a wrong one raises
    :class:`ConfigurationError` naming the key by its id (never the key) and what is wrong."""
    if isinstance(value, WriteKey):
        return value
    if isinstance(value, str):
        value = {"source": value, "scoped_ids": False}
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"JOURNEYS_COLLECTOR__WRITE_KEYS: the key with id {key_id(key)} maps to a value of type {type(value).__name__!r}; "
            'expected a source name or {"source": …, "allow": ["segment", "crm"], "origins": […]}')
    try:
        return WriteKey.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"JOURNEYS_COLLECTOR__WRITE_KEYS: the key with id {key_id(key)} is wrong: {problems}") from None


class CollectorSettings(BaseModel):
    """The HTTP collector. Environment: ``JOURNEYS_COLLECTOR__<FIELD>``.

    ``JOURNEYS_COLLECTOR__WRITE_KEYS`` maps each accepted write key to the source name recorded
    with its events, or to what the key may do:

        {"wk_crm_xyz": "salesforce",
         "wk_web_abc": {"source": "website", "allow": ["segment"], "origins": ["https://www.acme.example"]}}

    Keys are ``SecretStr``: they never appear in reprs, logs or configuration errors (use
    :func:`key_id`).
    """

    host: str = Field("127.0.0.1", description="Bind address of the collector.")
    port: int = Field(8088, ge=1, le=65535, description="Port of the collector.")
    write_keys: dict[SecretStr, WriteKey] = Field(
        default_factory=dict,
        description='Write key → source name, or → {"source": …, "allow": ["segment", "crm"], "origins": […], '
        '"scoped_ids": true}. The plain form may post everything from anywhere; scope browser keys to '
        '["segment"] and their origins. No keys: every request gets 401.',
    )
    max_request_bytes: int = Field(
        MAX_BATCH_BYTES, ge=1024, description="Largest accepted /v1/batch or /v1/crm body (bytes)."
    )
    max_event_bytes: int = Field(
        MAX_EVENT_BYTES, ge=256, description="Largest accepted single call / batch item (bytes)."
    )
    max_batch_items: int = Field(
        MAX_BATCH_ITEMS, ge=1, description="Most calls in one /v1/batch or /v1/crm batch (413 above it)."
    )
    max_expanded_bytes: int = Field(
        MAX_EXPANDED_BYTES, ge=1024,
        description="Most bytes the events and dead letters of one request may add up to once a batch's shared "
        "context/sentAt/integrations are copied into each item (413 above it: nothing accepted, one dead letter "
        "keeps the start of the body).")
    rate_limit_per_second: float = Field(
        RATE_LIMIT_PER_SECOND, ge=0,
        description="Requests a second one write key may make on average (a token bucket per key; 429 with "
        "Retry-After above it). 0 turns the limit off.")
    rate_limit_burst: int = Field(
        RATE_LIMIT_BURST, ge=1, description="Requests one write key may make at once before the rate limit applies.")
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest time to receive a request body (408 after it: a slow sender holds no "
        "connection and memory for longer).")
    keepalive_timeout_seconds: float = Field(
        15.0, gt=0, description="How long an idle keep-alive connection is kept open.")
    produce_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for the broker to acknowledge a request's writes (then 503)."
    )
    linger_ms: int = Field(5, ge=0, description="Producer linger: how long to wait to fill a batch.")

    @field_validator("write_keys", mode="before")
    @classmethod
    def _write_keys(cls, value: Any) -> Any:
        """Both forms of an entry; errors as :class:`ConfigurationError`, because pydantic would
        quote the input, write keys included, in its own messages."""
        if not isinstance(value, dict):
            raise ConfigurationError("JOURNEYS_COLLECTOR__WRITE_KEYS must be a JSON object: write key → source")
        parsed = {}
        for key, entry in value.items():
            plain = key.get_secret_value() if isinstance(key, SecretStr) else key
            if not isinstance(plain, str) or not plain:
                raise ConfigurationError("JOURNEYS_COLLECTOR__WRITE_KEYS: a write key is empty or not a string")
            parsed[plain] = parse_write_key(plain, entry)
        return parsed

    def sources(self) -> list[Source]:
        """What every configured key may do (for the CORS preflight, which carries no key)."""
        return [entry.source_for(secret.get_secret_value()) for secret, entry in self.write_keys.items()]

    def source_for(self, write_key: str | None) -> Source | None:
        """The source a write key belongs to, or None (compared in constant time per key)."""
        if not write_key:
            return None
        found = None
        for secret, entry in self.write_keys.items():
            if hmac.compare_digest(secret.get_secret_value().encode(), write_key.encode()):
                found = entry.source_for(write_key)
        return found
