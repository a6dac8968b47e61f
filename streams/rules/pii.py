"""Email pseudonymisation: a keyed HMAC of the address, the domain kept in clear. Pure.

With a secret pepper (``JOURNEYS_PII__EMAIL_HMAC_KEY``) the tracker stores
``hmac:<32 hex>@example.com`` instead of ``jane@example.com`` everywhere after validation
(the timeline's email, user and contact ids, and any email inside an event's properties;
not the ids of our own reps).
The same address always gives the same pseudonym under the same key, so identity stitching,
committees and account domains work unchanged; without the key nobody can recover the
address or test a guess. Role and free-mail detection run on the clear address first.
Dead letters keep the original bytes (they are not shown to the read-only role).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

PREFIX = "hmac:"
STAFF_KEYS = frozenset({"repId", "ownerId", "changedBy"})  # our own reps: not pseudonymised
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 320 and bool(_EMAIL.match(value.strip()))


def pseudonymize_email(email: str, key: bytes) -> str:
    """``hmac:<hex>@domain`` for an address (normalised to lower case); a pseudonym stays as it is."""
    address = email.strip().lower()
    if address.startswith(PREFIX):
        return address
    domain = address.rpartition("@")[2]
    digest = hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{PREFIX}{digest}@{domain}"


def scrub(value: Any, key: bytes) -> Any:
    """``value`` with every string that is an email address pseudonymised (dicts and lists walked)."""
    if isinstance(value, str):
        return pseudonymize_email(value, key) if is_email(value) else value
    if isinstance(value, dict):
        return {k: v if k in STAFF_KEYS else scrub(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    return value
