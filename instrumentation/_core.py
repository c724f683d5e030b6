"""What every provider instrumentor shares: telemetry handles, the per-call record, errors.

A provider module turns SDK arguments into request attributes and SDK results into an
`Outcome`; everything that is the same for every provider (span start and end, metric
recording, error classification, content capture, attribution) lives here, once.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

import wrapt
from genai_otel.instrumentation import _modality
from genai_otel.instrumentation.attribution import current_attributes
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from genai_otel import semconv
from genai_otel.semconv import ContentCapture, ErrorCategory, MetricNames

logger = logging.getLogger(__name__)

try:  # both provider SDKs build their responses with pydantic
    from pydantic import BaseModel as _PydanticModel
except ImportError:  # pragma: no cover - neither SDK installed
    _PydanticModel = None  # type: ignore[assignment,misc]


def _installed_version() -> str:
    """The distribution's version (pyproject.toml is the one place it is written)."""
    try:
        return importlib.metadata.version("genai-otel")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree, not installed
        return "0+unknown"


VERSION = _installed_version()
_CLIENT = SpanKind.CLIENT
_ERROR_STATUS = StatusCode.ERROR
# Marks the wrapper functions of genai-otel, so a target is never wrapped twice.
_MARK = "_genai_otel_wrapper"


# --------------------------------------------------------------------------------------
# Configuration read from the environment
# --------------------------------------------------------------------------------------
def content_capture_from_env() -> ContentCapture:
    raw = os.environ.get(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "").strip().upper()
    if raw in ContentCapture.__members__:
        return ContentCapture(raw)
    if raw == "TRUE":  # the older boolean spelling of the same variable
        return ContentCapture.SPAN_ONLY
    if raw not in {"", "FALSE"}:
        logger.debug("unknown %s value; content capture stays off", semconv.ENV_CAPTURE_MESSAGE_CONTENT)
    return ContentCapture.NO_CONTENT


def content_max_length_from_env() -> int:
    raw = os.environ.get(semconv.ENV_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return semconv.DEFAULT_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH


def metric_names_from_env() -> MetricNames:
    """Which GenAI client metric names to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN` (a
    comma-separated list, as for http and database): `gen_ai_latest_experimental/dup` wins over
    `gen_ai_latest_experimental`; neither (or anything else) keeps today's names."""
    values = {value.strip() for value in os.environ.get(semconv.ENV_SEMCONV_STABILITY_OPT_IN, "").split(",")}
    if semconv.SEMCONV_OPT_IN_GEN_AI_DUP in values:
        return MetricNames.DUP
    if semconv.SEMCONV_OPT_IN_GEN_AI_LATEST in values:
        return MetricNames.LATEST
    return MetricNames.DEFAULT


def histogram(
    meter: metrics.Meter, name: str, unit: str, description: str, buckets: Sequence[float]
) -> metrics.Histogram:
    """A histogram instrument with the conventions' bucket boundaries as its advice."""
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
    )


