"""Alert routing (pure): which webhooks receive an alert, from the definitions' ``alerts:``.

``webhook_urls`` (and ``JOURNEYS_ALERT_WEBHOOKS``) receive every alert, as before routes
existed; each route of ``alerts.routes`` adds its webhooks for the alerts it matches — by rule,
by owner, by team (``alerts.teams``: team → owner ids). An alert with no owner matches only
routes without an owner or team filter.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from schemas.definitions import AlertRoute, Alerts


def matches(route: AlertRoute, rule: str, owner: str, teams: Mapping[str, Sequence[str]]) -> bool:
    """True when every filter ``route`` gives holds for an alert of ``rule`` owned by ``owner``."""
    if route.rules and rule not in route.rules:
        return False
    if route.owners and owner not in route.owners:
        return False
    if route.teams and not (owner and any(owner in teams.get(team, ()) for team in route.teams)):
        return False
    return True


def receivers(rule: str, owner: str, alerts: Alerts, extra_urls: Sequence[str] = ()) -> list[str]:
    """The webhook URLs that get an alert of ``rule`` owned by ``owner``, each once, in file
    order: ``alerts.webhook_urls``, then ``extra_urls`` (the settings'), then each matching
    route's."""
    urls = list(alerts.webhook_urls) + list(extra_urls)
    for route in alerts.routes:
        if matches(route, rule, owner, alerts.teams):
            urls.extend(route.webhook_urls)
    return list(dict.fromkeys(urls))
