"""Which dead letters name a person (pure): the exact test behind ``journeys privacy forget``.

Dead letters keep the original bytes, so an address is there in clear even when the store
holds pseudonyms: with the email key, every address found in a payload is pseudonymised and
compared with the person's pseudonyms (no clear address is needed to find them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

from streams.rules import pii

_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def needles(ids: Iterable[str]) -> list[str]:
    """Substrings a payload naming one of ``ids`` must contain (case-insensitive pre-filter):
    the id itself, or for a pseudonym its ``@domain`` (the clear address is not known)."""
    out = set()
    for i in ids:
        if i.startswith(pii.PREFIX) and "@" in i:
            out.add("@" + i.rpartition("@")[2])
        elif i:
            out.add(i)
    return sorted(out)


def names_them(payload: str, ids: Iterable[str], key: bytes | None) -> bool:
    """Whether ``payload`` names one of ``ids`` (as stored): an address anywhere in it (any
    case); another id as a whole JSON string; a pseudonym, through the addresses it contains."""
    ids = set(ids)
    low = payload.lower()
    for i in ids:
        if i.startswith(pii.PREFIX):
            continue
        if pii.is_email(i):
            if i.lower() in low:
                return True
        elif orjson.dumps(i).decode() in payload:
            return True
    if key and any(i.startswith(pii.PREFIX) for i in ids):
        return any(pii.pseudonymize_email(a, key) in ids for a in _ADDRESS.findall(payload))
    return False