class Telemetry:
    """The tracer, the GenAI client metric instruments and the content-capture setting.

    The instruments are created once, here; `legacy` and `latest` (read from
    `OTEL_SEMCONV_STABILITY_OPT_IN` now, at instrument time) decide which of them a call records.

    `inside`, when given, is a context variable that is True while a call this instrumentor
    traces is inside the SDK (from span start to the SDK's return): the anthropic instrumentor
    reads it to keep the SDK from starting its own span for the same call."""

    __slots__ = (
        "capture_on_event",
        "capture_on_span",
        "content_max_length",
        "duration",
        "inference_duration",
        "inference_time_to_first_chunk",
        "inside",
        "latest",
        "legacy",
        "operation_tokens",
        "provider",
        "split_usage",
        "time_to_first_chunk",
        "token_usage",
        "tracer",
        "usage_tokens",
    )

    def __init__(
        self,
        scope: str,
        provider: str,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        inside: contextvars.ContextVar[bool] | None = None,
    ) -> None:
        self.provider = provider
        self.inside = inside
        self.tracer = trace.get_tracer(scope, VERSION, tracer_provider)
        meter = metrics.get_meter(scope, VERSION, meter_provider)
        self.token_usage = histogram(
            meter,
            semconv.METRIC_CLIENT_TOKEN_USAGE,
            "{token}",
            "Number of input and output tokens used per GenAI operation.",
            semconv.TOKEN_USAGE_BUCKETS,
        )
        self.duration = histogram(
            meter,
            semconv.METRIC_CLIENT_OPERATION_DURATION,
            "s",
            "Duration of a GenAI operation, as the client sees it.",
            semconv.DURATION_BUCKETS,
        )
        self.time_to_first_chunk = histogram(
            meter,
            semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK,
            "s",
            "Time from the start of a streamed GenAI operation to its first chunk.",
            semconv.TIME_TO_FIRST_CHUNK_BUCKETS,
        )
        names = metric_names_from_env()
        self.legacy = names is not MetricNames.LATEST
        self.latest = names is not MetricNames.DEFAULT
        if self.latest:
            self._create_latest(meter)
            self.split_usage = _modality.splitter_for(scope)
        capture = content_capture_from_env()
        self.capture_on_span = capture in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)
        self.capture_on_event = capture in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)
        self.content_max_length = content_max_length_from_env()

    def _create_latest(self, meter: metrics.Meter) -> None:
        """The conventions' newer inference instruments (see `semconv.MetricNames`)."""
        self.inference_duration = histogram(
            meter,
            semconv.METRIC_CLIENT_INFERENCE_DURATION,
            "s",
            "Duration of a GenAI inference operation, as the client sees it.",
            semconv.DURATION_BUCKETS,
        )
        self.inference_time_to_first_chunk = histogram(
            meter,
            semconv.METRIC_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK,
            "s",
            "Time from the start of a streamed GenAI inference operation to its first chunk.",
            semconv.TIME_TO_FIRST_CHUNK_BUCKETS,
        )
        # One counter per token kind: input, output, cache read, cache write, reasoning.
        self.usage_tokens = tuple(
            meter.create_counter(name, unit="{token}", description=description)
            for name, description in _USAGE_COUNTERS
        )
        self.operation_tokens = tuple(
            histogram(meter, name, "{token}", description, semconv.TOKEN_USAGE_BUCKETS)
            for name, description in _OPERATION_HISTOGRAMS
        )

    @property
    def captures_content(self) -> bool:
        return self.capture_on_span or self.capture_on_event


_M = semconv
_USAGE_COUNTERS = (
    (_M.METRIC_CLIENT_INFERENCE_USAGE_INPUT_TOKENS, "Input tokens used, cache reads and writes included."),
    (_M.METRIC_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS, "Output tokens used, reasoning included."),
    (_M.METRIC_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS, "Input tokens read from the cache."),
    (_M.METRIC_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS, "Input tokens written to the cache."),
    (_M.METRIC_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS, "Output tokens used for reasoning."),
)
_OPERATION_HISTOGRAMS = (
    (_M.METRIC_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS, "Input tokens used per GenAI inference operation."),
    (_M.METRIC_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS, "Output tokens used per GenAI inference operation."),
)
_INFERENCE_OPERATIONS = semconv.INFERENCE_OPERATIONS


# --------------------------------------------------------------------------------------
# The outcome of one call, whatever the provider
# --------------------------------------------------------------------------------------
class Outcome:
    """What a provider reported about one call, already normalised to the conventions.

    `input_tokens` includes cache reads and writes; `output_tokens` includes reasoning.
    `usage`, the provider's own usage object, is set only by providers whose usage
    `_modality` splits by modality, and read only under the opt-in metric names; it is left
    unset here, so the default mode pays nothing for it (read it with getattr).
    """

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "extra",
        "finish_reasons",
        "input_tokens",
        "output_messages",
        "output_tokens",
        "reasoning_tokens",
        "refused",
        "response_id",
        "response_model",
        "tool_call_ids",
        "tool_call_names",
        "usage",
    )

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.tool_call_names: list[str] | None = None
        self.tool_call_ids: list[str] | None = None
        self.refused = False  # a content-filter stop, reported as an error of that category
        self.extra: dict[str, Any] | None = None  # provider-specific span attributes
        self.output_messages: list[dict[str, Any]] | None = None  # content: capture only


