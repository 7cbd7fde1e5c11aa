"""The suite's own policy: every async test runs under a deadline."""

from __future__ import annotations

import pytest


async def test_async_tests_get_a_deadline(request: pytest.FixtureRequest) -> None:
    assert "deadline" in request.fixturenames


def test_sync_tests_need_none(request: pytest.FixtureRequest) -> None:
    assert "deadline" not in request.fixturenames
