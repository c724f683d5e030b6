"""OpenAI-compatible providers through the openai SDK: gen_ai.provider.name from the base URL."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from genai_otel.instrumentation.openai._providers import (
    Endpoints,
    HostRule,
    parse_provider_hosts,
    provider_of_url,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_fixtures import port_of, run_instrumented_app

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://my-resource.openai.azure.com/openai/", "azure.ai.openai"),
        ("https://my-resource.cognitiveservices.azure.com/openai/", "azure.ai.openai"),
        ("https://my-project.services.ai.azure.com/models", "azure.ai.inference"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://api.deepseek.com/v1", "deepseek"),
        ("https://api.together.xyz/v1", "together_ai"),
        ("https://api.together.ai/v1", "together_ai"),
        ("https://api.mistral.ai/v1", "mistral_ai"),
        ("https://api.x.ai/v1", "x_ai"),
        ("https://api.perplexity.ai", "perplexity"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.fireworks.ai/inference/v1", "fireworks"),
        ("https://api.cerebras.ai/v1", "cerebras"),
        ("https://api.moonshot.ai/v1", "moonshot_ai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
        (
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/endpoints/openapi",
            "gcp.vertex_ai",
        ),
        ("http://localhost:11434/v1", "ollama"),
        ("http://127.0.0.1:11434/v1", "ollama"),
        ("http://gpu-box.internal:11434/v1", "ollama"),
        ("HTTPS://API.GROQ.COM/openai/v1", "groq"),
        ("https://api.groq.com./openai/v1", "groq"),
        # Not in the table: never OpenAI, whatever the path or the look of the host.
        ("http://localhost:8000/v1", "self_hosted"),  # vLLM's default
        ("http://127.0.0.1:4000", "self_hosted"),  # a LiteLLM proxy
        ("https://openai.example.com/v1", "self_hosted"),
        ("https://api.openai.com.evil.example/v1", "self_hosted"),
        ("https://openai.azure.com/openai/", "self_hosted"),  # the bare domain is no resource
    ],
)
def test_base_url_names_the_provider(base_url: str, provider: str) -> None:
    assert provider_of_url(base_url) == provider


def _provider_with(rules: list[HostRule], base_url: str) -> str:
    """The provider an instrumentor configured with `rules` names for a client of `base_url`."""
    return Endpoints(hosts=rules)(openai.OpenAI(base_url=base_url, api_key="k"))[0]


def test_provider_hosts_entries_come_before_the_table_and_bad_ones_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        rules = parse_provider_hosts(
            " llm.internal = vLLM ,api.groq.com=openai, nonsense, box:http=groq, *:8000=vllm, =groq"
        )
    assert _provider_with(rules, "http://llm.internal/v1") == "vllm"  # value lower-cased
    assert _provider_with(rules, "https://api.groq.com/openai/v1") == "openai"  # replaces the table's
    assert _provider_with(rules, "http://anything:8000/v1") == "vllm"
    assert _provider_with(rules, "http://anything:8001/v1") == "self_hosted"
    assert _provider_with(rules, "https://api.deepseek.com") == "deepseek"  # the table still applies
    assert [record.getMessage() for record in caplog.records] == [
        "GENAI_OTEL_PROVIDER_HOSTS: entry 'nonsense' skipped: expected pattern=provider",
        "GENAI_OTEL_PROVIDER_HOSTS: entry 'box:http=groq' skipped: port 'http' is not a number",
        "GENAI_OTEL_PROVIDER_HOSTS: entry '=groq' skipped: no host",
    ]


def test_foreign_spellings_of_a_provider_are_read_as_the_registry_spells_it() -> None:
    rules = parse_provider_hosts("a.example=azure,b.example=xai,c.example=Together")
    assert _provider_with(rules, "https://a.example") == "azure.ai.openai"
    assert _provider_with(rules, "https://b.example") == "x_ai"
    assert _provider_with(rules, "https://c.example") == "together_ai"


def test_an_azure_client_behind_a_custom_domain_is_azure() -> None:
    endpoints = Endpoints()
    azure = openai.AzureOpenAI(
        azure_endpoint="https://llm-gateway.example", api_key="k", api_version="2024-10-21"
    )
    plain = openai.OpenAI(base_url="https://llm-gateway.example/v1", api_key="k")
    assert endpoints(azure) == ("azure.ai.openai", "llm-gateway.example", 443)
    assert endpoints(plain) == ("self_hosted", "llm-gateway.example", 443)


def test_each_base_url_is_looked_up_once_and_a_new_one_again() -> None:
    endpoints = Endpoints(hosts=parse_provider_hosts("first.example=groq"))
    client = openai.OpenAI(base_url="http://first.example:8000/v1", api_key="k")
    assert endpoints(client) == ("groq", "first.example", 8000)
    endpoints._rules = ()  # were the table read again, the answer would change
    assert endpoints(client) == ("groq", "first.example", 8000)
    client.base_url = "https://second.example/v1"  # type: ignore[assignment]
    assert endpoints(client) == ("self_hosted", "second.example", 443)


# --------------------------------------------------------------------------------------
# Instrumented calls over HTTP to the fake provider
# --------------------------------------------------------------------------------------
class Instrumented:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, **kwargs: object) -> None:
        OpenAIInstrumentor().instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def providers_of_duration_points(self) -> list[str]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            str((point.attributes or {})[semconv.GEN_AI_PROVIDER_NAME])
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == semconv.METRIC_CLIENT_OPERATION_DURATION
            for point in metric.data.data_points
        ]


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[Instrumented]:
    monkeypatch.delenv(semconv.ENV_OPENAI_PROVIDER, raising=False)
    monkeypatch.delenv(semconv.ENV_PROVIDER_HOSTS, raising=False)
    state = Instrumented()
    try:
        yield state
    finally:
        OpenAIInstrumentor().uninstrument()
        state.meter_provider.shutdown()


def _chat(provider: FakeProvider, model: str = "gpt-4o-mini") -> None:
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="k", max_retries=0) as client:
        client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]


def test_an_unknown_host_is_self_hosted_never_openai(
    instrumented: Instrumented, provider: FakeProvider
) -> None:
    instrumented.instrument()
    _chat(provider)

    (span,) = instrumented.spans.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "self_hosted"
    assert attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[semconv.SERVER_PORT] == port_of(provider)
    assert instrumented.providers_of_duration_points() == ["self_hosted"]


def test_provider_hosts_from_the_environment_map_the_host(
    instrumented: Instrumented, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semconv.ENV_PROVIDER_HOSTS, f"127.0.0.1:{port_of(provider)}=groq")
    instrumented.instrument()
    monkeypatch.setenv(semconv.ENV_PROVIDER_HOSTS, "127.0.0.1=deepseek")  # read at instrument() only
    _chat(provider, "llama-3.3-70b-versatile")
    _chat(provider, "llama-3.3-70b-versatile")

    spans = instrumented.spans.get_finished_spans()
    assert [(span.attributes or {})[semconv.GEN_AI_PROVIDER_NAME] for span in spans] == ["groq", "groq"]
    assert instrumented.providers_of_duration_points() == ["groq"]


def test_a_forced_provider_wins_over_the_host_table(
    instrumented: Instrumented, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semconv.ENV_PROVIDER_HOSTS, "127.0.0.1=groq")
    monkeypatch.setenv(semconv.ENV_OPENAI_PROVIDER, " OpenAI ")
    instrumented.instrument()
    _chat(provider)

    (span,) = instrumented.spans.get_finished_spans()
    assert (span.attributes or {})[semconv.GEN_AI_PROVIDER_NAME] == "openai"


def test_instrument_arguments_replace_the_environment(
    instrumented: Instrumented, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semconv.ENV_PROVIDER_HOSTS, "127.0.0.1=groq")
    instrumented.instrument(provider_hosts={"127.0.0.1": "mistral_ai"})
    _chat(provider)

    (span,) = instrumented.spans.get_finished_spans()
    assert (span.attributes or {})[semconv.GEN_AI_PROVIDER_NAME] == "mistral_ai"


def test_opentelemetry_instrument_maps_the_host_from_environment_variables(
    tmp_path: Path, provider: FakeProvider
) -> None:
    app = (
        "import openai, sys\n"
        "openai.OpenAI(base_url=sys.argv[1] + '/v1', api_key='k', max_retries=0).chat.completions.create(\n"
        "    model='deepseek-chat', messages=[{'role': 'user', 'content': 'hi'}])\n"
        "print('APP-DONE', flush=True)\n"
    )
    spans, _ = run_instrumented_app(
        tmp_path,
        app,
        provider,
        OTEL_SERVICE_NAME="compat-test",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
        GENAI_OTEL_PROVIDER_HOSTS="127.0.0.1=deepseek",
    )
    (span,) = spans
    assert span["name"] == "chat deepseek-chat"
    assert span["attributes"]["gen_ai.provider.name"] == "deepseek"
    assert span["attributes"]["server.address"] == "127.0.0.1"


def test_the_readme_table_is_the_host_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("<!-- table:openai-compatible-hosts -->", 1)[1]
    section = section.split("<!-- /table:openai-compatible-hosts -->", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", section, re.MULTILINE)
    assert tuple(rows) == semconv.OPENAI_COMPATIBLE_HOSTS
    assert f"| `{semconv.UNLISTED_HOST_PROVIDER}` | overrides file only |" in section