# --------------------------------------------------------------------------------------
# One instrumented call
# --------------------------------------------------------------------------------------
class Call:
    """One SDK call: its span, its clock and its metric attributes; ends exactly once."""

    __slots__ = ("_inside", "_token", "first_chunk_at", "metric_base", "open", "span", "start", "telemetry")

    def __init__(
        self,
        telemetry: Telemetry,
        name: str,
        attributes: dict[str, Any],
        metric_base: tuple[Any, ...],
    ) -> None:
        attribution = current_attributes()
        if attribution:
            attributes.update(attribution)
        self.telemetry = telemetry
        self.metric_base = metric_base
        self.span = telemetry.tracer.start_span(name, kind=_CLIENT, attributes=attributes)
        self._token: object | None = otel_context.attach(trace.set_span_in_context(self.span))
        inside = telemetry.inside
        self._inside: contextvars.Token[bool] | None = None if inside is None else inside.set(True)
        self.first_chunk_at: float | None = None
        self.open = True
        self.start = perf_counter()

    def detach(self) -> None:
        """Stops the span being current (and the call being `inside` the SDK); the span stays
        open for a stream to end it later."""
        inside, self._inside = self._inside, None
        if inside is not None:
            try:
                inside.var.reset(inside)
            except Exception:  # a reset from another context; nothing the caller should see
                logger.debug("could not reset the instrumentor's inside-the-SDK flag", exc_info=True)
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:  # a detach from another context; nothing the caller should see
                logger.debug("could not detach the GenAI span's context", exc_info=True)

    def end(self, outcome: Outcome | None, error: BaseException | None = None) -> None:
        """Records the outcome on the span and the metrics, then ends the span. Never raises."""
        if not self.open:
            return
        self.open = False
        span = self.span
        try:
            elapsed = perf_counter() - self.start
            attributes: dict[str, Any] = {}
            error_type: str | None = None
            category: str | None = None
            if error is not None:
                error_type, category = classify_exception(error)
            elif outcome is not None and outcome.refused:
                error_type = category = ErrorCategory.CONTENT_FILTER.value
            response_model = None
            if outcome is not None:
                _outcome_attributes(outcome, attributes)
                response_model = outcome.response_model or None
            if self.first_chunk_at is not None:
                ttfc = self.first_chunk_at - self.start
                attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
            if error_type is not None:
                attributes[semconv.ERROR_TYPE] = error_type
                attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] = category
                span.set_status(Status(_ERROR_STATUS, error_type))
            telemetry = self.telemetry
            if outcome is not None and outcome.output_messages is not None and telemetry.captures_content:
                record_output_content(telemetry, span, outcome.output_messages)
            span.set_attributes(attributes)
            span.end()

            labels = _metric_attributes(self.metric_base, response_model, error_type)
            if telemetry.legacy:
                telemetry.duration.record(elapsed, labels[0])
                if self.first_chunk_at is not None:
                    telemetry.time_to_first_chunk.record(ttfc, labels[0])
                if outcome is not None:
                    if outcome.input_tokens is not None:
                        telemetry.token_usage.record(outcome.input_tokens, labels[1])
                    if outcome.output_tokens is not None:
                        telemetry.token_usage.record(outcome.output_tokens, labels[2])
            if telemetry.latest:
                _record_latest(self, outcome, elapsed, labels)
        except Exception:
            logger.debug("could not record a GenAI call", exc_info=True)
            span.end()


def _record_latest(call: Call, outcome: Outcome | None, elapsed: float, labels: _MetricAttributes) -> None:
    """The conventions' newer names: an inference operation records its duration (and time to
    first chunk) under gen_ai.client.inference.*, and every token counter and per-operation
    histogram, failed calls and unreported kinds included (as 0, as the conventions ask); any
    other operation keeps gen_ai.client.operation.duration (recorded once in `dup`)."""
    telemetry = call.telemetry
    if call.metric_base[0] not in _INFERENCE_OPERATIONS:
        if not telemetry.legacy:
            telemetry.duration.record(elapsed, labels[0])
        return
    telemetry.inference_duration.record(elapsed, labels[0])
    if call.first_chunk_at is not None:
        telemetry.inference_time_to_first_chunk.record(call.first_chunk_at - call.start, labels[0])
    by_modality = labels[3]
    split = telemetry.split_usage(outcome, call.metric_base[1])
    for counter, increments in zip(telemetry.usage_tokens, split, strict=True):
        for modality, count in increments:
            usage = by_modality.get(modality)
            if usage is None:
                usage = _usage_attributes(by_modality, modality)
            counter.add(count, usage)
    input_histogram, output_histogram = telemetry.operation_tokens
    input_tokens = output_tokens = 0
    if outcome is not None:
        input_tokens = outcome.input_tokens or 0
        output_tokens = outcome.output_tokens or 0
    input_histogram.record(input_tokens, labels[0])
    output_histogram.record(output_tokens, labels[0])


