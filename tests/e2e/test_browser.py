"""The page in a real browser (Debian chromium through Playwright), as people use it: ask the
default model and follow a citation, see a "not covered" answer, filter by date, upload a file,
find a conversation again after a reload and export it, and the attacks: article, question and
file-name markup that must stay text, requests that must not leave the machine, and file routes
that must refuse. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from index.build import rebuild_index
from index.embeddings import Embedder
from qa import QAChain
from qa.llm import LocalChatModel
from tests.conftest import SAMPLE_ARTICLES, XINHUA_TITLE, make_settings
from tests.support.factories import launch, open_chain

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSWER_TIMEOUT_MS = 300_000  # the default model on a busy 2-core machine
FAST_TIMEOUT_MS = 60_000
# An article whose every field tries to run script or load something from outside.
EVIL_ARTICLE = """---
source: <b>Evil Outlet</b><img src=x onerror="window.__pwned='source'">
url: javascript:window.__pwned='url'
published: 2024-04-02
---
# <script>window.__pwned='title'</script>Marlow harbour festival <img src=x onerror=alert(1)>

The Marlow harbour festival drew twelve thousand visitors on Saturday, the organiser Idris Penhale
said. See ![the poster](http://outside.example/poster.png) and
[the site](javascript:window.__pwned='link').
<script>window.__pwned='text'</script> Her team counted visitors at the
<img src="http://outside.example/pixel.png" onerror="window.__pwned='text-img'"> gates.
The rowing race was won by the crew from Tollhaven by two lengths.
"""
EVIL_QUESTION = (
    "<img src=x onerror=\"window.__pwned='question'\"> ![q](http://outside.example/q.png) "
    "[x](javascript:window.__pwned='question-link') <script>window.__pwned='q'</script>"
)


@pytest.fixture(scope="module")
def site_chain(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[str, QAChain]]:
    """The page over a writable copy of the sample articles, answered by the default model
    (fast mode: extractive), and its chain."""
    root = tmp_path_factory.mktemp("site")
    articles = root / "articles"
    shutil.copytree(SAMPLE_ARTICLES, articles)
    settings = make_settings(root / "index", articles_dir=articles, max_answer_tokens=96)
    rebuild_index(settings, embedder, articles)
    chain = open_chain(settings, embedder)
    demo, url = launch(chain)
    try:
        yield url, chain
    finally:
        demo.close()
        if isinstance(chain.llm, LocalChatModel):
            chain.llm.close()


@pytest.fixture(scope="module")
def site(site_chain: tuple[str, QAChain]) -> str:
    return site_chain[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian chromium is not installed; run: make browser"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Visit:
    """One browser tab on the page; requests to anything but the page's host are refused and
    recorded in `outside`."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.outside: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.goto(url)
        self.page.locator("#question textarea").wait_for()

    def _route(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def ask(self, question: str, *, fast: bool) -> Any:
        """Ask and wait for the finished answer; its message element."""
        box = self.page.locator("#fast input[type=checkbox]")
        if box.is_checked() != fast:
            box.click()
        before = self.page.locator("#chat .cq-answer:not(.cq-draft)").count()
        self.page.locator("#question textarea").fill(question)
        self.page.locator("#ask").click()
        finished = self.page.locator("#chat .cq-answer:not(.cq-draft)")
        timeout = FAST_TIMEOUT_MS if fast else ANSWER_TIMEOUT_MS
        finished.nth(before).wait_for(timeout=timeout)
        return finished.nth(before)

    def open_panel(self, title: str) -> None:
        self.page.get_by_text(title, exact=True).first.click()

    def upload(self, name: str, text: str) -> Any:
        """Add one file through the page; the report element once it says what was added."""
        from playwright.sync_api import expect

        self.open_panel("Add articles")
        self.page.locator("#files input[type=file]").set_input_files(
            [{"name": name, "mimeType": "text/markdown", "buffer": text.encode()}]
        )
        self.page.locator("#add").click()
        report = self.page.locator("#upload-report")
        expect(report).to_contain_text("added 1,", timeout=120_000)
        return report

    def pwned(self) -> Any:
        return self.page.evaluate("window.__pwned")

    def close(self) -> None:
        self.context.close()


FILTERS_PANEL = "As of, outlets, dates"


@pytest.fixture
def visit(browser: Any, site: str) -> Iterator[Visit]:
    tab = Visit(browser, site)
    try:
        yield tab
    finally:
        tab.close()


def test_ask_the_model_and_follow_a_citation(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer = visit.ask("Who is Wang Lei?", fast=False)
    expect(answer).to_contain_text("the local language model")
    marker = answer.locator("a.cq-cite").first
    expect(marker).to_be_visible()
    number = marker.inner_text().strip("[]")
    marker.click()
    source = page.locator(f"#sources #cite-1-{number}")
    expect(source).to_have_class("cq-source cq-active")
    expect(source).to_be_in_viewport()
    expect(source).to_contain_text(XINHUA_TITLE)
    expect(source).to_contain_text("Xinhua, 2024-03-19")
    expect(source.locator("mark").first).to_be_visible()
    expect(source).to_contain_text("rank ")
    page.wait_for_timeout(500)  # the outline fades in
    page.screenshot(path=str(artifacts / "answer.png"))
    page.locator("#copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "\n\nSources:\n[" in copied
    assert f"{XINHUA_TITLE} (Xinhua, 2024-03-19)" in copied
    assert visit.outside == []


def test_a_killed_model_worker_costs_one_answer_and_the_page_answers_the_next(
    visit: Visit, site_chain: tuple[str, QAChain], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    chain = site_chain[1]
    assert isinstance(chain.llm, LocalChatModel)
    worker = chain.llm.supervisor.start().pid
    page = visit.page
    if page.locator("#fast input[type=checkbox]").is_checked():
        page.locator("#fast input[type=checkbox]").click()
    page.locator("#question textarea").fill("Who is Wang Lei?")
    page.locator("#ask").click()
    page.locator("#chat .cq-draft").first.wait_for(timeout=ANSWER_TIMEOUT_MS)  # it is writing
    os.kill(worker, signal.SIGKILL)
    answer = page.locator("#chat .cq-answer:not(.cq-draft)").first
    answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
    expect(answer).to_contain_text("was killed (SIGKILL")
    expect(answer).to_contain_text("Wang Lei")  # the extractive answer, cited
    expect(answer.locator("a.cq-cite").first).to_be_visible()
    page.screenshot(path=str(artifacts / "worker-killed.png"))
    following = visit.ask("What does Wang Lei coordinate?", fast=False)
    expect(following).to_contain_text("the local language model")
    expect(following).not_to_contain_text("was killed")
    assert chain.llm.supervisor.pid not in (None, worker)


def test_not_covered_answer_looks_different(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    answer = visit.ask("What is the best recipe for banana bread?", fast=True)
    expect(answer).to_have_class("cq-answer cq-not-covered")
    expect(answer).to_contain_text("Not covered by the articles")
    expect(visit.page.locator("#sources")).to_contain_text("Closest passages, not close enough")
    visit.page.screenshot(path=str(artifacts / "not-covered.png"))


def test_example_questions_come_from_the_index_and_ask_themselves(visit: Visit) -> None:
    from playwright.sync_api import expect

    page = visit.page
    page.locator("#fast input[type=checkbox]").check()
    example = page.locator("#examples button").first
    label = example.inner_text().strip()
    assert label.startswith(("What do the articles say about", "What does “"))
    example.click()
    answer = page.locator("#chat .cq-answer:not(.cq-draft)").first
    answer.wait_for(timeout=FAST_TIMEOUT_MS)
    expect(page.locator("#chat .cq-question").first).to_have_text(label)


def test_filter_by_publication_date(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.open_panel(FILTERS_PANEL)
    page.locator("#date-from input").first.fill("2020-01-01")
    page.locator("#date-to input").first.fill("2023-12-31")
    answer = visit.ask("Who is Wang Lei?", fast=True)
    expect(answer).to_have_class("cq-answer cq-not-covered")
    page.locator("#date-to input").first.fill("2024-12-31")
    answer = visit.ask("Who is Wang Lei?", fast=True)
    expect(answer.locator("a.cq-cite").first).to_be_visible()
    expect(page.locator("#sources details[open]")).to_contain_text("Xinhua, 2024-03-19")
    page.screenshot(path=str(artifacts / "filters.png"))


def test_this_week_as_of_a_date_set_in_the_page(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.open_panel(FILTERS_PANEL)
    page.locator("#as-of input").first.fill("2024-03-20")
    answer = visit.ask("What happened this week?", fast=False)
    expect(answer.locator("a.cq-cite").first).to_be_visible()
    expect(answer).to_contain_text("As of 2024-03-20")
    expect(answer).to_contain_text("2024-03-13 to 2024-03-20")
    expect(page.locator("#sources")).to_contain_text("Xinhua, 2024-03-19")
    page.screenshot(path=str(artifacts / "as-of.png"))
    # A month later that week holds no article: the page says so instead of giving old news.
    page.locator("#as-of input").first.fill("2024-04-20")
    later = visit.ask("What happened this week?", fast=True)
    expect(later).to_have_class("cq-answer cq-not-covered")
    expect(later).to_contain_text("As of 2024-04-20")


def test_upload_a_file_and_ask_about_it(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = visit.page
    text = (
        "---\nsource: Valley Courier\n---\n# Quarry reopens after flood\n\nThe Breckon quarry "
        "reopened on Saturday after the spring flood, the operator Tamsin Fell said. Forty "
        "workers returned to the pits, and the access road was rebuilt with a higher bridge.\n"
    )
    report = visit.upload("quarry-2024-06-01<img src=x onerror=\"window.__pwned='name'\">.md", text)
    expect(report).to_contain_text("Saved: quarry-2024-06-01")
    expect(report.locator("img")).to_have_count(0)
    page.screenshot(path=str(artifacts / "upload.png"))
    visit.open_panel("Index status")
    expect(page.locator("#status")).to_contain_text("Valley Courier (1)")
    expect(page.locator("#status")).to_contain_text("all-MiniLM-L6-v2")
    page.locator("#status").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "status.png"))
    answer = visit.ask("Who is the operator of the Breckon quarry?", fast=True)
    answer.locator("a.cq-cite").first.click()
    expect(page.locator("#sources .cq-active")).to_contain_text("Quarry reopens after flood")
    assert visit.pwned() is None


def test_hostile_articles_and_questions_stay_text(visit: Visit, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.upload("evil-2024-04-02.md", EVIL_ARTICLE)
    visit.ask(EVIL_QUESTION, fast=True)
    question = page.locator("#chat .cq-question").last
    expect(question).to_contain_text("<img src=x onerror=")
    expect(question).to_contain_text("![q](http://outside.example/q.png)")
    expect(question).to_contain_text("<script>window.__pwned='q'</script>")
    answer = visit.ask("How many visitors did the Marlow harbour festival draw?", fast=True)
    expect(answer).to_contain_text("twelve thousand visitors")
    answer.locator("a.cq-cite").first.click()
    source = page.locator("#sources .cq-active")
    expect(source).to_contain_text("<script>window.__pwned='title'</script>Marlow harbour")
    expect(source).to_contain_text("<b>Evil Outlet</b>")
    expect(source.locator("a")).to_have_count(0)  # the javascript: URL gives no link
    panel = page.locator("#sources")
    expect(panel).to_contain_text("![the poster](http://outside.example/poster.png)")
    assert page.locator("#chat img, #sources img, #chat script, #sources script").count() == 0
    assert page.locator("#sources a[href^='javascript'], #chat a[href^='javascript']").count() == 0
    page.wait_for_timeout(500)  # give any planted handler the chance to run
    assert visit.pwned() is None
    assert visit.outside == []
    page.screenshot(path=str(artifacts / "hostile.png"))


def test_file_routes_refuse_paths_outside_the_upload_area(visit: Visit, site: str) -> None:
    paths = [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../pyproject.toml",
        "/gradio_api/file=%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/gradio_api/file=..%2F..%2Fapp.py",
        "/gradio_api/file=pyproject.toml",
        "/file=/etc/passwd",
        "/gradio_api/file=https://example.org/logo.png",
    ]
    for path in paths:
        response = visit.page.request.get(site.rstrip("/") + path)
        assert response.status in (403, 404), path
        assert b"root:" not in response.body()
        assert b"[project]" not in response.body()
    assert visit.outside == []


def test_a_conversation_survives_a_reload_and_exports_as_markdown(
    visit: Visit, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    page = visit.page
    question = "Which taskforce met in Brussels with Wang Lei?"
    answer = visit.ask(question, fast=True)
    expect(answer.locator("a.cq-cite").first).to_be_visible()
    page.reload()
    page.locator("#question textarea").wait_for()
    expect(page.locator("#chat .cq-answer")).to_have_count(0)
    visit.open_panel("Saved conversations")
    listed = page.locator("#saved-list input").first
    expect(listed).to_have_value(re.compile(re.escape(question) + " · .* · 1 answer$"))
    page.locator("#saved-open").click()
    reopened = page.locator("#chat .cq-answer:not(.cq-draft)").first
    reopened.wait_for(timeout=FAST_TIMEOUT_MS)
    expect(page.locator("#chat .cq-question").first).to_have_text(question)
    reopened.locator("a.cq-cite").first.click()
    expect(page.locator("#sources .cq-active")).to_contain_text(XINHUA_TITLE)
    page.screenshot(path=str(artifacts / "saved-conversation.png"))
    page.locator("#saved-markdown").click()
    link = page.locator("#saved-export a[download]").first
    expect(link).to_be_visible(timeout=FAST_TIMEOUT_MS)
    with page.expect_download() as download:
        link.click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith(f"# {question}\n")
    assert f"## 1. {question}" in exported
    assert f"- [1] {XINHUA_TITLE} (Xinhua, 2024-03-19)" in exported
    assert "Sources:" in exported
    assert visit.outside == []
