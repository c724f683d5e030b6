"""Helpers of the instrumentation tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
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

# The fake provider stands in for api.openai.com: the openai instrumentor is told that its host
# is OpenAI (any other host on 127.0.0.1 would be `self_hosted`, and unpriced).
FAKE_OPENAI_HOSTS = {"127.0.0.1": "openai"}
FAKE_OPENAI_HOSTS_ENV = {"GENAI_OTEL_PROVIDER_HOSTS": "127.0.0.1=openai"}


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
        providers = {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}
        OpenAIInstrumentor().instrument(provider_hosts=FAKE_OPENAI_HOSTS, **providers)
        for instrumentor in (AnthropicInstrumentor(), GoogleGenAIInstrumentor(), BedrockInstrumentor()):
            instrumentor.instrument(**providers)

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


def run_instrumented_app(
    tmp_path: Path, app: str, provider: FakeProvider, drop: tuple[str, ...] = ("OTEL_",), **env: str
) -> tuple[list[dict[str, Any]], str]:
    """Zero code: runs `app` (given the fake provider's base URL) under `opentelemetry-instrument`,
    configured by environment variables alone (the console span exporter, no metrics or logs; the
    caller's variables starting with `drop` left out, the fake provider's host mapped to OpenAI,
    `env` added). Returns the spans printed and
    the output; the app must print APP-DONE."""
    script = tmp_path / "app.py"
    script.write_text(app)
    environment = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    environment.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        **FAKE_OPENAI_HOSTS_ENV,
    )
    environment.update(env)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), str(bin_dir / "python"), str(script), provider.base_url],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "APP-DONE" in done.stdout, done.stderr
    return console_spans(done.stdout), done.stdout


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects the console span exporter printed (one per span, pretty-printed)."""
    spans, decoder, index = [], json.JSONDecoder(), 0
    while (start := stdout.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict) and "context" in value and "name" in value:
            spans.append(value)
    return spans


def console_summary(span: dict[str, Any]) -> dict[str, Any]:
    """What a zero-code test checks of a printed span: name, kind, service, provider and tokens."""
    attributes = span["attributes"]
    return {
        "name": span["name"],
        "kind": span["kind"],
        "service": span["resource"]["attributes"]["service.name"],
        "provider": attributes["gen_ai.provider.name"],
        "input_tokens": attributes["gen_ai.usage.input_tokens"],
        "output_tokens": attributes["gen_ai.usage.output_tokens"],
    }
