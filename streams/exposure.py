"""Start-up checks that keep a fresh install closed: what a process may serve, with which secrets.

Pure (no I/O, no settings import): the entry points (``journeys worker``, ``journeys collector``,
the SQL endpoint) call these and refuse to start on an error, so a misconfiguration is found at
start-up with a message naming the settings, not by a stranger reading the API.

- The worker's web server (JSON API, UI data) beyond loopback needs ``JOURNEYS_API_TOKEN``
  unless ``JOURNEYS_WEB_OPEN_WITHOUT_TOKEN`` says otherwise (then it warns loudly).
- A token that protects a non-loopback bind, and every collector write key, must not be a
  placeholder (``change-me``, ``placeholder``, ``<secret-key>``, …) nor shorter than
  :data:`MIN_SECRET_CHARS`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MIN_SECRET_CHARS = 16
"""Shortest accepted write key or API token (``openssl rand -hex 16`` gives 32 characters)."""

PLACEHOLDER_WORDS = ("changeme", "placeholder", "replaceme", "yourkey", "yourtoken", "yoursecret",
                     "writekeyhere", "tokenhere", "secretkey", "insertkey")
"""A secret whose letters and digits contain one of these was copied from an example."""

PLACEHOLDERS = frozenset({"secret", "password", "passw0rd", "token", "key", "writekey", "apikey", "apitoken",
                          "test", "testing", "example", "default", "demo", "admin", "letmein", "xxx", "todo",
                          "none", "null", "undefined"})
"""Whole secrets (letters and digits, lower case) that are words, not secrets."""

EXIT_CONFIG = 78
"""Exit status of a process refused at start-up (``EX_CONFIG`` of sysexits.h)."""


def loopback(host: str) -> bool:
    """Whether ``host`` binds to this machine only (``127.0.0.1``, ``::1``, ``localhost``).
    ``0.0.0.0``, ``::``, '' and any other name count as reachable from elsewhere."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def weak_secret(value: str) -> str | None:
    """Why ``value`` is no secret (a placeholder, a word, too short), or None when it will do."""
    letters = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(mark in value for mark in ("<", ">", "...", "…")):
        return "looks like a template ('<…>' or '…')"
    if letters in PLACEHOLDERS or any(word in letters for word in PLACEHOLDER_WORDS):
        return "is a placeholder"
    if len(set(value)) <= 2:
        return "repeats one or two characters"
    if len(value) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    return None


@dataclass(frozen=True)
class Exposure:
    """What the worker's web server may do: ``error`` (refuse to start) or ``warning`` (log it)."""

    error: str | None = None
    warning: str | None = None


def web_exposure(host: str, port: int, token: str | None, open_without_token: bool) -> Exposure:
    """Whether the worker may serve its API on ``host``:``port`` (see the module docstring)."""
    if loopback(host):
        return Exposure()
    where = f"JOURNEYS_WEB_HOST={host or '(all addresses)'}"
    if token is None:
        if open_without_token:
            return Exposure(warning=(
                f"INSECURE: {where} and JOURNEYS_WEB_OPEN_WITHOUT_TOKEN=true: the JSON API (every account's "
                f"timeline, identities, scores) is served on port {port} to anyone who can reach it, without a "
                "token. Set JOURNEYS_API_TOKEN unless an authenticating proxy guards this port."))
        return Exposure(error=(
            f"{where} serves the JSON API beyond this machine without a token: set JOURNEYS_API_TOKEN "
            f"(e.g. `openssl rand -hex 32`; the CLI and clients send it as a bearer token), or bind to "
            "loopback (JOURNEYS_WEB_HOST=127.0.0.1), or, behind an authenticating proxy only, set "
            "JOURNEYS_WEB_OPEN_WITHOUT_TOKEN=true"))
    why = weak_secret(token)
    if why:
        return Exposure(error=f"{where}: JOURNEYS_API_TOKEN {why}: use a random one (e.g. `openssl rand -hex 32`)")
    return Exposure()


def weak_write_keys(keys: dict[str, str]) -> list[str]:
    """One problem per write key (``key → source``) that is no secret, naming its source (never the key)."""
    problems = []
    for key, source in keys.items():
        why = weak_secret(key)
        if why:
            problems.append(f"the write key of source {source!r} {why}")
    return problems
