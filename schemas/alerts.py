"""An alert as the tracker publishes it (alerts topic, ClickHouse, webhooks), and the record of
one alert's delivery to one receiver."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ALERT_RULES = ("channel_bounce", "back_to_research", "missed_handoff", "stalled_opportunity", "committee_gap",
               "rejected_leads")
"""Every rule that raises alerts (streams/rules/alerts.py); routes in the definitions name these."""

SLACK_TEXT_MAX = 3000
"""Slack's limit for a section block's text; every text of a Slack body is capped at it."""

_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ELLIPSIS = "…"


def slack_escape(text: str) -> str:
    """``text`` with the three characters Slack's message formatting reserves escaped (``&``,
    ``<``, ``>``), so text from events cannot make a mention (``<!channel>``) or a link."""
    return "".join(_SLACK_ESCAPES.get(c, c) for c in text)


def cap(text: str, limit: int = SLACK_TEXT_MAX) -> str:
    """``text`` cut to at most ``limit`` characters (ending in ``…`` when cut), never inside an
    escape (``&amp;``, ``&lt;``, ``&gt;``) nor a link or mention (``<…>``) — cut there, the rest
    would show or act as something else."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(_ELLIPSIS))]
    amp, lt = cut.rfind("&"), cut.rfind("<")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    if lt > cut.rfind(">"):
        cut = cut[:lt]
    return cut + _ELLIPSIS


def _safe_link(url: str) -> str:
    """A URL that cannot close or split Slack's ``<url|label>``: ``<``, ``>``, ``|``, ``&`` and
    spaces percent-encoded (our own links carry no query string)."""
    return quote(url, safe=":/?#[]@!$'()*+,;=%~")


class PathStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: AwareDatetime
    side: str
    channel: str
    name: str = ""


class AlertRecord(BaseModel):
    """One alert: deterministic id (same condition → same id), with the path that triggered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    rule: str
    account_id: str
    at: AwareDatetime
    owner: str = ""
    summary: str
    definitions_version: str
    path: list[PathStep] = []
    link: str = ""

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    def slack_body(self) -> dict[str, Any]:
        """A Slack-compatible incoming-webhook body (``text`` plus a section block). Every text
        from events is escaped (:func:`slack_escape`) and each text capped at
        :data:`SLACK_TEXT_MAX` characters, so an event cannot mention ``@channel``, inject a link
        or make Slack reject the message as too long."""
        e = slack_escape
        owner = e(self.owner or "unassigned")
        steps = " → ".join(e(p.channel) for p in self.path) or "no recent touches"
        text = f"[{e(self.rule)}] {e(self.account_id)}: {e(self.summary)} (owner: {owner})"
        account = f"<{_safe_link(self.link)}|{e(self.account_id)}>" if self.link else e(self.account_id)
        context = (f"path: {steps} · owner: {owner} · definitions {e(self.definitions_version)} · "
                   f"id {e(self.alert_id)}")
        return {
            "text": cap(text),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": cap(f"*{e(self.rule)}* · {account}\n{e(self.summary)}")}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": cap(context)}]},
            ],
        }


DeliveryStatus = Literal["delivered", "failed"]


class AlertDelivery(BaseModel):
    """How one alert's delivery to one receiver ended: ``delivered`` (it answered 2xx) or
    ``failed`` (it refused the alert, or every attempt failed). Keyed by ``(alert_id, receiver)``;
    the newest ``at`` wins. ``receiver`` is the receiver's redacted name, never its URL (a Slack
    webhook URL is a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    receiver: str
    status: DeliveryStatus
    attempts: int = Field(ge=0)
    reason: str = ""
    """The last failure (``HTTP 410: channel_is_archived``, a connection error); empty when delivered."""
    at: AwareDatetime

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