def _usage_attributes(by_modality: dict[str, dict[str, Any]], modality: str) -> dict[str, Any]:
    """The usage-counter attributes of one more modality, kept beside the others (a bounded set:
    the modalities `_modality` maps to)."""
    usage = {**by_modality[semconv.TOKEN_MODALITY_UNKNOWN], semconv.GEN_AI_TOKEN_MODALITY: modality}
    if len(by_modality) < _MODALITIES_MAX:
        by_modality[modality] = usage
    return usage


# Metric attribute sets, built once per distinct set and reused: (operation, provider, request
# model, server address, server port, response model, error type) -> the attributes of the
# duration (and time-to-first-chunk, and per-operation token histogram) record, of the
# gen_ai.client.token.usage input and output records, and of the usage counters (gen_ai.token.modality
# -> attributes, without error.type; `unknown` built here, other modalities added as met). The
# attribute dicts are never mutated after they are built, so handing the same dicts to the SDK
# again is safe.
_MetricAttributes = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]
_METRIC_ATTRIBUTES: dict[tuple[Any, ...], _MetricAttributes] = {}
_METRIC_ATTRIBUTES_MAX = 1024  # beyond it (a runaway label set) build per call; never grow
_MODALITIES_MAX = 16


def _metric_attributes(
    base: tuple[Any, ...], response_model: str | None, error_type: str | None
) -> _MetricAttributes:
    key = (*base, response_model, error_type)
    known = _METRIC_ATTRIBUTES.get(key)
    if known is not None:
        return known
    common: dict[str, Any] = {}
    _put_base(common, base)
    if response_model:
        common[semconv.GEN_AI_RESPONSE_MODEL] = response_model
    if error_type is not None:
        common[semconv.ERROR_TYPE] = error_type
    usage = {key: value for key, value in common.items() if key != semconv.ERROR_TYPE}
    usage[semconv.GEN_AI_TOKEN_MODALITY] = semconv.TOKEN_MODALITY_UNKNOWN
    built = (
        common,
        {**common, semconv.GEN_AI_TOKEN_TYPE: "input"},
        {**common, semconv.GEN_AI_TOKEN_TYPE: "output"},
        {semconv.TOKEN_MODALITY_UNKNOWN: usage},
    )
    if len(_METRIC_ATTRIBUTES) < _METRIC_ATTRIBUTES_MAX:
        _METRIC_ATTRIBUTES[key] = built
    return built


def _put_base(attributes: dict[str, Any], base: tuple[Any, ...]) -> None:
    """The attributes a call's span and its metric points share; `base` as `start_call` makes it:
    (operation, provider, model, server address, server port)."""
    operation, provider, model, server_address, server_port = base
    attributes[semconv.GEN_AI_OPERATION_NAME] = operation
    attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if server_address:
        attributes[semconv.SERVER_ADDRESS] = server_address
        if server_port:
            attributes[semconv.SERVER_PORT] = server_port


def _outcome_attributes(outcome: Outcome, attributes: dict[str, Any]) -> None:
    if outcome.response_id:
        attributes[semconv.GEN_AI_RESPONSE_ID] = outcome.response_id
    if outcome.response_model:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = outcome.response_model
    if outcome.finish_reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = outcome.finish_reasons
    if outcome.input_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = outcome.input_tokens
    if outcome.output_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = outcome.output_tokens
    if outcome.cache_read_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = outcome.cache_read_tokens
    if outcome.cache_write_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = outcome.cache_write_tokens
    if outcome.reasoning_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = outcome.reasoning_tokens
    if outcome.tool_call_names:
        attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] = outcome.tool_call_names
        attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] = outcome.tool_call_ids or []
    if outcome.extra:
        attributes.update(outcome.extra)


