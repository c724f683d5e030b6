"""Safety evaluations (hallucination, toxicity): counted per model, flagged by the documented rule.

The rule (processors/safety.py): a boolean decides; a 0-10 score flags at or above the
evaluation's threshold (default 0.5); with no score, a `true`/`1`/`false`/`0` label decides;
anything else is a bad score. Safety results go to llm_safety_evaluations_total and
llm_safety_flagged_total, never to the 0-10 quality histogram.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from genai_otel.instrumentation.evaluation import record_evaluation
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook
from genai_otel.processors.safety import flagged
from genai_otel.processors.service import Processor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from genai_otel import semconv as sc

from .helpers import (
    BROKEN_SERVICE,
    GENAI,
    Sink,
    break_service,
    make_pipeline,
    make_request,
    make_span,
    renewed,
    run,
    samples,
    scrape,
)
from .test_request_isolation import ACCELERATION

EVALUATIONS = sc.PROM_LLM_SAFETY_EVALUATIONS
FLAGGED = sc.PROM_LLM_SAFETY_FLAGGED
LABELS = '{{service="checkout",provider="openai",model="gpt-4o",evaluation="{}"}}'


def evaluation(name: str, score: Any = None, label: str | None = None) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {sc.GEN_AI_EVALUATION_NAME: name}
    if score is not None:
        attributes[sc.GEN_AI_EVALUATION_SCORE_VALUE] = score
    if label is not None:
        attributes[sc.GEN_AI_EVALUATION_SCORE_LABEL] = label
    return (sc.EVENT_EVALUATION_RESULT, attributes)


@pytest.mark.parametrize(
    ("value", "label", "threshold", "expected"),
    [
        (True, None, 0.5, True),
        (False, "true", 0.5, False),  # the boolean decides, not the label
        (1, None, 0.5, True),
        (0, None, 0.5, False),
        (0.5, None, 0.5, True),  # at the threshold
        (0.49, None, 0.5, False),
        (0.0, "true", 0.5, False),  # the score decides, not the label
        (7.0, None, 5.0, True),  # a 0-10 scale with its own threshold
        (4.9, None, 5.0, False),
        (10.0, None, 0.5, True),
        (None, "true", 0.5, True),
        (None, "TRUE ", 0.5, True),
        (None, "1", 0.5, True),
        (None, "false", 0.5, False),
        (None, "0", 0.5, False),
        (None, "hallucinated", 0.5, None),
        (None, None, 0.5, None),
        (11.0, None, 0.5, None),
        (-0.1, None, 0.5, None),
        (math.nan, None, 0.5, None),
        (math.inf, None, 0.5, None),
        ("1", None, 0.5, None),  # a string score is unreadable, even with a label
        ("1", "true", 0.5, None),
    ],
)
def test_the_flagging_rule(value: object, label: str | None, threshold: float, expected: bool | None) -> None:
    assert flagged(value, label, threshold) is expected


@pytest.mark.parametrize("accelerated", ACCELERATION)
def test_safety_results_are_counted_and_flagged_per_model(accelerated: bool) -> None:
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
    span = make_span(
        GENAI,
        events=[
            evaluation("hallucination", 1.0),
            evaluation("hallucination", 0.0),
            evaluation("hallucination", 0.7),
            evaluation("hallucination", 0.2),
            evaluation("toxicity", True),
            evaluation("toxicity", label="false"),
            evaluation("toxicity", 11.0),  # bad score: counted as invalid, nowhere else
            evaluation("relevance", 8.5),  # a quality score, as before
        ],
    )
    # the same span kind twice: the C lane has seen it and still sends evaluations to Python
    run(pipeline, make_request([span]))
    run(pipeline, renewed(make_request([span])))  # a second call (sent again as is: a retry)
    exposition = pipeline.registry.expose(openmetrics=False)
    assert samples(exposition, EVALUATIONS) == {
        LABELS.format("hallucination"): "8",
        LABELS.format("toxicity"): "4",
    }
    assert samples(exposition, FLAGGED) == {
        LABELS.format("hallucination"): "4",
        LABELS.format("toxicity"): "2",
    }
    # only the quality evaluation is a quality score
    assert samples(exposition, sc.PROM_LLM_QUALITY_SCORE + "_count") == {LABELS.format("relevance"): "2"}
    assert pipeline.registry.invalid == {"bad_evaluation_score": 2}


def test_a_flagged_series_exists_at_zero_from_the_first_result() -> None:
    """flagged / evaluated is 0, not missing, for a model that never hallucinated; both series
    are created together (OpenMetrics `_created`)."""
    pipeline = make_pipeline()
    run(pipeline, make_request([make_span(GENAI, events=[evaluation("hallucination", 0)])]))
    exposition = pipeline.registry.expose(openmetrics=True)
    labels = LABELS.format("hallucination")
    assert samples(exposition, EVALUATIONS) == {labels: "1"}
    assert samples(exposition, FLAGGED) == {labels: "0"}
    created = samples(exposition, "llm_safety_evaluations_created")[labels]
    assert samples(exposition, "llm_safety_flagged_created") == {labels: created}


def test_the_judged_model_comes_from_the_event_when_the_span_is_not_a_call() -> None:
    pipeline = make_pipeline()
    judged = {sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-0"}
    name, attributes = evaluation("hallucination", 1)
    span = make_span({}, name="handle request", events=[(name, {**attributes, **judged})])
    run(pipeline, make_request([span], service="support"))
    labels = '{service="support",provider="anthropic",model="claude-sonnet-4-0",evaluation="hallucination"}'
    assert samples(pipeline.registry.expose(openmetrics=False), FLAGGED) == {labels: "1"}


def test_the_safety_evaluations_and_their_thresholds_are_configurable() -> None:
    base = make_pipeline()
    pipeline = Pipeline(base.registry, PriceBook(), safety_thresholds={"pii_leak": 5.0})
    span = make_span(
        GENAI,
        events=[
            evaluation("pii_leak", 4.0),
            evaluation("pii_leak", 6.0),
            evaluation("hallucination", 1.0),  # no longer a safety evaluation: a quality score
        ],
    )
    run(pipeline, make_request([span]))
    exposition = pipeline.registry.expose(openmetrics=False)
    assert samples(exposition, EVALUATIONS) == {LABELS.format("pii_leak"): "2"}
    assert samples(exposition, FLAGGED) == {LABELS.format("pii_leak"): "1"}
    assert samples(exposition, sc.PROM_LLM_QUALITY_SCORE + "_count") == {LABELS.format("hallucination"): "1"}


def test_the_evaluation_label_cap_applies_to_safety_results() -> None:
    pipeline = make_pipeline(label_limits={sc.LABEL_EVALUATION: 1})
    span = make_span(GENAI, events=[evaluation("relevance", 9.0), evaluation("hallucination", 1)])
    run(pipeline, make_request([span]))
    exposition = pipeline.registry.expose(openmetrics=False)
    assert samples(exposition, FLAGGED) == {LABELS.format("other"): "1"}
    assert samples(exposition, sc.PROM_PROCESSOR_SERIES_OVERFLOW) == {'{label="evaluation"}': "1"}


def test_the_safety_series_cap_bounds_the_table() -> None:
    from genai_otel.processors.metrics import Registry

    registry = Registry(
        label_limits={}, allowed_labels=sc.METRIC_LABEL_KEYS, top_users=1, top_features=1,
        exemplars=False, price_table="t", max_series=2,
    )  # fmt: skip
    for model in ("a", "b", "c", "d"):
        registry.record_safety("svc", "openai", model, "hallucination", True)
    assert registry.safety_evaluations == {
        ("svc", "openai", "a", "hallucination"): 1,
        ("svc", "openai", "b", "hallucination"): 1,
        ("other", "other", "other", "other"): 2,
    }
    assert registry.safety_flagged == registry.safety_evaluations
    assert registry.caps["safety_series"].overflow == 2


@pytest.mark.parametrize("accelerated", ACCELERATION)
def test_a_request_that_fails_part_way_counts_no_safety_result(accelerated: bool) -> None:
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
    break_service(pipeline)
    span = make_span(GENAI, events=[evaluation("hallucination", 1)])
    before = pipeline.registry.expose(openmetrics=True)
    with pytest.raises(RuntimeError, match="simulated defect"):
        run(pipeline, make_request([span]) + make_request([span], service=BROKEN_SERVICE))
    assert pipeline.registry.expose(openmetrics=True) == before
    assert not pipeline.registry.safety_evaluations


def test_an_invalid_threshold_is_refused_with_its_key() -> None:
    with pytest.raises(ConfigError, match=r"evaluations\.safety_thresholds=.*must be above 0 and at most 10"):
        load_config(environ={"GENAI_OTEL_PROCESSOR_EVALUATIONS__SAFETY_THRESHOLDS": "hallucination=12"})


async def test_record_evaluation_through_otlp_to_metrics_with_env_thresholds() -> None:
    """The instrumentation's record_evaluation, the SDK's OTLP exporter, the processor configured
    from the environment, its /metrics."""
    sink = await Sink().start()
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 5,
            "forward": {"endpoint": f"127.0.0.1:{sink.port}"},
        },
        environ={"GENAI_OTEL_PROCESSOR_EVALUATIONS__SAFETY_THRESHOLDS": "hallucination=0.8,toxicity=0.5"},
    )
    processor = Processor(config)
    await processor.start()

    def send() -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": "judge-app"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{processor.port}", insecure=True))
        )
        for score in (0.9, 0.7, 0.0):  # 0.7 is under this configuration's 0.8
            record_evaluation(
                "hallucination", score, provider="openai", model="gpt-4o-mini", tracer_provider=provider
            )
        record_evaluation("toxicity", 1, provider="openai", model="gpt-4o-mini", tracer_provider=provider)
        provider.shutdown()

    try:
        await asyncio.to_thread(send)
        deadline = asyncio.get_running_loop().time() + 10
        while processor.registry.forwarded < 4:
            assert asyncio.get_running_loop().time() < deadline, "spans not forwarded"
            await asyncio.sleep(0.02)
        _, body = await asyncio.to_thread(scrape, processor.metrics_port, True)
        labels = '{{service="judge-app",provider="openai",model="gpt-4o-mini",evaluation="{}"}}'
        hallucination, toxicity = labels.format("hallucination"), labels.format("toxicity")
        assert samples(body, EVALUATIONS) == {hallucination: "3", toxicity: "1"}
        assert samples(body, FLAGGED) == {hallucination: "1", toxicity: "1"}
        assert samples(body, sc.PROM_LLM_QUALITY_SCORE + "_count") == {}
    finally:
        await processor.stop()
        await sink.stop()
