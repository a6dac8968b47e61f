from datetime import datetime, timezone

from schemas.decode import validate
from streams.rules.normalize import company_domain, normalize

T = datetime(2026, 10, 1, tzinfo=timezone.utc)


def entry(obj: dict):
    return normalize(validate(obj), event_time=T, received_at=T, source="test")


def test_company_domain_skips_free_mail_and_role_addresses() -> None:
    assert company_domain("jane@acme.com") == "acme.com"
    assert company_domain("jane@gmail.com") == ""
    assert company_domain("info@acme.com") == ""
    assert company_domain("") == ""


def test_paid_page_is_ads_and_digital() -> None:
    e = entry({"type": "page", "messageId": "m", "anonymousId": "a", "name": "Home",
               "context": {"campaign": {"medium": "cpc", "source": "google"}}})
    assert (e.side, e.channel, e.anonymous_id, e.properties["utm"]["source"]) == ("digital", "ads", "a", "google")


def test_sales_call_is_human_on_its_crm_account() -> None:
    e = entry({"type": "conversation", "conversationId": "c1", "channel": "call", "repId": "sam",
               "repRole": "SDR", "direction": "outbound", "startedAt": "2026-10-01T00:00:00Z",
               "contactEmails": ["Jane@Acme.com"], "crmAccountId": "acme"})
    assert (e.side, e.channel, e.account_id, e.email, e.rep_role) == ("human", "call", "acme", "jane@acme.com", "SDR")


def test_identify_with_work_email_hints_the_domain_account() -> None:
    e = entry({"type": "identify", "messageId": "m", "anonymousId": "a", "userId": "u",
               "traits": {"email": "raj@globex.com"}})
    assert (e.channel, e.contact_id, e.account_id) == ("identity", "u", "domain:globex.com")


def test_rudderstack_identify_traits_in_context() -> None:
    """RudderStack's JS SDK sends identify traits as context.traits, none at the top level."""
    e = entry({"type": "identify", "messageId": "m", "anonymousId": "a", "userId": "u", "channel": "web",
               "context": {"traits": {"email": "raj@globex.com"}, "library": {"name": "RudderLabs JavaScript SDK"}}})
    assert (e.email, e.account_id, e.properties["email"]) == ("raj@globex.com", "domain:globex.com", "raj@globex.com")
    e = entry({"type": "identify", "messageId": "m", "anonymousId": "a", "userId": "u", "context": {"traits": "x"}})
    assert (e.email, e.account_id) == ("", "")