def start_call(
    telemetry: Telemetry,
    operation: str,
    *,
    model: str | None,
    server_address: str | None,
    server_port: int | None,
    request_attributes: dict[str, Any],
    provider: str | None = None,
) -> Call:
    """Starts the span `{operation} {model}` with the conventional request attributes.

    `provider` overrides the instrumentor's provider for this call (one SDK, several providers:
    google-genai speaks to the Gemini API or to Vertex AI)."""
    base = (operation, provider or telemetry.provider, model, server_address, server_port)
    _put_base(request_attributes, base)
    name = f"{operation} {model}" if model else operation
    return Call(telemetry, name, request_attributes, base)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------
# What an error's words say (its codes, types and message) is read from the one keyword table,
# `semconv.ERROR_KEYWORDS`, that the processor reads `error.type` with; what only an exception
# tells (its HTTP status, its classes, botocore's codes) is read here.
_INVALID_RESPONSE_TYPES = frozenset(
    {
        "JSONDecodeError",
        "APIResponseValidationError",
        "ValidationError",
        "UnknownApiResponseError",
        "ChecksumMismatch",  # botocore: a corrupt event-stream frame
    }
)
# Transport failures without an HTTP status (besides names containing "ConnectionError").
_TRANSPORT_ERRORS = frozenset(
    {
        "NetworkError",
        "RemoteProtocolError",
        "TransportError",
        "ConnectionClosedError",
        "ResponseStreamingError",
    }
)
# AWS error codes (botocore's ClientError, EventStreamError) whose category their code says.
_AWS_CODES: dict[str, ErrorCategory] = {
    "ThrottlingException": ErrorCategory.RATE_LIMIT,
    "ServiceQuotaExceededException": ErrorCategory.RATE_LIMIT,
    "TooManyRequestsException": ErrorCategory.RATE_LIMIT,
    "ModelTimeoutException": ErrorCategory.TIMEOUT,
    "AccessDeniedException": ErrorCategory.AUTH,
    "UnrecognizedClientException": ErrorCategory.AUTH,
    "InvalidSignatureException": ErrorCategory.AUTH,
    "ExpiredTokenException": ErrorCategory.AUTH,
    "MissingAuthenticationTokenException": ErrorCategory.AUTH,
    "InternalServerException": ErrorCategory.PROVIDER_DOWN,
    "ServiceUnavailableException": ErrorCategory.PROVIDER_DOWN,
    "ModelNotReadyException": ErrorCategory.PROVIDER_DOWN,
    "ModelErrorException": ErrorCategory.PROVIDER_DOWN,
    "ModelStreamErrorException": ErrorCategory.PROVIDER_DOWN,
}
_AUTH_TYPES = frozenset({"NoCredentialsError", "PartialCredentialsError"})  # botocore, before any request
# What an HTTP status says besides 5xx (provider_down).
_STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    408: ErrorCategory.TIMEOUT,
    429: ErrorCategory.RATE_LIMIT,
    401: ErrorCategory.AUTH,
    403: ErrorCategory.AUTH,
}
_PRECEDENCE = semconv.ERROR_PRECEDENCE


def _http_status(error: BaseException) -> int | None:
    """The HTTP status of an API error: `status_code` (openai, anthropic) or, for Google's
    errors (an int `code` beside a string `status` such as "RESOURCE_EXHAUSTED"), `code`."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status
    code = getattr(error, "code", None)
    if isinstance(code, int) and isinstance(getattr(error, "status", None), str) and 100 <= code < 600:
        return code
    return None


def _aws_error(error: BaseException) -> tuple[str, int | None, str] | None:
    """(code, HTTP status, lowercased code and message) of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    details = response.get("Error") if isinstance(response, Mapping) else None
    if not isinstance(details, Mapping):
        return None
    assert isinstance(response, Mapping)
    code = str(details.get("Code") or "")
    code = code[:1].upper() + code[1:]  # an event stream's exception event: "throttlingException"
    metadata = response.get("ResponseMetadata")
    status = metadata.get("HTTPStatusCode") if isinstance(metadata, Mapping) else None
    text = f"{code} {details.get('Message') or ''}".lower()
    return code, status if isinstance(status, int) else None, text


