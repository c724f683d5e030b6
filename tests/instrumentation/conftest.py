"""Fixtures: in-memory span exporter and metric reader, instrumented SDK clients.

The tracer provider is the process-global one (the Anthropic SDK's native tracing reads the
global provider, and the tests must see its spans too); each test clears the exporter.
Meter providers are per test, passed to `instrument()`.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_fixtures import Otel

from genai_otel.fake_provider import FakeProvider

_EXPORTER = InMemorySpanExporter()


def _global_tracer_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        current = trace.get_tracer_provider()
    assert isinstance(current, TracerProvider)
    if not getattr(current, "_genai_otel_test_exporter", False):
        current.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        current._genai_otel_test_exporter = True  # type: ignore[attr-defined]
    return current


@pytest.fixture
def otel() -> Iterator[Otel]:
    tracer_provider = _global_tracer_provider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    _EXPORTER.clear()
    state = Otel(tracer_provider, meter_provider, reader, _EXPORTER)
    state.instrument()
    try:
        yield state
    finally:
        state.uninstrument()
        meter_provider.shutdown()
        _EXPORTER.clear()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def oai(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=provider.openai_base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def aoai(provider: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=provider.openai_base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def claude(provider: FakeProvider) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def aclaude(provider: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=provider.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def gemini(provider: FakeProvider) -> Iterator[genai.Client]:
    client = genai.Client(
        api_key="test-key", http_options=genai_types.HttpOptions(base_url=provider.base_url)
    )
    yield client
    client.close()
