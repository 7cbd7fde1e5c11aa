"""Security headers: strict for JSON, relaxed per path only as far as a page needs.

Every answer is JSON except the Swagger page at ``/docs`` (and pages added
later, such as a ``/ui``). JSON needs no scripts, styles or frames, so the
default content security policy forbids everything. A page registers its own
policy for its path prefix with :func:`add_content_security_policy`; the
longest matching prefix wins.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from quart import Quart

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# A page served by the app itself (a /ui): its own scripts, styles and API, nothing else.
SELF_POLICY = (
    "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none';"
    " form-action 'self'"
)

HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Search answers change with the catalogue and carry per-request timings:
    # no shared cache should keep them.
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

POLICIES_KEY = "TRIO_BOOKS_CSP"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def add_content_security_policy(app: Quart, prefix: str, policy: str) -> None:
    """Answer paths under *prefix* with *policy* instead of the JSON one.

    For example, a page at ``/ui`` that loads only its own files:
    ``add_content_security_policy(app, "/ui", SELF_POLICY)``.
    """
    app.config.setdefault(POLICIES_KEY, {})[prefix] = policy


def policy_for(path: str, policies: Mapping[str, str]) -> str:
    """The policy of the longest registered prefix that *path* falls under, else JSON's."""
    best = ""
    for prefix in policies:
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > len(
            best
        ):
            best = prefix
    return policies[best] if best else JSON_POLICY


def docs_policy(script_url: str, css_url: str) -> str:
    """The Swagger page's policy: its CDN's script and style, its inline start-up script.

    ``{inline}`` is replaced, per answer, with the hashes of the page's inline scripts.
    """
    origins = " ".join(sorted({_origin(script_url), _origin(css_url)}))
    return (
        f"default-src 'none'; script-src {origins} {{inline}}; "
        # Swagger UI sets style attributes from script.
        f"style-src {origins} 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def with_inline_hashes(policy: str, page: bytes) -> str:
    """*policy* with ``{inline}`` replaced by the sha256 sources of *page*'s inline scripts."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(page)
    ]
    return policy.replace(" {inline}", "".join(f" {source}" for source in hashes))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
