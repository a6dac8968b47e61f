"""Alert routing (which webhooks get an alert) and the definitions that declare it."""

from __future__ import annotations

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH, Alerts, check
from schemas.errors import ConfigurationError
from streams.rules.alert_routing import receivers

ALL = "https://hooks.example/all"
ENV = "https://hooks.example/env"
EMEA = "https://hooks.example/emea"
HANDOFF = "https://hooks.example/handoff"
PAT = "https://hooks.example/pat"


def alerts(**extra) -> Alerts:
    base = yaml.safe_load(DEFAULT_PATH.read_text())["alerts"]
    return Alerts.model_validate({**base, **extra})


ROUTED = alerts(
    webhook_urls=[ALL],
    teams={"emea": ["ae-1", "sdr-2"], "us": ["ae-9"]},
    routes=[
        {"name": "emea team", "teams": ["emea"], "webhook_urls": [EMEA]},
        {"name": "handoffs", "rules": ["missed_handoff", "rejected_leads"], "webhook_urls": [HANDOFF]},
        {"name": "pat's bounces", "rules": ["channel_bounce"], "owners": ["ae-1"], "webhook_urls": [PAT, ALL]},
    ],
)


def test_the_file_wide_webhooks_and_the_settings_ones_get_every_alert_as_before_routes() -> None:
    plain = alerts(webhook_urls=[ALL])
    for rule in ("channel_bounce", "committee_gap", "rejected_leads"):
        assert receivers(rule, "", plain, [ENV]) == [ALL, ENV]
        assert receivers(rule, "ae-1", plain, [ENV, ALL]) == [ALL, ENV]  # each once
    assert receivers("channel_bounce", "ae-1", alerts()) == []


@pytest.mark.parametrize(("rule", "owner", "expected"), [
    ("committee_gap", "ae-1", [ALL, EMEA]),                  # by team
    ("committee_gap", "sdr-2", [ALL, EMEA]),
    ("committee_gap", "ae-9", [ALL]),                        # another team has no route
    ("missed_handoff", "ae-9", [ALL, HANDOFF]),              # by rule, any owner
    ("missed_handoff", "ae-1", [ALL, EMEA, HANDOFF]),        # several routes add up
    ("channel_bounce", "ae-1", [ALL, EMEA, PAT]),            # rule and owner both hold; ALL once
    ("channel_bounce", "sdr-2", [ALL, EMEA]),                # owner filter fails
    ("back_to_research", "ae-1", [ALL, EMEA]),               # rule filter fails
    ("rejected_leads", "", [ALL, HANDOFF]),                  # no owner: only routes without owner/team
    ("committee_gap", "", [ALL]),
])
def test_routes_match_by_rule_owner_and_team(rule: str, owner: str, expected: list[str]) -> None:
    assert receivers(rule, owner, ROUTED) == expected


def _defs_with(**alert_fields) -> str:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["alerts"].update(alert_fields)
    return yaml.safe_dump(data)


def test_the_definitions_accept_teams_and_routes() -> None:
    defs = check(_defs_with(teams={"emea": ["ae-1"]},
                            routes=[{"teams": ["emea"], "rules": ["stalled_opportunity"], "webhook_urls": [EMEA]}]))
    assert defs.alerts.routes[0].teams == ["emea"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"routes": [{"rules": ["chanel_bounce"], "webhook_urls": [EMEA]}]},
     "alerts.routes[0].rules: Value error, unknown alert rules: chanel_bounce"),
    ({"routes": [{"teams": ["apac"], "webhook_urls": [EMEA]}]}, "routes[0] names teams not in alerts.teams: apac"),
    ({"routes": [{"rules": ["committee_gap"], "webhook_urls": []}]}, "alerts.routes[0].webhook_urls"),
    ({"routes": [{"webhook_urls": ["hooks.example/no-scheme"]}]}, "alerts.routes[0].webhook_urls[0]"),
    ({"webhook_urls": ["ftp://hooks.example/x"]}, "alerts.webhook_urls[0]"),
])
def test_the_definitions_reject_routes_naming_unknown_rules_or_teams_and_bad_urls(fields: dict, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        check(_defs_with(**fields))
    assert message in str(err.value)
