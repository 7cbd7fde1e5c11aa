"""The search page at ``/ui``: plain HTML, CSS and JavaScript shipped inside the package.

No build step and nothing from other origins: the page talks to this service's
own API, and its Content-Security-Policy allows only its own script and style.
"""

from __future__ import annotations

import html
from importlib import resources

from quart import Quart, Response
from quart_schema import hide

from trio_books.errors import NotFound
from trio_books.settings import Settings

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _read(name: str) -> str:
    return resources.files("trio_books.ui").joinpath(name).read_text(encoding="utf-8")


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def relative_api(api_prefix: str) -> str:
    """The API's prefix relative to the page at ``/ui``: ``/api/v1`` → ``api/v1``, ``""`` → ``.``."""
    return api_prefix.lstrip("/") or "."


def register_ui(app: Quart, settings: Settings) -> None:
    """Serve the page at ``/ui`` and its two assets at ``/ui/app.js`` and ``/ui/style.css``.

    The page learns where the API lives (``settings.api_prefix``) from a meta tag.
    Its every URL is relative to the page's own, so it works unchanged under a
    prefix a proxy mounts the service at (``ROOT_PATH``, :mod:`trio_books.api.proxying`).
    """
    page = _read("index.html").replace(
        "{{API_PREFIX}}", html.escape(relative_api(settings.api_prefix), quote=True)
    )
    assets = {name: _read(name) for name in ASSETS}

    @app.get("/ui")
    @hide
    async def ui_page() -> Response:
        """The search page."""
        return Response(page, headers=_headers("text/html; charset=utf-8"))

    @app.get("/ui/<name>")
    @hide
    async def ui_asset(name: str) -> Response:
        if name not in assets:
            raise NotFound(f"no such file: /ui/{name}")
        return Response(assets[name], headers=_headers(ASSETS[name]))
