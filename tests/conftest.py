"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genai_otel.fake_provider import FakeProvider


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fresh fake OpenAI/Anthropic API on 127.0.0.1 (free port), stopped after the test.

    Use `fake_provider.openai_base_url` for `openai.OpenAI(base_url=...)`, `fake_provider.base_url`
    for `anthropic.Anthropic(base_url=...)`, and `fake_provider.requests` for what was received.
    Pass `max_retries=0` to the SDKs: they retry 429 and 5xx answers by default.
    """
    with FakeProvider() as provider:
        yield provider
