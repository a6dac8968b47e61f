"""Email pseudonymisation (issue #9, PII): keyed HMAC, domain in clear, stitching unchanged."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from schemas.decode import validate
from streams.rules import pii
from streams.rules.normalize import normalize
from streams.settings import Settings

T = datetime(2026, 10, 1, tzinfo=timezone.utc)
KEY = b"pepper-1"


def entry(obj: dict, key: bytes | None = KEY):
    return normalize(validate(obj), event_time=T, received_at=T, source="test", email_key=key)


def test_pseudonym_keeps_the_domain_is_stable_and_depends_on_the_key():
    a = pii.pseudonymize_email("Jane@Acme.com", KEY)
    assert a.startswith("hmac:") and a.endswith("@acme.com") and "jane" not in a
    assert a == pii.pseudonymize_email("jane@acme.com ", KEY)  # normalised first
    assert a != pii.pseudonymize_email("jane@acme.com", b"other")
    assert a != pii.pseudonymize_email("john@acme.com", KEY)
    assert pii.pseudonymize_email(a, KEY) == a  # idempotent


def test_no_clear_address_is_left_anywhere_in_the_entry():
    e = entry({"type": "identify", "messageId": "m1", "anonymousId": "a1", "userId": "raj@globex.com",
               "traits": {"email": "Raj@Globex.com", "name": "Raj", "manager": {"email": "kim@globex.com"},
                          "cc": ["kim@globex.com", "not an email"]}})
    text = e.to_bytes().decode()
    assert "raj@" not in text.lower() and "kim@" not in text
    assert e.email == e.user_id == e.contact_id == pii.pseudonymize_email("raj@globex.com", KEY)
    assert e.domain == "globex.com" and e.account_id == "domain:globex.com"  # computed on the clear address
    assert e.properties["cc"][1] == "not an email" and e.properties["name"] == "Raj"


def test_role_addresses_still_name_no_company_and_reps_stay_readable():
    assert entry({"type": "identify", "messageId": "m", "anonymousId": "a",
                  "traits": {"email": "info@acme.com"}}).domain == ""
    call = entry({"type": "conversation", "conversationId": "c1", "channel": "call", "repId": "sam@vendor.io",
                  "repRole": "SDR", "direction": "outbound", "startedAt": "2026-10-01T00:00:00Z",
                  "contactEmails": ["Jane@Acme.com"], "crmAccountId": "acme"})
    assert call.rep_id == "sam@vendor.io" and call.properties["repId"] == "sam@vendor.io"
    assert call.properties["contactEmails"] == [pii.pseudonymize_email("jane@acme.com", KEY)]
    assert call.email == pii.pseudonymize_email("jane@acme.com", KEY)


def test_without_a_key_nothing_changes():
    e = entry({"type": "identify", "messageId": "m", "anonymousId": "a", "traits": {"email": "raj@globex.com"}}, key=None)
    assert e.email == "raj@globex.com"


def test_the_key_comes_from_the_environment_and_is_never_printed(monkeypatch):
    monkeypatch.setenv("JOURNEYS_PII__EMAIL_HMAC_KEY", "s3cret-pepper")
    settings = Settings()
    assert settings.pii.key() == b"s3cret-pepper"
    assert "s3cret-pepper" not in repr(settings) and "s3cret-pepper" not in str(settings.model_dump())
    blocked = settings.identity.config(settings.pii.key()).blocked_values
    assert pii.pseudonymize_email("test@example.com", b"s3cret-pepper") in blocked  # blocked as a pseudonym too


def test_the_same_person_stitches_across_a_web_form_and_a_sales_call():
    """Identity rules see the same pseudonym from both sources, so the call joins the web journey."""
    form = entry({"type": "identify", "messageId": "m", "anonymousId": "a", "traits": {"email": "Jane@Acme.com"}})
    call = entry({"type": "conversation", "conversationId": "c2", "channel": "meeting", "repId": "ae1",
                  "repRole": "AE", "direction": "inbound", "startedAt": "2026-10-01T00:00:00Z",
                  "contactEmails": ["jane@acme.com"], "crmAccountId": "acme"})
    assert form.email == call.email == call.contact_id
    assert orjson.loads(call.to_bytes())["email"].startswith("hmac:")


def test_name_addr_form_is_the_same_person_and_leaves_no_clear_address():
    plain = pii.pseudonymize_email("jane@acme.com", KEY)
    e = entry({"type": "identify", "messageId": "m9", "userId": "Jane Doe <Jane@Acme.com>",
               "traits": {"email": "Jane Doe <jane@acme.com>"}})
    assert e.email == e.user_id == e.contact_id == plain
    assert "jane" not in e.to_bytes().decode().lower() and "doe" not in e.to_bytes().decode().lower()
    from streams.rules.normalize import normalize_email
    assert normalize_email("Jane Doe <Jane@Acme.com>") == "jane@acme.com"  # without a key: stitches too


def test_addresses_inside_urls_keys_group_names_and_anonymous_ids_are_pseudonymised():
    plain = pii.pseudonymize_email("jane@acme.com", KEY)
    page = entry({"type": "page", "messageId": "m10", "anonymousId": "jane@acme.com", "name": "/signup",
                  "context": {"page": {"path": "/signup", "url": "https://x.io/signup?email=jane%40acme.com&ref=1"}},
                  "properties": {"jane@acme.com": True, "note": "call jane@acme.com back"}})
    text = page.to_bytes().decode().lower()
    assert "jane%40acme.com" not in text and "jane@acme.com" not in text
    assert page.anonymous_id == plain and page.properties["url"] == f"https://x.io/signup?email={plain}&ref=1"
    assert page.properties[plain] is True and page.properties["note"] == f"call {plain} back"
    group = entry({"type": "group", "messageId": "m11", "userId": "u1", "groupId": "jane@acme.com",
                   "traits": {"name": "jane@acme.com"}})
    assert "jane@" not in group.to_bytes().decode().lower()
    assert pii.scrub(plain, KEY) == plain and pii.scrub(f"see {plain}", KEY) == f"see {plain}"  # idempotent


def test_encoded_and_bracketed_addresses_are_the_persons_pseudonym_and_urls_keep_their_shape():
    jane = pii.pseudonymize_email("jane@acme.com", KEY)
    cases = {
        '"Doe, Jane" <jane@acme.com>': jane,  # a quoted display name with a comma
        "<Jane@Acme.com>": jane,
        "https://x.io/s?e=JANE%40ACME.COM": f"https://x.io/s?e={jane}",
        "https://x.io/s?e=jane@acme.com&x=1": f"https://x.io/s?e={jane}&x=1",  # a URL is not an address
        "mailto:jane@acme.com": f"mailto:{jane}",
        "https://x.io/?next=%2Fy%3Femail%3Djane%40acme.com": f"https://x.io/?next=%2Fy%3Femail%3D{jane}",
        "https://x.io/?e=jane%2Bnews%40acme.com": f"https://x.io/?e={pii.pseudonymize_email('jane+news@acme.com', KEY)}",
        "Jane <jane@acme.com>, bob@x.io": f"Jane <{jane}>, {pii.pseudonymize_email('bob@x.io', KEY)}",
    }
    for raw, expected in cases.items():
        assert pii.scrub(raw, KEY) == expected, raw
    assert pii.scrub("Jane Doe <not an address>", KEY) == "Jane Doe <not an address>"
    assert pii.is_email(jane) and not pii.is_email("https://x.io/?e=jane@acme.com")


def test_without_a_key_the_name_addr_form_stitches_with_the_plain_address():
    from streams.rules.identity import IdentityConfig, person_key

    cfg = IdentityConfig()
    track = entry({"type": "track", "messageId": "m12", "userId": "Jane Doe <Jane@Acme.com>", "event": "Demo"}, key=None)
    form = entry({"type": "identify", "messageId": "m13", "anonymousId": "d1",
                  "traits": {"email": "Jane Doe <jane@acme.com>"}}, key=None)
    call = entry({"type": "conversation", "conversationId": "c3", "channel": "call", "repId": "sdr1",
                  "repRole": "SDR", "direction": "outbound", "startedAt": "2026-10-01T00:00:00Z",
                  "contactEmails": ["jane@acme.com"]}, key=None)
    assert person_key(track, cfg) == person_key(form, cfg) == person_key(call, cfg) == "jane@acme.com"
    assert form.domain == call.domain == "acme.com"
    assert entry({"type": "track", "messageId": "m14", "userId": "U-42", "event": "x"}, key=None).user_id == "U-42"