def classify_exception(error: BaseException) -> tuple[str, str]:
    """(`error.type`, error category) of an exception raised by a provider SDK call."""
    error_type = type(error).__qualname__
    mro_names = [cls.__name__ for cls in type(error).__mro__]
    status = _http_status(error)
    text = _error_text(error) if status is not None or hasattr(error, "body") else ""
    aws = _aws_error(error) if status is None else None
    if aws is not None:
        code, status, text = aws
        known = _AWS_CODES.get(code)
        if known is not None:
            return error_type, known.value
    if _AUTH_TYPES.intersection(mro_names):
        return error_type, ErrorCategory.AUTH.value
    said = semconv.error_category_of_text(text) if text else None
    told: ErrorCategory | None = None  # what the exception's class or HTTP status says
    if any("Timeout" in name for name in mro_names):
        told = ErrorCategory.TIMEOUT
    elif status is not None:
        told = ErrorCategory.PROVIDER_DOWN if status >= 500 else _STATUS_CATEGORIES.get(status)
    if said is not None and (told is None or _PRECEDENCE[said] < _PRECEDENCE[told]):
        category = said  # words and status both tell: the keyword table's order decides
    elif told is not None:
        category = told
    elif _INVALID_RESPONSE_TYPES.intersection(mro_names):
        category = ErrorCategory.INVALID_RESPONSE
    elif status is None and any("ConnectionError" in name or name in _TRANSPORT_ERRORS for name in mro_names):
        category = ErrorCategory.PROVIDER_DOWN
    else:
        category = ErrorCategory.OTHER
    return error_type, category.value


def _error_text(error: BaseException) -> str:
    """The machine-readable parts of an API error (codes, types, message), lowercased."""
    parts: list[str] = []
    for name in ("code", "type"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            parts.append(value)
    body = getattr(error, "body", None)
    for level in (body, body.get("error") if isinstance(body, Mapping) else None):
        if isinstance(level, Mapping):
            parts.extend(str(level[key]) for key in ("code", "type", "message") if level.get(key))
    google_status = getattr(error, "status", None)
    if isinstance(google_status, str):  # Google's errors: status, message, ErrorInfo reasons
        parts.append(google_status)
        parts.extend(_google_reasons(getattr(error, "details", None)))
    if not parts or isinstance(google_status, str):
        parts.append(str(getattr(error, "message", "")))
    return " ".join(parts).lower()


def _google_reasons(details: Any) -> list[str]:
    """The `reason`s of the ErrorInfo entries of a Google error body (e.g. API_KEY_INVALID)."""
    error = details.get("error", details) if isinstance(details, Mapping) else None
    entries = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(entries, list):
        return []
    return [str(entry["reason"]) for entry in entries if isinstance(entry, Mapping) and entry.get("reason")]


# --------------------------------------------------------------------------------------
# Content capture (opt-in; never logged)
# --------------------------------------------------------------------------------------
def _json_capped(value: Any, max_length: int) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= max_length else text[:max_length]


def record_input_content(
    telemetry: Telemetry,
    span: trace.Span,
    messages: list[dict[str, Any]],
    system_instructions: list[dict[str, Any]] | None,
) -> None:
    attributes = {semconv.GEN_AI_INPUT_MESSAGES: _json_capped(messages, telemetry.content_max_length)}
    if system_instructions:
        attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = _json_capped(
            system_instructions, telemetry.content_max_length
        )
    _emit_content(telemetry, span, attributes)


def record_output_content(telemetry: Telemetry, span: trace.Span, messages: list[dict[str, Any]]) -> None:
    _emit_content(
        telemetry,
        span,
        {semconv.GEN_AI_OUTPUT_MESSAGES: _json_capped(messages, telemetry.content_max_length)},
    )


def _emit_content(telemetry: Telemetry, span: trace.Span, attributes: dict[str, str]) -> None:
    if telemetry.capture_on_span:
        span.set_attributes(attributes)
    if telemetry.capture_on_event:
        span.add_event(semconv.EVENT_INFERENCE_DETAILS, attributes)


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "content": text}


