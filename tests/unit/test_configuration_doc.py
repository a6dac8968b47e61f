"""docs/configuration.md is generated from the settings models and must match them."""

from __future__ import annotations

from pathlib import Path

from streams import settings_doc
from streams.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGENERATE = "python -m streams.settings_doc > docs/configuration.md"


def test_checked_in_configuration_reference_matches_the_settings_models() -> None:
    assert DOC.exists(), f"docs/configuration.md is missing; run `{REGENERATE}`"
    assert DOC.read_text() == settings_doc.render(), (
        f"docs/configuration.md is out of date with streams/settings.py; run `{REGENERATE}` and commit it")


def test_every_setting_and_nested_setting_has_an_env_var_and_a_meaning() -> None:
    text = settings_doc.render()
    for name, field in Settings.model_fields.items():
        assert f"`JOURNEYS_{name.upper()}" in text
    envs = [row[1] for _, _, rows in settings_doc.sections() for row in rows]
    assert "JOURNEYS_IDENTITY__MAX_PERSONS_PER_DEVICE" in envs
    assert "JOURNEYS_COLLECTOR__WRITE_KEYS" in envs
    assert len(envs) == len(set(envs))
    assert all(row[4] for _, _, rows in settings_doc.sections() for row in rows), "a setting lacks a description"
