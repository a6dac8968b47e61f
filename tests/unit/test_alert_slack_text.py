"""Alert text for Slack: everything from events escaped, every text capped."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from schemas.alerts import SLACK_TEXT_MAX, AlertRecord, PathStep, cap, slack_escape

AT = datetime(2026, 3, 1, tzinfo=timezone.utc)


def record(**fields) -> AlertRecord:
    base = dict(alert_id="a1", rule="channel_bounce", account_id="acme", at=AT, owner="ae-1",
                summary="3 switches", definitions_version="2026.1", link="http://ui.example/ui/account/acme")
    return AlertRecord(**{**base, **fields})


def texts(body: dict) -> list[str]:
    return [body["text"], body["blocks"][0]["text"]["text"], body["blocks"][1]["elements"][0]["text"]]


def test_escape_follows_slacks_three_reserved_characters() -> None:
    assert slack_escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert slack_escape("<!channel> <@U123> <http://evil|click>") == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil|click&gt;")
    assert slack_escape("plain *bold* ✓") == "plain *bold* ✓"


def test_text_from_events_can_neither_mention_nor_link() -> None:
    body = record(account_id="<!channel>", link="http://ui.example/ui/account/<!channel>", owner="<!here>", summary="see <http://evil.example|your invoice> & pay",
                  path=[PathStep(at=AT, side="digital", channel="<@U1>", name="x")]).slack_body()
    raw = orjson.dumps(body).decode()
    for forbidden in ("<!channel>", "<!here>", "<http://evil.example", "<@U1>"):
        assert forbidden not in raw
    assert "&lt;!channel&gt;" in body["text"] and "&amp; pay" in body["text"]
    # the one link is ours, and a hostile account id cannot close or split it
    section = body["blocks"][0]["text"]["text"]
    assert section.startswith("*channel_bounce* · <http://ui.example/ui/account/%3C!channel%3E|&lt;!channel&gt;>")


def test_an_account_id_with_a_pipe_or_spaces_cannot_relabel_the_link() -> None:
    link_id = "x|<http://evil> y"
    section = record(account_id=link_id, link=f"http://ui.example/ui/account/{link_id}").slack_body()["blocks"][0]
    text = section["text"]["text"]
    url = text[text.index("<") + 1:text.index("|")]
    assert url == "http://ui.example/ui/account/x%7C%3Chttp://evil%3E%20y"
    assert text.count("<") == 1 and text.count(">") == 1


def test_every_text_is_capped_and_never_cut_inside_an_escape() -> None:
    body = record(summary="&" * 10_000, path=[PathStep(at=AT, side="digital", channel="web")] * 2000).slack_body()
    for text in texts(body):
        assert len(text) <= SLACK_TEXT_MAX
        assert text.endswith("…")
        head = text[:-1]
        last = head.rfind("&")
        assert last == -1 or head[last:] == "&amp;"
    assert body["text"].count("&amp;") > 500


def test_cap_keeps_short_text_and_cuts_before_a_broken_escape_or_link() -> None:
    assert cap("short", 10) == "short"
    assert cap("abc &amp; def", 8) == "abc …"  # "abc &am" would show garbage
    assert cap("<http://x|y> tail", 8) == "…"
    assert cap("a" * 20, 10) == "a" * 9 + "…"


def test_a_plain_alert_reads_as_before() -> None:
    body = record(path=[PathStep(at=AT, side="digital", channel="web"), PathStep(at=AT, side="human", channel="call")]
                  ).slack_body()
    assert body["text"] == "[channel_bounce] acme: 3 switches (owner: ae-1)"
    assert body["blocks"][0]["text"]["text"] == "*channel_bounce* · <http://ui.example/ui/account/acme|acme>\n3 switches"
    assert body["blocks"][1]["elements"][0]["text"].startswith("path: web → call · owner: ae-1")
