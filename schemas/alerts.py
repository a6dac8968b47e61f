"""An alert as the tracker publishes it (alerts topic, ClickHouse, webhooks)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict


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
        """A Slack-compatible incoming-webhook body (``text`` plus a section block)."""
        steps = " → ".join(f"{p.channel}" for p in self.path) or "no recent touches"
        text = f"[{self.rule}] {self.account_id}: {self.summary} (owner: {self.owner or 'unassigned'})"
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{self.rule}* · <{self.link}|{self.account_id}>\n{self.summary}"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"path: {steps} · owner: {self.owner or 'unassigned'} · definitions {self.definitions_version} · id {self.alert_id}"}]},
            ],
        }
