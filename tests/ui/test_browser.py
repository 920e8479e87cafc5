"""The dashboard in headless Chromium (Debian's package, driven by Playwright with the system executable):
log in, load the incidents page, open an incident, click Acknowledge, see the state change.

Skipped, with the reason printed in pytest's summary, only when Playwright or Chromium is not installed
(`bash .ci/run` installs both: chromium from Debian, playwright from the test extras). Playwright's own
browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from responder.incidents.model import IncidentState
from tests.ui.conftest import READ, TOKENS, WRITE, open_incident

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    candidate = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if os.path.exists(candidate) else None


@pytest.fixture
def chromium() -> str:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: python3 -m pip install -e '.[test]'")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (bash .ci/run does)")
    return path


@pytest.mark.timeout(60)
async def test_acknowledge_in_chromium(chromium: str, make_config: Any, make_app: Any) -> None:
    from playwright.async_api import async_playwright, expect

    client, services = await make_app(make_config({"responder.yaml": TOKENS}))
    incident = await open_incident(services, 'Checkout errors <script>alert("x")</script>')
    other = await open_incident(services, "Disk almost full", key="other", service="db")
    base = str(client.make_url("")).rstrip("/")
    assert base.startswith("http://127.0.0.1:")
    dialogs: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            page.set_default_timeout(5000)

            await page.goto(f"{base}/ui/incidents")  # the read token is set: off to the login form
            assert "/ui/login" in page.url
            await page.fill("input[name=token]", READ)
            await page.click("#login button[type=submit]")
            await expect(page.locator("#who")).to_have_text("ui (read)")
            await expect(page.locator("tr.incident")).to_have_count(2)
            await expect(page.locator(f'tr[data-id="{incident.id}"] .state')).to_have_text("triggered")
            assert await page.locator("#ack").count() == 0

            # a read session cannot act: log in again with the write token and a name
            await page.goto(f"{base}/ui/login?next=/ui/incidents")
            await page.fill("input[name=token]", WRITE)
            await page.fill("input[name=name]", "pat")
            await page.click("#login button[type=submit]")
            await expect(page.locator("#who")).to_have_text("user:pat (write)")
            await page.select_option("select[name=service]", "api")
            await page.click("#filters button[type=submit]")
            await expect(page.locator("tr.incident")).to_have_count(1)

            await page.click(f'tr[data-id="{incident.id}"] a.title')
            await expect(page.locator("#incident-title")).to_have_text(
                f'#{incident.id} Checkout errors <script>alert("x")</script>')
            await expect(page.locator("#incident-state")).to_have_text("triggered")
            await page.click("#ack")
            await expect(page.locator("#incident-state")).to_have_text("acknowledged")
            await expect(page.locator(".notice")).to_have_text("Acknowledged.")
            await expect(page.locator("#timeline")).to_contain_text("user:pat")
            assert await page.locator("#ack").count() == 0

            await page.goto(f"{base}/ui/incidents")
            await expect(page.locator(f'tr[data-id="{incident.id}"] .state')).to_have_text("acknowledged")
            await expect(page.locator(f'tr[data-id="{other.id}"] .state')).to_have_text("triggered")
        finally:
            await browser.close()
    assert dialogs == []  # the alert title never ran as script
    acknowledged = await services.incidents.get(incident.id)
    assert acknowledged.state is IncidentState.ACKNOWLEDGED and acknowledged.acknowledged_by == "user:pat"
