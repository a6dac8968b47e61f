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
from email.utils import parseaddr
from typing import Any
from urllib.parse import unquote

PREFIX = "hmac:"
STAFF_KEYS = frozenset({"repId", "ownerId", "changedBy"})  # our own reps: not pseudonymised
_NOT_IN_ADDRESS = r"@\s:/?#<>()\[\],;\""
_EMAIL = re.compile(rf"^(?:{PREFIX})?[^{_NOT_IN_ADDRESS}]+@[^{_NOT_IN_ADDRESS}]+\.[^{_NOT_IN_ADDRESS}]+$")
"""A whole value that is an address (or a pseudonym). Not a URL that contains one
(``https://x.io/?e=jane@acme.com``, ``mailto:jane@acme.com``): those are scanned for it."""

_EMBEDDED = re.compile(
    r"(?<!%)(?<!%[0-9A-F])"  # not from inside a %-escape (``%3Djane%40acme.com``: the address is jane's)
    r"(?:[A-Z0-9._+-]|%2B)+(?:@|%40)[A-Z0-9-]+(?:\.[A-Z0-9-]+)*\.[A-Z]{2,}",
    re.IGNORECASE,
)
"""An address inside a longer string: a URL's query (``%40``-encoded too, ``%2B`` for a plus),
free text, a key."""


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 320 and bool(_EMAIL.match(value.strip()))


def address_of(value: Any) -> str:
    """The address of ``jane@acme.com`` or of the name-addr form ``Jane Doe <jane@acme.com>``,
    lower case; '' when ``value`` is neither."""
    if not isinstance(value, str) or "@" not in value or len(value) > 400:
        return ""
    text = value.strip()
    if text.endswith(">") and "<" in text:
        _, address = parseaddr(text)
        return address.strip().lower() if is_email(address) else ""
    return text.lower() if is_email(text) else ""


def pseudonymize_email(email: str, key: bytes) -> str:
    """``hmac:<hex>@domain`` for an address (normalised to lower case); a pseudonym stays as it is."""
    address = email.strip().lower()
    if address.startswith(PREFIX):
        return address
    domain = address.rpartition("@")[2]
    digest = hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{PREFIX}{digest}@{domain}"


def _embedded(text: str, key: bytes) -> str:
    def replace(match: re.Match[str]) -> str:
        if text[max(0, match.start() - len(PREFIX)):match.start()] == PREFIX:
            return match.group(0)  # already a pseudonym
        return pseudonymize_email(unquote(match.group(0)), key)

    return _EMBEDDED.sub(replace, text) if ("@" in text or "%40" in text.lower()) else text


def scrub(value: Any, key: bytes) -> Any:
    """``value`` with every email address pseudonymised: a string that is one (plain or
    ``Name <address>``: the name goes too), and addresses inside longer strings (URLs, ``%40``
    encoded, free text); dict keys as well as values; dicts and lists walked."""
    if isinstance(value, str):
        address = address_of(value)
        return pseudonymize_email(address, key) if address else _embedded(value, key)
    if isinstance(value, dict):
        return {scrub(k, key): v if k in STAFF_KEYS else scrub(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    return value
