"""The search page at /ui in a real browser: Debian's Chromium driven by Playwright, against a
real Hypercorn and the real Elasticsearch.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``TRIO_BOOKS_CHROMIUM`` to choose another), which ``nox -s tests`` installs
when it is missing. The app reaches Elasticsearch through a relay the test owns
(``relay.py``), so the last step can stop "Elasticsearch" for the app and see
the page's error message. A screenshot of each step is saved under the test's
temporary folder (``ui-*.png``).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Route, expect, sync_playwright
from relay import Relay
from tools import CHROMIUM

from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.serve import serve_trio

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@contextlib.contextmanager
def browser_page() -> Iterator[Page]:
    """A page of Debian's Chromium, closed afterwards; Playwright runs in the caller's thread."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def books_found(page: Page) -> int:
    expect(page.locator("#status")).to_have_text(re.compile(r"books? found"))
    return int(re.sub(r"\D", "", page.locator("#status").inner_text()))


def facet_texts(page: Page, facet: str) -> list[str]:
    return page.locator(f"#facet-{facet} button").all_inner_texts()


def drive_browser(base_url: str, shots: Path, stop_elasticsearch: Callable[[], None]) -> None:
    """Everything the browser does, in a worker thread (Playwright's sync API runs its own loop)."""
    with browser_page() as page:
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text))
        page.goto(f"{base_url}/ui")
        everything = books_found(page)
        page.screenshot(path=shots / "ui-1-loaded.png", full_page=True)

        # Type a query with the keyboard and see results.
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")  # the search box
        expect(page.locator("#q")).to_be_focused()
        page.keyboard.type("the")
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"\?q=the$"))
        found = books_found(page)
        assert 1 < found < everything
        expect(page.locator("#results li")).to_have_count(min(found, 10))
        years_before = facet_texts(page, "years")
        page.screenshot(path=shots / "ui-2-query.png", full_page=True)

        # Choose a tag (keyboard: focus and Enter): results narrow, other facets change.
        classics = page.locator('[data-key="tags:classics"]')
        classics.focus()
        page.keyboard.press("Enter")
        expect(classics).to_have_attribute("aria-pressed", "true")
        expect(classics).to_be_focused()  # focus survives the re-render
        expect(page.locator("#status")).not_to_have_text(f"{found} books found.")
        narrowed = books_found(page)
        assert narrowed < found
        assert facet_texts(page, "years") != years_before
        page.screenshot(path=shots / "ui-3-facet.png", full_page=True)

        # The timeline: at least two Elasticsearch bars overlapping in time.
        bars = page.locator("#timeline .bar:not(.total)")
        expect(bars).to_have_count(4)
        spans = [
            (
                float(bar.get_attribute("data-start") or "nan"),
                float(bar.get_attribute("data-end") or "nan"),
            )
            for bar in bars.all()
        ]
        overlapping = [
            (a, b)
            for i, a in enumerate(spans)
            for b in spans[i + 1 :]
            if a[0] < b[1] and b[0] < a[1]
        ]
        assert overlapping, spans
        page.locator(".timing").screenshot(path=shots / "ui-4-timeline.png")

        # Choosing the tag again drops it.
        classics.click()
        expect(classics).to_have_attribute("aria-pressed", "false")
        expect(page.locator("#status")).to_have_text(f"{found} books found.")

        # A narrow screen: one column, nothing wider than the viewport.
        page.set_viewport_size({"width": 375, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=shots / "ui-5-narrow.png", full_page=True)
        page.set_viewport_size({"width": 1200, "height": 900})

        # Elasticsearch stops: the page says so clearly.
        stop_elasticsearch()
        page.locator("#search-form button").click()
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).to_contain_text(
            "The search service answered 503 (elasticsearch_unavailable)."
        )
        expect(alert).to_contain_text("Elasticsearch is unreachable")
        expect(alert).to_contain_text("Try again in 5 s.")
        page.screenshot(path=shots / "ui-6-error.png", full_page=True)

        assert not [text for text in problems if "Content Security Policy" in text], problems
    print(f"screenshots: {sorted(path.name for path in shots.glob('ui-*.png'))} in {shots}")


async def test_page_and_assets_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    html = page.text
    # Relative, as the assets' URLs: the page works under any prefix a proxy mounts it at.
    assert '<meta name="trio-books-api" content="api/v1">' in html
    assert 'href="ui/style.css"' in html
    assert 'src="ui/app.js"' in html
    assert "<script>" not in html  # no inline script: only /ui/app.js
    script = await client.get("/ui/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/ui/style.css")).headers["content-type"].startswith("text/css")
    missing = await client.get("/ui/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    spec = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/ui") for path in spec["paths"])


@pytest.mark.needs("chromium")
async def test_search_page_in_a_real_browser(
    nursery: trio.Nursery, api_settings: Settings, tmp_path: Path
) -> None:
    target = urlsplit(api_settings.es_urls[0])
    relay = Relay()
    relay_url = await nursery.start(relay.serve, target.hostname, target.port or 9200)
    settings = api_settings.model_copy(update={"es_urls": [relay_url]})
    config = hypercorn_config(settings, host="127.0.0.1", port=0)
    binds = await nursery.start(
        functools.partial(serve_trio, settings, config, stop_on_signals=False)
    )

    def stop_elasticsearch() -> None:
        trio.from_thread.run(relay.stop)

    await trio.to_thread.run_sync(drive_browser, binds[0], tmp_path, stop_elasticsearch)


