"""A real browser (Debian chromium through Playwright) asks the default model a question."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa import QAChain
from tests.conftest import XINHUA_TITLE
from tests.test_app import launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def app_url(qwen_chain: QAChain) -> Iterator[str]:
    demo, url = launch(qwen_chain)
    try:
        yield url
    finally:
        demo.close()


def test_ask_about_the_xinhua_article_in_the_browser(app_url: str, artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian chromium is not installed; run: make browser"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(app_url)
            box = page.locator("#question textarea")
            box.fill("Who is Wang Lei?")
            box.press("Enter")
            chat = page.locator("#chat")
            expect(chat.get_by_text("Sources", exact=True)).to_be_visible(timeout=180_000)
            expect(chat.get_by_text(XINHUA_TITLE, exact=False).first).to_be_visible()
            expect(chat.get_by_text("Xinhua, 2024-03-19", exact=False).first).to_be_visible()
            page.screenshot(path=str(artifacts / "answer.png"), full_page=True)
        finally:
            browser.close()
