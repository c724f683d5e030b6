"""`gen_ai.token.modality` on the usage counters (`OTEL_SEMCONV_STABILITY_OPT_IN`).

The real SDKs over real HTTP to the fake provider, which reports media tokens
(`x-fake-input-media-tokens`, `x-fake-output-media-tokens`) the way each real API does. Each
counter's increments sum to the call's total; a modality counts only what the provider reported.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pydantic
import pytest
from genai_otel.instrumentation import _modality
from google import genai
from opentelemetry.sdk.metrics.export import Sum
from otel_fixtures import Otel

from genai_otel import semconv
from genai_otel.fake_provider import message_tokens

PROMPT = "Say hello to the tests"
PROMPT_TOKENS = message_tokens(PROMPT)  # 4 + ceil(22 / 4) = 10
MESSAGES = [{"role": "user", "content": PROMPT}]
COUNTERS = {
    "input": semconv.METRIC_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
    "output": semconv.METRIC_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
    "cache_read": semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_write": semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
    "reasoning": semconv.METRIC_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
}
SPAN_TOTALS = {
    "input": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "output": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_write": semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    "reasoning": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}


@pytest.fixture
def latest(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> Otel:
    monkeypatch.setenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, "gen_ai_latest_experimental")
    otel.reinstrument()  # the setting is read at instrument time
    return otel


def _by_modality(otel: Otel) -> dict[str, dict[str, int]]:
    """counter kind -> {gen_ai.token.modality: value} for the one call recorded."""
    found: dict[str, dict[str, int]] = {}
    data = otel.reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = next((k for k, name in COUNTERS.items() if name == metric.name), None)
                if kind is None:
                    continue
                assert isinstance(metric.data, Sum) and metric.data.is_monotonic
                values = found.setdefault(kind, {})
                for point in metric.data.data_points:
                    modality = dict(point.attributes or {})[semconv.GEN_AI_TOKEN_MODALITY]
                    assert modality not in values
                    values[modality] = point.value
    return found


def _check_sums_match_the_span(otel: Otel, found: dict[str, dict[str, int]]) -> None:
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    for kind, values in found.items():
        assert sum(values.values()) == attributes.get(SPAN_TOTALS[kind], 0), kind


def test_openai_chat_media_tokens_by_modality(latest: Otel, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o-audio-preview",
        messages=MESSAGES,
        extra_headers={
            "x-fake-input-media-tokens": "image=258,audio=25,document=7",
            "x-fake-output-media-tokens": "audio=40",
            "x-fake-cache-read-tokens": "30",
        },
    )
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # what the SDK hands the application: the API's own breakdown (text and image as extra fields)
    assert usage.prompt_tokens_details.model_dump(exclude_none=True) == {
        "audio_tokens": 25,
        "cached_tokens": 30,
        "text_tokens": PROMPT_TOKENS + 30,
        "image_tokens": 258,
    }
    found = _by_modality(latest)
    assert found == {
        # the document's 7 tokens are in the total but in no modality OpenAI reports
        "input": {"text": PROMPT_TOKENS + 30, "image": 258, "audio": 25, "unknown": 7},
        "output": {"text": 16, "audio": 40},
        "cache_read": {"unknown": 30},  # OpenAI does not say which modality was cached
        "cache_write": {"unknown": 0},
        "reasoning": {"unknown": 0},
    }
    _check_sums_match_the_span(latest, found)


def test_openai_chat_stream_reads_the_final_usage_by_modality(latest: Otel, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-input-media-tokens": "audio=12", "x-fake-output-media-tokens": "audio=9"},
    )
    assert len(list(stream)) > 2
    found = _by_modality(latest)
    assert found["input"] == {"text": PROMPT_TOKENS, "audio": 12}
    assert found["output"] == {"text": 16, "audio": 9}
    _check_sums_match_the_span(latest, found)


def test_openai_compatible_endpoint_keeps_its_unreported_output_unknown(
    otel: Otel, oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, "gen_ai_latest_experimental")
    monkeypatch.setenv(semconv.ENV_OPENAI_PROVIDER, "groq")
    otel.reinstrument()
    oai.chat.completions.create(
        model="llama-3.3-70b-versatile", messages=MESSAGES, extra_headers={"x-fake-reasoning-tokens": "4"}
    )
    found = _by_modality(otel)
    # another server's chat API may produce other output kinds: only OpenAI's rest is text
    assert (found["input"], found["output"], found["reasoning"]) == (
        {"unknown": PROMPT_TOKENS},
        {"unknown": 20},
        {"unknown": 4},
    )


def test_openai_responses_report_no_modality(latest: Otel, oai: openai.OpenAI) -> None:
    oai.responses.create(
        model="gpt-4o-mini",
        input=PROMPT,
        extra_headers={"x-fake-input-media-tokens": "image=100", "x-fake-cache-read-tokens": "8"},
    )
    found = _by_modality(latest)
    assert found == {
        "input": {"unknown": PROMPT_TOKENS + 100 + 8},
        "output": {"unknown": 16},
        "cache_read": {"unknown": 8},
        "cache_write": {"unknown": 0},
        "reasoning": {"unknown": 0},
    }
    _check_sums_match_the_span(latest, found)


def _gemini_config(**headers: str) -> dict[str, Any]:
    return {"http_options": {"headers": {f"x-fake-{k.replace('_', '-')}": v for k, v in headers.items()}}}


@pytest.mark.parametrize("streamed", [False, True])
def test_gemini_modality_token_counts(latest: Otel, gemini: genai.Client, streamed: bool) -> None:
    config = _gemini_config(
        input_media_tokens="image=258,video=300",
        output_media_tokens="audio=30",
        cache_read_tokens="20",
        reasoning_tokens="5",
    )
    if streamed:
        chunks = list(
            gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT, config=config)
        )
        usage = chunks[-1].usage_metadata
    else:
        usage = gemini.models.generate_content(
            model="gemini-2.5-flash", contents=PROMPT, config=config
        ).usage_metadata
    assert usage is not None and usage.candidates_tokens_details is not None
    assert [(d.modality, d.token_count) for d in usage.candidates_tokens_details] == [
        (genai.types.MediaModality.TEXT, 16),
        (genai.types.MediaModality.AUDIO, 30),
    ]
    found = _by_modality(latest)
    assert found == {
        # the prompt count includes the 20 cached tokens; video keeps Gemini's name (no well-known value)
        "input": {"text": PROMPT_TOKENS + 20, "image": 258, "video": 300},
        # the 5 thinking tokens are output, but Gemini gives them no modality
        "output": {"text": 16, "audio": 30, "unknown": 5},
        "cache_read": {"text": 20},
        "cache_write": {"unknown": 0},
        "reasoning": {"unknown": 5},
    }
    _check_sums_match_the_span(latest, found)


def test_anthropic_output_is_text_and_input_unknown(latest: Otel, claude: anthropic.Anthropic) -> None:
    claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=256,
        messages=MESSAGES,
        extra_headers={
            "x-fake-input-media-tokens": "image=100",
            "x-fake-cache-read-tokens": "10",
            "x-fake-cache-write-tokens": "5",
            "x-fake-reasoning-tokens": "4",
        },
    )
    found = _by_modality(latest)
    assert found == {
        "input": {"unknown": PROMPT_TOKENS + 100 + 10 + 5},  # images and documents count as input
        "output": {"text": 20},  # the Messages API outputs text only
        "cache_read": {"unknown": 10},
        "cache_write": {"unknown": 5},
        "reasoning": {"text": 4},
    }
    _check_sums_match_the_span(latest, found)


def test_default_mode_records_no_usage_counters(otel: Otel, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-input-media-tokens": "audio=12"}
    )
    assert _by_modality(otel) == {}


@pytest.mark.parametrize(
    ("total", "parts", "rest", "expected"),
    [
        (None, None, "text", [("unknown", 0)]),  # no usage: 0 under unknown
        (0, [("text", 0)], "text", [("unknown", 0)]),
        (10, None, "unknown", [("unknown", 10)]),
        (10, [("text", 4), ("image", 0), ("audio", None)], "unknown", [("text", 4), ("unknown", 6)]),
        (10, [("text", 4), ("text", 6)], "unknown", [("text", 10)]),  # merged, nothing left
        (10, [("text", 4)], "text", [("text", 10)]),  # the rest joins the same modality
        (10, [("text", 8), ("image", 5)], "text", [("unknown", 10)]),  # more than the total: not believed
        (10, [("text", -3)], "unknown", [("unknown", 10)]),
    ],
)
def test_partition_sums_to_the_total(total, parts, rest, expected) -> None:
    assert list(_modality.partition(total, parts, rest)) == expected


def test_gemini_unspecified_or_new_modalities_are_unknown() -> None:
    class Count:
        def __init__(self, modality: str, token_count: int) -> None:
            self.modality, self.token_count = modality, token_count

    parts = _modality._gemini_parts(
        [Count("MODALITY_UNSPECIFIED", 3), Count("HOLOGRAM", 2), Count("DOCUMENT", 1)]
    )
    assert parts == [("unknown", 3), ("unknown", 2), ("document", 1)]


def test_openai_details_the_sdk_does_not_declare_are_read_too() -> None:
    # an older openai SDK declares only audio_tokens and keeps the API's text_tokens as an extra
    class Details(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        audio_tokens: int | None = None

    details = Details.model_validate({"audio_tokens": 3, "text_tokens": 9, "image_tokens": 0})
    assert _modality._reported(details, _modality._OPENAI_INPUT) == [("text", 9), ("audio", 3)]
    assert _modality._reported(Details(audio_tokens=0), _modality._OPENAI_INPUT) is None
