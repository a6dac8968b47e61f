"""JOURNEYS_TOPIC_PREFIX isolates tenants: the consumer group and the state topics too (issue 20)."""

from __future__ import annotations

from pathlib import Path

from streams.app import create_app
from streams.settings import Settings


def test_the_prefix_namespaces_the_app_id() -> None:
    assert Settings(topic_prefix="acme-", app_id="journeys").effective_app_id == "acme-journeys"
    assert Settings(topic_prefix="acme-", app_id="acme-app").effective_app_id == "acme-app"  # already namespaced
    assert Settings(app_id="journeys").effective_app_id == "journeys"  # no prefix: unchanged


def test_two_tenants_with_the_same_app_id_get_their_own_group_and_changelogs(tmp_path: Path) -> None:
    ids = []
    for tenant in ("acme-", "globex-"):
        settings = Settings(topic_prefix=tenant, app_id="journeys", data_dir=tmp_path / tenant, roles="stream")
        app = create_app(settings)
        ids.append(app.conf.id)
        changelogs = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
        assert changelogs and all(name.startswith(f"{tenant}journeys-") for name in changelogs), changelogs
    assert ids == ["acme-journeys", "globex-journeys"]
