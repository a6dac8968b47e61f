"""JOURNEYS_TOPIC_PREFIX isolates tenants: the consumer group and the state topics too (issue 20)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from schemas.errors import ConfigurationError
from streams import metrics
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


def test_without_a_prefix_every_name_is_as_before(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, clickhouse_url="http://u:p@ch:8123/journeys")
    assert settings.tenant == "" and settings.state_dir == tmp_path
    assert settings.store_url == "http://u:p@ch:8123/journeys"
    assert Settings(data_dir=tmp_path).store_url == f"chdb://{(tmp_path / 'store').resolve()}"


def test_the_prefix_names_the_tenant_s_state_dir_and_embedded_store(tmp_path: Path) -> None:
    acme, globex = (Settings(topic_prefix=p, data_dir=tmp_path) for p in ("acme-", "globex-"))
    assert (acme.tenant, globex.tenant) == ("acme", "globex")
    assert acme.state_dir == tmp_path / "acme" and globex.state_dir == tmp_path / "globex"
    assert acme.store_url == f"chdb://{(tmp_path / 'acme' / 'store').resolve()}" != globex.store_url
    # an explicit embedded path is one store, used as given
    assert Settings(topic_prefix="acme-", clickhouse_url="chdb:///srv/acme").store_url == "chdb:///srv/acme"


def test_the_prefix_names_the_tenant_s_server_database() -> None:
    def urls(prefix: str, url: str) -> tuple[str, str | None]:
        s = Settings(topic_prefix=prefix, clickhouse_url=url, reader_clickhouse_url=url.replace("u:p", "r:q"))
        return s.store_url, s.reader_url

    assert urls("acme-", "http://u:p@ch:8123/journeys") == ("http://u:p@ch:8123/acme_journeys",
                                                            "http://r:q@ch:8123/acme_journeys")
    assert urls("acme-", "https://u:p@ch:8443") == ("https://u:p@ch:8443/acme_default", "https://r:q@ch:8443/acme_default")
    assert urls("acme-", "http://u:p@ch:8123/acme_events")[0] == "http://u:p@ch:8123/acme_events"  # already the tenant's
    assert urls("big.co-", "http://u:p@ch:8123/j")[0] == "http://u:p@ch:8123/big_co_j"
    assert Settings(topic_prefix="acme-", clickhouse_url="http://u:p@ch:8123/j").server_database == "acme_j"
    assert Settings(topic_prefix="acme-").server_database == "acme_default"
    assert Settings().server_database == "default"


def test_a_prefix_must_be_a_topic_name_part() -> None:
    with pytest.raises(ValidationError):
        Settings(topic_prefix="../other-")


def test_a_store_of_the_layout_before_tenants_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()  # a prefixed tracker's embedded store before it had its own directory
    settings = Settings(topic_prefix="acme-", data_dir=tmp_path, roles="stream")
    with pytest.raises(ConfigurationError, match=r"mv .*/store .*/acme/store"):
        create_app(settings)
    assert Settings(data_dir=tmp_path).legacy_store_problem() is None  # no prefix: that store is its own
    (tmp_path / "acme" / "store").mkdir(parents=True)
    assert settings.legacy_store_problem() is None  # the tenant's own store exists: no doubt left


def test_metrics_carry_the_tenant_label() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_tenant_events_total", "Events.", ["stage"], registry=registry)
    counter.labels("ingest").inc(3)
    assert b't_tenant_events_total{stage="ingest",tenant="acme"} 3.0' in metrics.render("acme", registry)
    assert b't_tenant_events_total{stage="ingest"} 3.0' in metrics.render("", registry)  # no tenant: as before
