"""The stitching report on ~2k generated events through a real worker: every event that the
deterministic rules can attribute ends in its true account, and nothing else is attributed.

A quarter of the CRM accounts start with a long pre-CRM email thread (65–90 email-only
touches of one contact) so the set covers the domain → CRM merge of a chatty contact.
"""

from __future__ import annotations

import pytest

from bench.stitching_report import render, run_report

pytestmark = pytest.mark.integration


def test_real_pipeline_attributes_a_generated_set_exactly(kafka_bootstrap: str, tmp_path) -> None:
    report = run_report(2_000, seed=2, work=tmp_path, bootstrap=kafka_bootstrap, timeout=240,
                        long_thread_fraction=0.25)
    assert report["stored"] == report["events"], render(report)
    assert report["precision"] == 1.0, render(report)
    assert report["recall"] == 1.0, render(report)
