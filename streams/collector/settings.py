"""Collector settings (``JOURNEYS_COLLECTOR__*``), nested in :class:`streams.settings.Settings`."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pydantic import BaseModel, Field, SecretStr

from schemas.events import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, MAX_EVENT_BYTES


def key_id(write_key: str) -> str:
    """A short, non-reversible id for a write key: safe in logs, headers and dead letters."""
    return hashlib.sha256(write_key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Source:
    """Who sent a request: the configured source name and the id of the key it used."""

    name: str
    key_id: str


class CollectorSettings(BaseModel):
    """The HTTP collector. Environment: ``JOURNEYS_COLLECTOR__<FIELD>``.

    ``JOURNEYS_COLLECTOR__WRITE_KEYS='{"wk_live_abc": "website", "wk_crm_xyz": "salesforce"}'``
    maps each accepted write key to the source name recorded with its events. Keys are
    ``SecretStr``: they never appear in reprs or logs (use :func:`key_id`).
    """

    host: str = Field("127.0.0.1", description="Bind address of the collector.")
    port: int = Field(8088, ge=1, le=65535, description="Port of the collector.")
    write_keys: dict[SecretStr, str] = Field(
        default_factory=dict, description="Write key → source name. No keys: every request gets 401."
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
    produce_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for the broker to acknowledge a request's writes (then 503)."
    )
    linger_ms: int = Field(5, ge=0, description="Producer linger: how long to wait to fill a batch.")

    def source_for(self, write_key: str | None) -> Source | None:
        """The source a write key belongs to, or None (compared in constant time per key)."""
        if not write_key:
            return None
        found = None
        for secret, name in self.write_keys.items():
            if hmac.compare_digest(secret.get_secret_value().encode(), write_key.encode()):
                found = Source(name, key_id(write_key))
        return found
