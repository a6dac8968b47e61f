"""Analysts' SQL on the embedded store: the SQL endpoint of a real tracker, through standard clients.

One tracker (API token set, SQL endpoint on a free port) stores the demo sample — valid events
and a few dead letters. Then: clickhouse-connect queries it as it would a ClickHouse server;
writes, setting changes, other statements and dead-letter payloads are refused; request shapes
of other HTTP clients (Grafana's data sources) are answered; `journeys sql` and `journeys export`
go through it, and the exported Parquet file is read back with chDB.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.cli.demo import expected_outcome, sample_lines
from streams.settings import Settings
from tests.support.tracker import free_port

pytestmark = pytest.mark.integration

TOKEN = "sql-test-token-0123456789"


def http(port: int, params: dict[str, str], body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    from urllib.parse import urlencode

    request = urllib.request.Request(f"http://127.0.0.1:{port}/?{urlencode(params)}", data=body,
                                     headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_analysts_query_the_running_store_read_only_through_standard_clients(tracker_factory, tmp_path: Path) -> None:
    sql_port = free_port()
    tracker = tracker_factory(JOURNEYS_API_TOKEN=TOKEN, JOURNEYS_SQL__PORT=str(sql_port),
                              JOURNEYS_SQL__MAX_RESULT_ROWS="100000").start()
    lines = sample_lines()
    valid, invalid = expected_outcome(lines, Settings())
    tracker.produce(lines)
    tracker.wait_for_stored(len(valid), dead_letters=invalid, timeout=180)

    # 1. clickhouse-connect, as against a ClickHouse server
    client = clickhouse_connect.get_client(host="127.0.0.1", port=sql_port, username="default", password=TOKEN)
    assert client.query("SELECT uniqExact(event_id) FROM journey_events").result_rows[0][0] >= 1
    result = client.query("SELECT event_id, event_time, channel FROM journey_events ORDER BY event_time LIMIT 5")
    assert result.column_names == ("event_id", "event_time", "channel") and len(result.result_rows) == 5
    rows = client.query("SELECT count() FROM timeline_v WHERE event_id IN {ids:Array(String)}",
                        parameters={"ids": sorted(valid)[:3]}).result_rows
    assert rows[0][0] >= 1
    assert client.query("SELECT dlq_id, stage, reasons FROM dead_letters").row_count == invalid
    assert client.command("SELECT 1") == 1
    assert client.ping()
    try:
        import pandas  # noqa: F401 - query_df only where pandas is installed
    except ImportError:
        pass
    else:
        frame = client.query_df("SELECT channel, count() AS n FROM journey_events GROUP BY channel")
        assert list(frame.columns) == ["channel", "n"] and int(frame["n"].sum()) >= 1

    # 2. no writes, no setting changes, no other statements, no dead-letter payloads
    for statement in ("INSERT INTO channel_definitions SELECT * FROM channel_definitions", "DROP TABLE timeline",
                      "TRUNCATE TABLE dead_letters", "KILL QUERY WHERE 1", "SELECT 1; DROP TABLE timeline",
                      "SELECT 1 SETTINGS max_result_rows = 0", "SELECT 1 INTO OUTFILE '/tmp/x.csv'"):
        with pytest.raises(DatabaseError):
            client.command(statement)
    for leak in ("SELECT payload FROM dead_letters", "SELECT * FROM dead_letters",
                 "SELECT count() FROM dead_letters WHERE payload LIKE '%{%'",
                 "SELECT (SELECT any(payload) FROM dead_letters) AS p",
                 "SELECT * FROM merge(currentDatabase(), '^dead')"):
        with pytest.raises(DatabaseError, match="not (readable|allowed)"):
            client.query(leak)
    with pytest.raises(DatabaseError, match="max rows"):
        client.query("SELECT number FROM numbers(200000)")
    assert tracker.stats()["dead_letters"] == invalid  # nothing changed
    client.close()

    # auth: the API token is the password (or bearer / X-ClickHouse-Key); wrong or none is refused
    status, headers, _ = http(sql_port, {"query": "SELECT 1"}, headers=basic("default", "wrong"))
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert http(sql_port, {"query": "SELECT 1"})[0] == 401
    assert http(sql_port, {"query": "SELECT 1"}, headers={"Authorization": f"Bearer {TOKEN}"})[2] == b"1\n"

    # 3. request shapes of Grafana's ClickHouse data sources (see docs/analytics.md for what is tested)
    status, headers, body = http(sql_port, {"default_format": "Native", "database": "default"},
                                 b"SELECT channel, count() AS n FROM journey_events GROUP BY channel",
                                 {**basic("default", TOKEN), "Content-Type": "text/plain"})
    assert status == 200 and headers["X-ClickHouse-Format"] == "Native" and body[:1] != b""
    status, headers, body = http(sql_port, {"query": "SELECT channel, count() AS n FROM journey_events "
                                                     "GROUP BY channel ORDER BY channel FORMAT JSON"},
                                 headers={"X-ClickHouse-User": "grafana", "X-ClickHouse-Key": TOKEN})
    answer = json.loads(body)
    assert status == 200 and [m["name"] for m in answer["meta"]] == ["channel", "n"] and answer["rows"] >= 1
    status, _, body = http(sql_port, {"query": "SELECT name FROM system.tables WHERE database = 'default' "
                                               "ORDER BY name FORMAT JSONEachRow", "password": TOKEN})
    assert status == 200 and b'"journey_events"' in body and b'"dead_letters"' in body

    # 4. the CLI through the endpoint
    env = {"JOURNEYS_SQL__PORT": str(sql_port), "JOURNEYS_API_TOKEN": TOKEN}
    tracker.env.update(env)
    out = tracker.journeys("sql", "SELECT channel, count() AS n FROM journey_events GROUP BY channel "
                           "ORDER BY channel", "--format", "json").stdout
    records = json.loads(out)
    assert records and set(records[0]) == {"channel", "n"}
    out = tracker.journeys("sql", "SELECT dlq_id, stage FROM dead_letters ORDER BY dlq_id", "--format", "csv").stdout
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["dlq_id", "stage"] and len(table) == invalid + 1
    refused = tracker.journeys("sql", "SELECT payload FROM dead_letters", check=False)
    assert refused.returncode != 0 and "not readable" in refused.stderr
    target = tmp_path / "events.parquet"
    done = tracker.journeys("export", "events", "--format", "parquet", "--since", "3650d", "--output", str(target))
    assert target.exists(), done.stderr
    import chdb

    exported = int(chdb.query(f"SELECT count() FROM file('{target}', Parquet)", "CSV").bytes().strip())
    stored = int(tracker.journeys("sql", "SELECT count() FROM journey_events", "--format", "csv").stdout.split()[-1])
    assert exported == stored  # every row of the view, none invented
    assert exported > 0
    dead = tmp_path / "dead.csv"
    tracker.journeys("export", "dead_letters", "--format", "csv", "--output", str(dead))
    header = next(csv.reader(dead.open()))
    assert "payload" not in header and "reasons" in header
