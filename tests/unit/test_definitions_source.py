"""Reloading the definitions file without a restart (streams.definitions_source)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from schemas.definitions import DEFAULT_PATH
from schemas.errors import ConfigurationError
from streams.definitions_source import DefinitionsSource

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def write(path, **changes) -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_a_new_valid_version_applies_and_listeners_hear_it(tmp_path) -> None:
    path = tmp_path / "defs.yaml"
    write(path)
    source = DefinitionsSource(path, now=Clock())
    heard = []
    source.subscribe(lambda d: heard.append(d.version))
    assert source.poll() is None  # unchanged
    write(path, version="2026.2", sla={"mql_first_touch_hours": 4})
    assert source.poll().version == "2026.2"
    assert source.current.sla.mql_first_touch_hours == 4 and heard == ["2026.2"]


def test_invalid_or_unversioned_changes_are_refused_and_the_running_version_stays(tmp_path, caplog) -> None:
    path = tmp_path / "defs.yaml"
    write(path)
    source = DefinitionsSource(path, now=Clock())
    path.write_text("stages: [oops")
    assert source.poll() is None and source.current.version == "2026.1"
    assert "invalid, keeping version 2026.1" in caplog.text
    write(path, sla={"mql_first_touch_hours": 4})  # same version, other rules
    assert source.poll() is None and source.current.sla.mql_first_touch_hours == 24
    assert "changed without a new version" in caplog.text
    path.unlink()
    assert source.poll() is None and "cannot read definitions file" in caplog.text


def test_a_version_applies_from_its_activated_at(tmp_path) -> None:
    path = tmp_path / "defs.yaml"
    write(path)
    clock = Clock()
    source = DefinitionsSource(path, now=clock)
    write(path, version="2027.1", activated_at=(NOW + timedelta(hours=2)).isoformat())
    assert source.poll() is None and source.current.version == "2026.1" and source.pending.version == "2027.1"
    clock.now = NOW + timedelta(hours=2)
    assert source.poll().version == "2027.1" and source.pending is None


def test_an_unreadable_file_at_start_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read definitions file"):
        DefinitionsSource(tmp_path / "missing.yaml")