# --------------------------------------------------------------------------------------
# Small readers and the wrapping helpers
# --------------------------------------------------------------------------------------
def number(value: Any) -> int | float | None:
    """`value` if it is a real number (the SDKs' omit/NotGiven sentinels are not)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


# Base URL object -> (that URL, server.address, server.port). Keyed by id(): holding the URL
# keeps its id from being reused, and a client given a new base URL gets a new URL object.
_SERVERS: dict[int, tuple[Any, str | None, int | None]] = {}
_SERVERS_MAX = 256


def base_url_of(client: Any) -> Any:
    """An SDK client's base URL object (an httpx URL), or None."""
    if client is None:
        return None
    # The clients keep the URL in `_base_url`; their public `base_url` property returns it
    # but costs an import statement per read (openai 3.x), so it is only the fallback.
    url = getattr(client, "__dict__", _NO_DICT).get("_base_url")
    if url is None:
        url = getattr(client, "base_url", None)
    return url


def address_of(url: Any) -> tuple[str | None, int | None]:
    """(server.address, server.port) of a base URL object; the port is the scheme's default
    when the URL names none."""
    return url.host or None, url.port or (443 if url.scheme == "https" else 80)


def server_of(client: Any) -> tuple[str | None, int | None]:
    """(server.address, server.port) of an SDK client's base URL."""
    url = base_url_of(client)
    if url is None:
        return None, None
    known = _SERVERS.get(id(url))
    if known is not None and known[0] is url:
        return known[1], known[2]
    address, port = address_of(url)
    if len(_SERVERS) >= _SERVERS_MAX:
        _SERVERS.clear()
    _SERVERS[id(url)] = (url, address, port)
    return address, port


_NO_DICT: dict[str, Any] = {}


def http_response_of(result: Any) -> Any:
    """`result.http_response` (the SDKs' raw-response wrappers keep it there), else None.

    Same answer as ``getattr(result, "http_response", None)``, without its cost on the common
    result, a pydantic model lacking the attribute: there ``getattr`` goes through pydantic's
    ``__getattr__``, which builds an exception (the dearest step of a whole instrumented call).
    """
    instance_dict = getattr(result, "__dict__", None)
    if instance_dict is not None and "http_response" in instance_dict:
        return instance_dict["http_response"]
    kind = type(result)
    only_extra = _ONLY_EXTRA.get(kind)
    if only_extra is None:
        only_extra = _only_extra_could_hold_http_response(kind)
        if len(_ONLY_EXTRA) < _TYPES_MAX:
            _ONLY_EXTRA[kind] = only_extra
    if only_extra:
        extra = result.__pydantic_extra__
        return extra.get("http_response") if extra else None
    return getattr(result, "http_response", None)


_ONLY_EXTRA: dict[type, bool] = {}
_TYPES_MAX = 1024


def _only_extra_could_hold_http_response(kind: type) -> bool:
    """A pydantic model type without `http_response` as field or class attribute: its
    instances' `__getattr__` finds the name only among extra fields (it is not private:
    no leading underscore)."""
    if _PydanticModel is None or not issubclass(kind, _PydanticModel):
        return False
    return not any("http_response" in vars(klass) for klass in kind.__mro__) and (
        "http_response" not in kind.model_fields
    )


def wrap(module: str, name: str, wrapper: Callable[..., Any]) -> bool:
    """Wraps `module.name` ("Class.method") unless genai-otel already wraps it."""
    try:
        owner, attribute = _resolve(module, name)
    except (ImportError, AttributeError):
        logger.debug("nothing to wrap at %s.%s", module, name)
        return False
    current = owner.__dict__.get(attribute)
    if isinstance(current, wrapt.FunctionWrapper) and getattr(current._self_wrapper, _MARK, False):
        return False
    setattr(wrapper, _MARK, True)
    wrapt.wrap_function_wrapper(owner, attribute, wrapper)
    return True


def unwrap(module: str, name: str) -> None:
    """Restores the exact object genai-otel wrapped at `module.name`."""
    try:
        owner, attribute = _resolve(module, name)
    except (ImportError, AttributeError):
        return
    current = owner.__dict__.get(attribute)
    if isinstance(current, wrapt.FunctionWrapper) and getattr(current._self_wrapper, _MARK, False):
        setattr(owner, attribute, current.__wrapped__)