def drive_search_features(base_url: str, shots: Path) -> None:
    """Completion, highlights, page links and similar books, as a user drives them."""
    with browser_page() as page:
        page.goto(f"{base_url}/ui")
        assert books_found(page) == 34
        search_box = page.locator("#q")
        completions = page.locator("#completions")

        # Type a prefix: the list opens; arrow down and Enter pick a title.
        search_box.focus()
        page.keyboard.type("hun")
        expect(completions).to_be_visible()
        expect(completions).to_have_attribute("data-prefix", "hun")
        expect(completions.locator("li").first).to_contain_text(
            "The Hunger Games (The Hunger Games, #1)"
        )
        expect(completions).to_contain_text("Catching Fire (The Hunger Games, #2)")
        expect(search_box).to_have_attribute("aria-expanded", "true")
        page.screenshot(path=shots / "ui-7-completion.png", full_page=True)
        page.keyboard.press("ArrowDown")
        first = completions.locator("li").first
        expect(first).to_have_attribute("aria-selected", "true")
        expect(search_box).to_have_attribute("aria-activedescendant", "completion-0")
        page.keyboard.press("Enter")
        expect(completions).to_be_hidden()
        expect(search_box).to_have_value("The Hunger Games (The Hunger Games, #1)")
        expect(page).to_have_url(re.compile(r"\?q=The\+Hunger\+Games"))
        expect(page.locator("#results li").first).to_contain_text("The Hunger Games")

        # An author completes too; Escape closes the list.
        search_box.fill("")
        page.keyboard.type("kaf")
        expect(completions).to_contain_text("Franz Kafka (2 books)")
        page.keyboard.press("Escape")
        expect(completions).to_be_hidden()

        # Highlights: the matched words are <mark> elements, text only.
        search_box.fill("collins")
        expect(completions).to_be_visible()
        page.keyboard.press("Escape")
        expect(completions).to_be_hidden()
        expect(search_box).to_have_value("collins")  # Escape closes the list, keeps the text
        page.locator("#search-form button").click()
        expect(page.locator("#status")).to_have_text("2 books found.")
        marks = page.locator("#results li mark")
        expect(marks).to_have_count(2)
        assert set(marks.all_inner_texts()) == {"Collins"}
        expect(page.locator("#results li .meta").first).to_contain_text("Suzanne Collins")
        page.screenshot(path=shots / "ui-8-highlight.png", full_page=True)

        # Page links: forward and back, from the API's own next and prev.
        search_box.fill("")
        page.locator("#search-form button").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 4")
        expect(page.locator("#previous")).to_have_attribute("aria-disabled", "true")
        first_page = page.locator("#results li h3").all_inner_texts()
        page.locator("#next").click()
        expect(page.locator("#page-info")).to_have_text("Page 2 of 4")
        expect(page).to_have_url(re.compile(r"page=2"))
        assert page.locator("#results li h3").all_inner_texts() != first_page
        page.locator("#previous").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 4")
        assert page.locator("#results li h3").all_inner_texts() == first_page

        # Similar books: from The Hunger Games to Catching Fire.
        search_box.fill("hunger games")
        page.keyboard.press("Escape")
        page.locator("#search-form button").click()
        hunger_games = page.locator("#results li", has_text="The Hunger Games (The Hunger")
        hunger_games.get_by_role("link", name="Similar books").click()
        expect(page.locator("#status")).to_have_text(
            "Books like “The Hunger Games (The Hunger Games, #1)”:"
        )
        expect(page).to_have_url(re.compile(r"\?similar=1$"))
        expect(page.locator("#results")).to_contain_text("Catching Fire")
        expect(page.locator("#results")).not_to_contain_text("The Hunger Games (The Hunger")
        expect(page.locator("#pager")).to_be_hidden()
        page.screenshot(path=shots / "ui-9-similar.png", full_page=True)


def drive_a_slow_early_completion(base_url: str) -> str:
    """Type fast while the first completion is held back: its late answer must not show."""
    held: list[Route] = []
    failed: list[str] = []

    def hold_the_first(route: Route) -> None:
        if "prefix=g&" in route.request.url:
            held.append(route)  # answered only after the later one
        else:
            route.continue_()

    def note_failure(request: Request) -> None:
        failed.append(request.url)

    with browser_page() as page:
        page.goto(f"{base_url}/ui")
        books_found(page)
        page.route("**/api/v1/complete?*", hold_the_first)
        page.on("requestfailed", note_failure)
        page.locator("#q").focus()
        page.keyboard.type("g")
        waited = 0
        while not held:
            assert waited < TIMEOUT_MS, "the first completion request never came"
            page.wait_for_timeout(20)
            waited += 20
        page.keyboard.type("eorge")
        completions = page.locator("#completions")
        expect(completions).to_have_attribute("data-prefix", "george")
        expect(completions).to_contain_text("George Orwell (2 books)")
        # Now the early answer comes, late.
        with contextlib.suppress(PlaywrightError):
            held[0].continue_()
        page.wait_for_timeout(500)
        expect(completions).to_have_attribute("data-prefix", "george")
        expect(completions).to_contain_text("George Orwell (2 books)")
        assert any("prefix=g&" in url for url in failed), failed
        return str(completions.inner_text())


@pytest.fixture
async def page_server(nursery: trio.Nursery, api_settings: Settings) -> str:
    config = hypercorn_config(api_settings, host="127.0.0.1", port=0)
    binds: list[str] = await nursery.start(
        functools.partial(serve_trio, api_settings, config, stop_on_signals=False)
    )
    return binds[0]


@pytest.mark.needs("chromium")
async def test_search_features_in_a_real_browser(page_server: str, tmp_path: Path) -> None:
    await trio.to_thread.run_sync(drive_search_features, page_server, tmp_path)


@pytest.mark.needs("chromium")
async def test_a_slow_early_completion_never_replaces_a_later_one(page_server: str) -> None:
    shown = await trio.to_thread.run_sync(drive_a_slow_early_completion, page_server)
    assert "George Orwell" in shown
