"""`journeys db grants`: the read-only analyst role's SQL parses in ClickHouse and hides only
dead-letter payloads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sinks.clickhouse import ddl, grants
from sinks.clickhouse.client import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(f"chdb://{tmp_path_factory.mktemp('grants')}")
    ddl.migrate(s)
    yield s
    s.close()


def test_every_statement_parses_and_every_object_is_covered(store) -> None:
    statements = grants.reader_statements("journeys", users=("ana",))
    for sql in statements:
        (formatted,), = store.query("SELECT formatQuery({q:String})", {"q": sql})[1]
        assert formatted  # ClickHouse's own parser accepts it
    _, rows = store.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                          "AND NOT startsWith(name, '.inner')")
    existing = {r[0] for r in rows}
    granted = {s.split(" ON journeys.")[1].split(" ")[0] for s in statements if " ON journeys." in s}
    assert existing <= granted, f"objects without a grant: {existing - granted}"


def test_dead_letters_payload_is_the_only_hidden_column(store) -> None:
    _, rows = store.query("SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'dead_letters'")
    columns = {r[0] for r in rows}
    line = next(s for s in grants.reader_statements() if ".dead_letters " in s)
    shown = set(line.split("SELECT(")[1].split(")")[0].split(", "))
    assert shown == columns - {"payload"}


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError, match="user must be a plain identifier"):
        grants.reader_statements(users=("ana; DROP TABLE timeline",))


def test_cli_prints_the_script_and_refuses_bad_names() -> None:
    from streams.cli.commands import db

    result = CliRunner().invoke(db, ["grants", "--database", "crm", "--user", "ana"])
    assert result.exit_code == 0, result.output
    assert "GRANT journeys_reader TO ana;" in result.output and "ON crm.timeline_v" in result.output
    # by default, the database of the tenant's URL
    tenant = CliRunner().invoke(db, ["grants"], env={"JOURNEYS_TOPIC_PREFIX": "acme-",
                                                     "JOURNEYS_CLICKHOUSE_URL": "http://u:p@ch:8123/journeys"})
    assert tenant.exit_code == 0 and "ON acme_journeys.timeline_v" in tenant.output, tenant.output
    assert "ON acme_default.timeline_v" in CliRunner().invoke(db, ["grants"], env={"JOURNEYS_TOPIC_PREFIX": "acme-"}).output
    bad = CliRunner().invoke(db, ["grants", "--role", "x y"])
    assert bad.exit_code == 2 and "plain identifier" in bad.output
