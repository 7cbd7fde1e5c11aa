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

import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from playwright.sync_api import Page, expect, sync_playwright
from relay import Relay

from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.serve import serve_trio

CHROMIUM = os.environ.get("TRIO_BOOKS_CHROMIUM", "/usr/bin/chromium")
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


def books_found(page: Page) -> int:
    expect(page.locator("#status")).to_have_text(re.compile(r"books? found"))
    return int(re.sub(r"\D", "", page.locator("#status").inner_text()))


def facet_texts(page: Page, facet: str) -> list[str]:
    return page.locator(f"#facet-{facet} button").all_inner_texts()


def drive_browser(base_url: str, shots: Path, stop_elasticsearch: Callable[[], None]) -> None:
    """Everything the browser does, in a worker thread (Playwright's sync API runs its own loop)."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
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
        finally:
            browser.close()
    print(f"screenshots: {sorted(path.name for path in shots.glob('ui-*.png'))} in {shots}")


async def test_page_and_assets_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    html = page.text
    assert '<meta name="trio-books-api" content="/api/v1">' in html
    assert "<script>" not in html  # no inline script: only /ui/app.js
    script = await client.get("/ui/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/ui/style.css")).headers["content-type"].startswith("text/css")
    missing = await client.get("/ui/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    spec = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/ui") for path in spec["paths"])


async def test_search_page_in_a_real_browser(
    nursery: trio.Nursery, api_settings: Settings, tmp_path: Path
) -> None:
    if not await trio.Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (nox -s tests does)")
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
