"""Headless Chromium for the browser tests (the UI, the collector's CORS, real web SDKs).

`make tools` installs Chromium and its driver (Debian's chromium, chromium-driver): a test that
needs them fails with that advice when they are missing — never a skip (CI counts a skip as a
failure)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync")


@contextmanager
def headless_chromium(name: str, *flags: str, logs: dict[str, str] | None = None,
                      script_timeout: float | None = 30) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a throwaway profile; ``logs``: Chrome's logging preferences
    (``{"performance": "ALL"}`` records every network request, ``{"browser": "ALL"}`` the console)."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "headless Chromium is needed: `make tools` (apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix=f"{name}-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", *flags):
            options.add_argument(flag)
        if logs:
            options.set_capability("goog:loggingPrefs", logs)
        driver: Any = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        if script_timeout is not None:
            driver.set_script_timeout(script_timeout)
        try:
            yield driver
        finally:
            driver.quit()