def _resolve(module: str, name: str) -> tuple[Any, str]:
    owner: Any = importlib.import_module(module)
    *path, attribute = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attribute


def wrap_all(targets: Iterable[tuple[str, str, Callable[..., Any]]]) -> None:
    for module, name, wrapper in targets:
        wrap(module, name, wrapper)


def unwrap_all(targets: Iterable[tuple[str, str]]) -> None:
    for module, name in targets:
        unwrap(module, name)


# --------------------------------------------------------------------------------------
# The wrapper bodies, shared by every sync and async target
# --------------------------------------------------------------------------------------
Starter = Callable[[Any, dict[str, Any]], Call]
Finisher = Callable[[Call, Any, dict[str, Any]], Any]


def _start_or_none(start: Starter, instance: Any, kwargs: dict[str, Any]) -> Call | None:
    try:
        return start(instance, kwargs)
    except Exception:
        logger.debug("could not start a GenAI span", exc_info=True)
        return None


def _finish_or_result(finish: Finisher, call: Call, result: Any, kwargs: dict[str, Any]) -> Any:
    call.detach()
    try:
        return finish(call, result, kwargs)
    except Exception:
        logger.debug("could not record a GenAI response", exc_info=True)
        call.end(None)
        return result


def _failed(call: Call, error: BaseException) -> None:
    call.detach()
    call.end(None, error)


def sync_wrapper(start: Starter, finish: Finisher) -> Callable[..., Any]:
    """A wrapt wrapper: span around the call, result handed to `finish` (which may proxy it)."""

    def traced(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start_or_none(start, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(call, error)
            raise
        return _finish_or_result(finish, call, result, kwargs)

    return traced


def async_wrapper(start: Starter, finish: Finisher) -> Callable[..., Any]:
    """The coroutine twin of `sync_wrapper`: the same helpers around an ``await``."""

    async def traced(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start_or_none(start, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(call, error)
            raise
        return _finish_or_result(finish, call, result, kwargs)

    return traced


def get(obj: Any, key: str) -> Any:
    """`obj[key]` for the dicts applications pass, `obj.key` for the SDKs' models.

    Whether `obj` is a mapping is remembered per type: ``isinstance(model, Mapping)`` on a
    pydantic model runs `ABCMeta.__instancecheck__`, a Python frame, on every read."""
    kind = type(obj)
    mapping = _MAPPINGS.get(kind)
    if mapping is None:
        mapping = _is_mapping(obj, kind)
    if mapping:
        return obj.get(key)
    return getattr(obj, key, None)


class _Attributes:
    """An object read like a mapping: `get(name)` is its attribute, or None."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, key: str) -> Any:
        return getattr(self._obj, key, None)


_NO_FIELDS: Mapping[str, Any] = {}


def fields_of(obj: Any) -> Mapping[str, Any] | _Attributes:
    """What `get` reads from `obj`, as one object with a `get(name)`: the mapping itself (the
    dicts applications pass), a pydantic model's `__dict__` (where pydantic keeps the field
    values: one dict lookup per field instead of an attribute read through the model's
    `__getattr__` hook), else the object's attributes. None has no fields."""
    if obj is None:
        return _NO_FIELDS
    kind = type(obj)
    if kind is dict:
        return obj
    model = _MODELS.get(kind)
    if model is None:
        model = _PydanticModel is not None and issubclass(kind, _PydanticModel)
        if len(_MODELS) < _TYPES_MAX:
            _MODELS[kind] = model
    if model and not obj.__pydantic_extra__:
        return obj.__dict__
    mapping = _MAPPINGS.get(kind)
    if mapping is None:
        mapping = _is_mapping(obj, kind)
    return obj if mapping else _Attributes(obj)


# Type -> whether it is a pydantic model type.
_MODELS: dict[type, bool] = {}


# Type -> whether its instances are mappings (`dict` and None known from the start).
_MAPPINGS: dict[type, bool] = {dict: True, type(None): False}


def _is_mapping(obj: Any, kind: type) -> bool:
    mapping = isinstance(obj, Mapping)
    # A proxy's `__class__` is the wrapped object's: its answer holds for that object only.
    if obj.__class__ is kind and len(_MAPPINGS) < _TYPES_MAX:
        _MAPPINGS[kind] = mapping
    return mapping
