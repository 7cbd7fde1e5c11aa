"""Cross-origin access: closed unless ``CORS_ORIGINS`` opens it.

``*`` allows any origin but never with credentials; otherwise only the listed
origins are echoed back. Refused preflights get a 403 JSON answer.
"""

from __future__ import annotations

from collections.abc import Sequence

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
EXPOSED_HEADERS = "X-Process-Time, Server-Timing, Link"
PREFLIGHT_MAX_AGE = "600"


def allowed_origin(origin: str, configured: Sequence[str]) -> str | None:
    """The value of ``Access-Control-Allow-Origin`` for *origin*, or ``None`` if refused."""
    if "*" in configured:
        return "*"
    return origin if origin in configured else None


def cors_headers(origin: str, configured: Sequence[str]) -> dict[str, str]:
    """Headers for an actual (non-preflight) cross-origin response; empty when refused."""
    allow = allowed_origin(origin, configured)
    if allow is None:
        return {}
    headers = {
        "Access-Control-Allow-Origin": allow,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        # Lets a page on that origin read Server-Timing through the Resource Timing API.
        "Timing-Allow-Origin": allow,
    }
    if allow != "*":
        headers["Vary"] = "Origin"
    return headers


def preflight_headers(
    origin: str, configured: Sequence[str], requested_headers: str
) -> dict[str, str] | None:
    """Headers answering a preflight, or ``None`` when the origin is refused."""
    allow = allowed_origin(origin, configured)
    if allow is None:
        return None
    headers = {
        "Access-Control-Allow-Origin": allow,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    if requested_headers:
        headers["Access-Control-Allow-Headers"] = requested_headers
    if allow != "*":
        headers["Vary"] = "Origin"
    return headers
