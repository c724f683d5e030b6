"""Helpers of the instrumentation tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genai_otel.instrumentation.anthropic import AnthropicInstrumentor
from genai_otel.instrumentation.bedrock import BedrockInstrumentor
from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel.fake_provider import FakeProvider


@dataclass
class Otel:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of metric `name`."""
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found

    def instrument(self) -> None:
        for instrumentor in (
            OpenAIInstrumentor(),
            AnthropicInstrumentor(),
            GoogleGenAIInstrumentor(),
            BedrockInstrumentor(),
        ):
            instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def uninstrument(self) -> None:
        OpenAIInstrumentor().uninstrument()
        AnthropicInstrumentor().uninstrument()
        GoogleGenAIInstrumentor().uninstrument()
        BedrockInstrumentor().uninstrument()

    def reinstrument(self) -> None:
        """Instrument again, e.g. after changing a content-capture environment variable."""
        self.uninstrument()
        self.instrument()


def port_of(provider: FakeProvider) -> int:
    return int(provider.base_url.rsplit(":", 1)[1].split("/")[0])
