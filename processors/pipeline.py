"""One accepted export request: recognise, normalise, price, enrich, aggregate.

`Pipeline.split` walks the request (cheap; gives the span count the queue needs before it
accepts anything); `Pipeline.process` does the rest and returns the bytes to forward. Metrics
are recorded only in `process`, which the service calls only for accepted requests, so a
request refused for backpressure and retried by the collector is counted once.

A request is accounted all or nothing: while it is walked, what each span records is only
written down (a journal of registry calls on the Python path, records in the C lane); it is
applied, in span order, once every span has been handled and the request re-assembled. An
exception before that leaves every metric as it was.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from genai_otel import semconv as sc

from . import lane_contract
from .call_log import CallLog
from .duplicates import (
    AROUND_NATIVE,
    DEFAULT_MAX_SPANS,
    DEFAULT_WINDOW_SECONDS,
    NATIVE,
    call_ident,
    recent_calls,
)
from .metrics import OTHER, STATUS_ERROR, STATUS_OK, HistogramType, Registry, SeriesStats
from .normalise import (
    MARKER_KEYS,
    SERVICE_TIER_KEYS,
    TOKEN_CORRECTIONS,
    TOKEN_TYPES,
    UNKNOWN,
    USER_KEYS,
    GenAICall,
    InvalidReason,
    InvalidSpan,
    Normaliser,
    always_corrected,
    finite_number,
    trusts_reported_cost,
    usage_incomplete,
)
from .pricing import (
    QUANTA_PER_USD,
    Cost,
    PriceBook,
    Rates,
    UnpricedReason,
    compiled_cost_parts,
    compute_cost,
)
from .safety import flagged
from .scan import RequestScanner, ResourceEntry, SpanEntry, _accelerator
from .wire import (
    STATUS_CODE_ERROR,
    DoubleAttributeEncoder,
    IntAttributeEncoder,
    KeyScanner,
    SpanFacts,
    WireError,
    encode_bool_attribute,
    encode_string_attribute,
    encode_varint,
    span_facts,
)

if TYPE_CHECKING:
    from . import _wirescan

logger = logging.getLogger(__name__)

EVALUATION_EVENT: Final = sc.EVENT_EVALUATION_RESULT.encode()
UNKNOWN_SERVICE: Final = "unknown_service"
Scanned = tuple[list[ResourceEntry], int]  # from RequestScanner.split
Journal = list[tuple[Callable[..., object], tuple[object, ...]]]  # registry calls, applied in order
# The lane's entry kinds (see native/_wirescan.h) and the keys that always send a span to Python.
SERVICE_CACHE_SIZE: Final = 4096  # distinct Resources whose service name is remembered ...
SERVICE_CACHE_MAX_BYTES: Final = 4096  # ... each at most this long (memory stays under 16 MiB)
LANE_PRICED, LANE_UNPRICED, LANE_OTHER, LANE_NO_COST = (value for _, value in lane_contract.KINDS)
LANE_SLOW_KEYS: Final = (
    sc.GEN_AI_USAGE_COST_AMOUNT,
    sc.GEN_AI_USAGE_COST_SOURCE,
    sc.GENAI_OTEL_COST_PRICE_TABLE,
    sc.GENAI_OTEL_COST_UNPRICED_REASON,
    sc.OPENLIT_USAGE_COST,
)

# Spans that are not model calls but are counted: tools run (llm_tool_calls_total, or
# llm_tool_executions_total for a server's side), agent runs (llm_agent_run_duration_seconds) and
# guardrail verdicts (llm_guardrail_evaluations_total). Never learned by the lane: every such span
# takes the Python path.
AGENTIC_OPERATIONS: Final = frozenset(
    {sc.Operation.EXECUTE_TOOL.value, sc.Operation.INVOKE_AGENT.value, sc.Operation.APPLY_GUARDRAIL.value}
)

_COST_AMOUNT = DoubleAttributeEncoder(sc.GEN_AI_USAGE_COST_AMOUNT)
_COST_INPUT = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_INPUT)
_COST_OUTPUT = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_OUTPUT)
_COST_CACHE_READ = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_CACHE_READ)
_COST_CACHE_WRITE = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_CACHE_WRITE)
_COST_SAVINGS = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_CACHE_SAVINGS)
# a token type's current name -> (its index, its encoder)
_TOKEN_ENCODERS: Final = {
    token.current: (index, IntAttributeEncoder(token.current)) for index, token in enumerate(TOKEN_TYPES)
}
_CURRENCY = encode_string_attribute(sc.GEN_AI_USAGE_COST_CURRENCY, sc.COST_CURRENCY_USD)
_SOURCE_LOCAL = encode_string_attribute(sc.GEN_AI_USAGE_COST_SOURCE, sc.CostSource.LOCAL)
_SOURCE_PROVIDER = encode_string_attribute(sc.GEN_AI_USAGE_COST_SOURCE, sc.CostSource.PROVIDER)
_REPORTED_AMOUNT = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_REPORTED_AMOUNT)
_OWN_AMOUNT = DoubleAttributeEncoder(sc.GENAI_OTEL_COST_AMOUNT)
_USAGE_INCOMPLETE = encode_bool_attribute(sc.GENAI_OTEL_USAGE_INCOMPLETE, True)
# genai_otel.cost.duplicate_of's bytes before its value, 16 hex digits (a span id)
_MAX_NS: Final = 2**63 - 1
_DUPLICATE_OF_PREFIX = encode_string_attribute(sc.GENAI_OTEL_COST_DUPLICATE_OF, "0" * 16)[:-16]


def _cost_packer(table: str) -> tuple[struct.Struct, bytes, bytes, bytes, bytes, bytes, bytes]:
    """One struct that writes every cost attribute of a priced span: fixed framing, six doubles.

    Same bytes as encoding each attribute on its own, in the same order: amount, currency,
    source, price table, then the breakdown and the cache savings.
    """
    fixed = (
        _COST_AMOUNT.prefix,
        _CURRENCY
        + _SOURCE_LOCAL
        + encode_string_attribute(sc.GENAI_OTEL_COST_PRICE_TABLE, table)
        + _COST_INPUT.prefix,
        _COST_OUTPUT.prefix,
        _COST_CACHE_READ.prefix,
        _COST_CACHE_WRITE.prefix,
        _COST_SAVINGS.prefix,
    )
    layout = "<" + "".join(f"{len(part)}sd" for part in fixed)
    return (struct.Struct(layout), *fixed)


def _native(scope_name: str, provider: str) -> int:
    """How a span may pair with another span of its call (duplicates.py): NATIVE for the anthropic
    SDK's own span, AROUND_NATIVE for a call whose SDK may emit one too, else 0."""
    if scope_name == sc.ANTHROPIC_SDK_SCOPE:
        return NATIVE
    return AROUND_NATIVE if provider == sc.Provider.ANTHROPIC else 0


# the outcome items of the priced and unpriced kinds, for the kinds that do not use them
_NOT_PRICED: Final = {
    "log_static": None,
    "base": None,
    "tiers": None,
    "multiplier": None,
    "prefixes": None,
    "unpriced_key": None,
    "unpriced_attr": None,
}


def _int_attribute(key: str, value: int) -> bytes:
    from .wire import encode_int_attribute

    return encode_int_attribute(key, value)


class Pipeline:
    def __init__(
        self,
        registry: Registry,
        prices: PriceBook,
        max_tokens: int = 100_000_000,
        max_value_length: int = 256,
        accelerated: bool | None = None,
        *,
        trust_reported_cost: str = "provider",
        duplicates_capacity: int = DEFAULT_MAX_SPANS,
        duplicates_window_seconds: float = DEFAULT_WINDOW_SECONDS,
        safety_thresholds: Mapping[str, float] | None = None,
        call_log: CallLog | None = None,
    ) -> None:
        from .config import EvaluationsConfig
        from .normalise import SCANNED_KEYS

        self.call_log = call_log  # one JSON line per counted call (call_log.py), or None
        # config.evaluations.safety_thresholds: evaluation name -> threshold (processors/safety.py)
        self.safety_thresholds = dict(
            EvaluationsConfig().safety_thresholds if safety_thresholds is None else safety_thresholds
        )

        self.registry = registry
        self.prices = prices
        self.trust_reported_cost = trust_reported_cost  # config.pricing.trust_reported_cost
        self.normaliser = Normaliser(max_tokens=max_tokens, max_value_length=max_value_length)
        self.scanner = RequestScanner(SCANNED_KEYS, EVALUATION_EVENT, accelerated)
        self.span_scanner = self.scanner.span_scanner
        # The rules run in Python only; the C extension, where it is in use, walks the wire,
        # re-assembles, and runs the lane (the outcomes Python decided, applied to span kinds
        # seen before). Its token sums are 64-bit: it is used while the token cap keeps them exact.
        native = self.scanner.accelerated and 0 <= max_tokens < 2**53
        registry.accelerated = self.scanner.accelerated
        if native:
            # duck-typed: metrics.Histogram's constructor, attributes and observe, its state in C
            registry.use_histogram_type(cast("HistogramType", _accelerator.Histogram))
        self._record_call = registry.record_call
        self._normalise = self.normaliser.normalise
        self._assemble = _accelerator.assemble if self.scanner.accelerated else _assemble
        self.resource_scanner = KeyScanner([sc.SERVICE_NAME], tag=0x0A)
        self._services: dict[bytes, str] = {}  # Resource bytes -> service name (_service_of)
        self._table_attr: dict[str, bytes] = {}
        self._unpriced_attr: dict[str, bytes] = {}
        self._provider_attr: dict[str, bytes] = {}
        # raw (service, provider, model, operation) -> capped labels and their SeriesStats
        self._series: dict[tuple[str, str, str, str], tuple[tuple[str, str, str, str], SeriesStats]] = {}
        self._cost_packers: dict[str, tuple[struct.Struct, bytes, bytes, bytes, bytes, bytes, bytes]] = {}
        self._prefix_cache: dict[str, tuple[bytes, ...]] = {}
        # what the request being processed records, applied when all of it succeeded (process)
        self._journal: Journal = []
        self._defer = self._journal.append
        # the spans seen lately, to count each call once (duplicates.py; None: off)
        self._recent: Any = (
            recent_calls(duplicates_capacity, duplicates_window_seconds, self.scanner.accelerated)
            if duplicates_capacity > 0
            else None
        )

        # the whole request in C for spans whose kind was seen before (None: off)
        self._lane: _wirescan.Lane | None = self._make_lane() if native else None
        if self._lane is not None:  # the lane keeps its sums until the registry is read
            registry.settle_with(self._lane.flush)

    def _make_lane(self) -> _wirescan.Lane:
        registry = self.registry
        normaliser = self.normaliser
        return _accelerator.Lane(
            lane_contract.pack(
                lane_contract.CONTEXT,
                table=self.scanner.table,
                # what the Python path's decisions read besides the numbers, user and feature
                categorical=(*MARKER_KEYS, *SERVICE_TIER_KEYS, sc.ERROR_TYPE, sc.GENAI_OTEL_ERROR_CATEGORY),
                markers=MARKER_KEYS,
                slow=LANE_SLOW_KEYS,
                token_keys=tuple(token.keys for token in TOKEN_TYPES),
                token_current=tuple(token.current for token in TOKEN_TYPES),
                token_zero_written=tuple(token.zero_written for token in TOKEN_TYPES),
                token_headers=tuple(IntAttributeEncoder(token.current).headers for token in TOKEN_TYPES),
                corrections=tuple((c.target, c.parts) for c in TOKEN_CORRECTIONS),
                cost_parts=compiled_cost_parts(),
                users=USER_KEYS,
                feature=sc.GENAI_OTEL_FEATURE,
                ttfc=sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                max_tokens=normaliser.max_tokens,
                max_length=normaliser.max_value_length,
                exemplars=registry.exemplars,
                histogram=registry.histogram,
                bounds=(
                    sc.DURATION_BUCKETS,
                    sc.TIME_TO_FIRST_CHUNK_BUCKETS,
                    sc.OUTPUT_TOKENS_PER_SECOND_BUCKETS,
                    sc.COST_PER_REQUEST_BUCKETS,
                ),
                add_sums=registry.add_sums,
                cost_key=registry.cost_key,
                user_limiter=registry.limiters[sc.LABEL_USER],
                feature_limiter=registry.limiters[sc.LABEL_FEATURE],
                user_cost=registry.user_cost,
                feature_cost=registry.feature_cost,
                unpriced=registry.unpriced,
                recent=self._recent,
                record_duplicate=registry.record_duplicate,
                record_again=registry.record_again,
                duplicate_prefix=_DUPLICATE_OF_PREFIX,
                response_id=sc.GEN_AI_RESPONSE_ID,
                call_log=self.call_log.line if self.call_log is not None else None,
            )
        )

    @property
    def lane(self) -> _wirescan.Lane | None:
        """The C lane (None when the extension is not in use); `lane.stats` counts its spans."""
        return self._lane

    def split(self, data: bytes) -> tuple[Scanned, int]:
        """(what `process` needs, span count); raises WireError for a malformed request."""
        if self._lane is not None:  # only validated and counted here: the lane walks it in process
            table = self.scanner.table
            assert table is not None  # a lane is made only with the extension's table
            _, count = _accelerator.split(data, table, True)
            return ([], count), count
        scanned = self.scanner.split(data)
        return scanned, scanned[1]

    # -- per request ----------------------------------------------------------------------
    def process(self, data: bytes, scanned: Scanned) -> bytes:
        """The request to forward, enriched. Its metrics are recorded only when all of it has been
        handled: an exception leaves the registry as it was (accounted all or nothing)."""
        registry = self.registry
        journal = self._journal
        marks = registry.overflow_marks()
        recent = self._recent
        if recent is not None:
            recent.begin(time.monotonic())
        try:
            if self._lane is not None:
                forward, genai, other = self._lane.process(data, self._service_of, self._lane_span, journal)
            else:
                forward, genai, other = self._walk(data, scanned)
                for record, args in journal:
                    record(*args)
        except BaseException:
            registry.restore_overflow(marks)  # what deciding the labels counted (see Registry)
            if recent is not None:
                recent.settle(False)  # its spans were never counted: forget them
            raise
        finally:
            journal.clear()
        if recent is not None:
            recent.settle(True)
        received = registry.received
        received["genai"] += genai
        received["other"] += other
        return forward

    def _walk(self, data: bytes, scanned: Scanned) -> tuple[bytes, int, int]:
        """The Python path over a whole request: (request to forward, GenAI spans, other spans)."""
        genai = other = examined = 0
        additions: dict[int, bytes] = {}
        resources, span_count = scanned
        one_span = self._one_span
        for _, _, _, resource, scopes in resources:
            service = UNKNOWN_SERVICE if resource is None else self._service_of(data, *resource)
            for _, _, _, scope_name, spans in scopes:
                for entry in spans:
                    examined += 1
                    added, is_genai, _ = one_span(data, entry, scope_name, service)
                    if is_genai:
                        genai += 1
                    else:
                        other += 1
                    if added:
                        additions[entry[0]] = added
        other += span_count - examined
        if not additions:
            return data, genai, other
        return self._assemble(data, resources, additions), genai, other

    def _one_span(
        self, data: bytes, entry: SpanEntry, scope_name: str, service: str
    ) -> tuple[bytes, bool, dict[str, object] | None]:
        """(bytes to append, whether it is a GenAI span, its attributes when it was handled)."""
        _, start, end, found, facts, mentions_evaluation = entry
        journal = self._journal
        mark = len(journal)
        try:
            if found is None:  # the C walk left this span to the Python scanner
                attrs = self.span_scanner.scan(data, start, end)
                has_evaluation = data.find(EVALUATION_EVENT, start, end) >= 0
                if not attrs and not has_evaluation:
                    return b"", False, None
            else:
                attrs, has_evaluation = found, mentions_evaluation
            added, is_genai = self._span(data, start, end, attrs, facts, scope_name, service, has_evaluation)
        except Exception:  # never let one span take the request down: it records only this
            del journal[mark:]
            logger.debug("span processing failed", exc_info=True)
            self._invalid(InvalidReason.MALFORMED_SPAN)
            return b"", True, None
        return added, is_genai, attrs

    def _invalid(self, reason: str) -> None:
        registry = self.registry
        self._defer((registry.count, (registry.invalid, reason)))

    def _service_of(self, data: bytes, start: int, stop: int) -> str:
        """The service name of the Resource in data[start:stop] (start -1: no Resource)."""
        if start < 0:
            return UNKNOWN_SERVICE
        # A sender repeats the same Resource bytes in every export: decoded once, then looked up.
        raw = data[start:stop]
        service = self._services.get(raw)
        if service is not None:
            return service
        value = self.resource_scanner.scan(data, start, stop).get(sc.SERVICE_NAME)
        if value is None:  # not in field-number order (the collector's encoding)
            value = self.resource_scanner.scan_fields(data, start, stop).get(sc.SERVICE_NAME)
        service = value if isinstance(value, str) and value else UNKNOWN_SERVICE
        if len(raw) <= SERVICE_CACHE_MAX_BYTES:
            if len(self._services) >= SERVICE_CACHE_SIZE:  # bounded: a churn of resources starts over
                self._services.clear()
            self._services[raw] = service
        return service

    def _lane_span(
        self, data: bytes, entry: SpanEntry, scope_name: str, service: str, signature: bytes | None
    ) -> tuple[bytes, bool]:
        """One span the lane left to Python: as `process` handles it; then, given the lane's
        signature for it, what the lane needs to handle the next such span itself."""
        added, is_genai, attrs = self._one_span(data, entry, scope_name, service)
        facts = entry[4]
        if signature is not None and attrs is not None and facts is not None:
            try:
                self._teach(signature, attrs, facts, scope_name, service)
            except Exception:  # the lane only misses a shortcut
                logger.debug("lane entry not learned", exc_info=True)
        return added, is_genai

    def _teach(
        self,
        signature: bytes,
        attrs: dict[str, object],
        facts: SpanFacts,
        scope_name: str,
        service: str,
    ) -> None:
        """Give the lane the outcome of spans with this signature (see _wirescan's lane)."""
        lane = self._lane
        assert lane is not None  # called by the lane only
        call = self._normalise(attrs, scope_name, facts[3] == STATUS_CODE_ERROR)
        if call is None:
            # an agent or tool span is counted by the Python path (_agentic), so never skipped: its
            # operation is a categorical key, so no learned signature covers it either
            if attrs.get(sc.GEN_AI_OPERATION_NAME) not in AGENTIC_OPERATIONS:
                lane.learn(signature, LANE_OTHER, None)
            return
        if call.reported_cost is not None or call.already_enriched or not (call.has_usage or call.error):
            return
        series = self._series.get((service, call.provider, call.model, call.operation))
        if series is None:  # a label over its cap: the Python path keeps counting the overflow
            return
        labels, stats = series
        request_key: tuple[str, str] = (STATUS_OK, "")
        error_attr = b""
        if call.error:
            limiter = self.registry.limiters[sc.LABEL_ERROR_TYPE]
            if not limiter.allowed:
                request_key = (STATUS_ERROR, "")
            elif call.error_category in limiter.admitted or (
                # admitted when its call is recorded, at the end of the request: admitted now
                len(limiter.admitted) < limiter.limit and limiter(call.error_category) == call.error_category
            ):
                request_key = (STATUS_ERROR, call.error_category)
            else:  # over its cap: the Python path keeps counting the overflow
                return
            if sc.GENAI_OTEL_ERROR_CATEGORY in call.missing_current_names:
                error_attr = self._current_name(call, sc.GENAI_OTEL_ERROR_CATEGORY)
        outcome: dict[str, object] = {
            "stats": stats,
            "service_label": labels[0],
            "lo": -(2**63),
            "hi": 2**63 - 1,
            "provider_attr": (
                self._current_name(call, sc.GEN_AI_PROVIDER_NAME)
                if sc.GEN_AI_PROVIDER_NAME in call.missing_current_names
                else b""
            ),
            "always": always_corrected(call.provider, scope_name),
            "request_key": request_key,
            "status": request_key[0],
            "error_attr": error_attr,
            "ident": call_ident(call.provider, call.request_model or call.response_model),
            "native": _native(scope_name, call.provider),
            **_NOT_PRICED,
        }
        if not call.has_usage:  # a failed call without usage: recorded, never priced
            if self.call_log is not None:
                outcome["log_static"] = self._log_static(call, service, "", "")
            lane.learn(signature, LANE_NO_COST, lane_contract.pack(lane_contract.OUTCOME, **outcome))
            return
        start_ns = facts[1]
        rates = self.prices.rates(
            call.provider, call.request_model, call.response_model, start_ns, call.service_tier
        )
        outcome["lo"], outcome["hi"] = self.prices.window(
            call.provider, call.request_model, call.response_model, start_ns
        )
        if type(rates) is str:
            kind = LANE_UNPRICED
            outcome["unpriced_key"] = (labels[1], labels[2], rates)
            outcome["unpriced_attr"] = self._unpriced_bytes(rates)
            if self.call_log is not None:
                outcome["log_static"] = self._log_static(call, service, "", rates)
        else:
            assert isinstance(rates, Rates)
            kind = LANE_PRICED
            outcome |= {
                "base": rates.base,
                "tiers": rates.tiers,
                "multiplier": rates.multiplier,
                "prefixes": self._prefixes(rates.table),
            }
            if self.call_log is not None:
                outcome["log_static"] = self._log_static(call, service, sc.CostSource.LOCAL, "")
        lane.learn(signature, kind, lane_contract.pack(lane_contract.OUTCOME, **outcome))

    # -- per span -------------------------------------------------------------------------
    def _span(  # noqa: PLR0917 - the hot path: positional calls are cheaper
        self,
        data: bytes,
        start: int,
        end: int,
        attrs: dict[str, object],
        facts: SpanFacts | None,
        scope_name: str,
        service: str,
        has_evaluation: bool,
    ) -> tuple[bytes, bool]:
        if facts is None:
            try:
                facts = span_facts(data, start, end)
            except (WireError, IndexError):
                # Recognition first: a span with no GenAI marker is not a model call, however
                # malformed (the C lane decides it the same way without reading the span's facts).
                if not any(key in attrs for key in MARKER_KEYS):
                    return b"", False
                self._invalid(InvalidReason.MALFORMED_SPAN)
                return b"", True
        trace_id, start_ns, end_ns, status_code = facts[:4]
        call: GenAICall | None = None
        if attrs:
            try:
                call = self._normalise(attrs, scope_name, status_code == STATUS_CODE_ERROR)
            except InvalidSpan as exc:
                self._invalid(exc.reason)
                return b"", True
        added = b""
        journal = self._journal
        mark = len(journal)
        again = False  # a copy of a span seen before (a sender's retry): it records nothing again
        if call is None:
            if attrs.get(sc.GEN_AI_OPERATION_NAME) in AGENTIC_OPERATIONS:
                again = self._again(facts)
                error = status_code == STATUS_CODE_ERROR
                self._agentic(data, start, end, attrs, service, trace_id, start_ns, end_ns, error)
            elif has_evaluation:
                again = self._again(facts)
        else:
            kept = self._duplicate_of(call, facts, attrs, scope_name, service)
            if kept is not None and kept[0]:  # the second span of a call already counted (or a copy of it)
                again = kept[1] is None
                if not again:
                    self._defer((self.registry.record_duplicate, (kept[1], scope_name)))
                added = _DUPLICATE_OF_PREFIX + kept[0].hex().encode()
            else:
                again = kept is not None
                added = self._call(call, service, trace_id, start_ns, end_ns, facts[4])
                if call.reported_cost is not None:  # OpenLIT's spans, among others
                    added += self._usage_note(call, attrs, scope_name, service)
        if has_evaluation:
            self._scores(
                data=data,
                start=start,
                end=end,
                call=call,
                attrs=attrs,
                service=service,
                trace_id=trace_id,
                end_ns=end_ns,
            )
        if again:  # enriched as its first copy was; what it would record was counted then
            del journal[mark:]
            self._defer((self.registry.record_again, (call is not None,)))
        return added, call is not None

    def _agentic(  # noqa: PLR0917
        self,
        data: bytes,
        start: int,
        end: int,
        attrs: dict[str, object],
        service: str,
        trace_id: bytes,
        start_ns: int,
        end_ns: int,
        status_error: bool,
    ) -> None:
        """An execute_tool span counted as a tool call (or, SERVER-kind, a tool execution served),
        an invoke_agent span as an agent run, an apply_guardrail span with a verdict as a guardrail
        evaluation. None is priced: the model calls inside an agent run are (NON_INFERENCE_OPERATIONS)."""
        status = STATUS_ERROR if status_error or attrs.get(sc.ERROR_TYPE) else STATUS_OK
        registry = self.registry
        # Rare spans, parsed whole: the tool and agent names are not among the keys every span is
        # scanned for (those cost every span of every request).
        span = Span.FromString(data[start:end])
        operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
        if operation == sc.Operation.EXECUTE_TOOL:
            tool = self._name(_string_attribute(span, sc.GEN_AI_TOOL_NAME))
            # A SERVER span is the server's side of a call (an MCP server's tools/call span), which
            # its client, if instrumented, counts as a call: the server's executions are a metric
            # of their own, so no call is counted twice in one metric, whoever made it.
            served = span.kind == Span.SPAN_KIND_SERVER
            self._defer((registry.record_tool_call, (service, tool, status, served)))
            return
        if operation == sc.Operation.APPLY_GUARDRAIL:
            # a verdict only: a guardrail that raised or was cancelled evaluated nothing
            triggered = _bool_attribute(span, sc.GENAI_OTEL_GUARDRAIL_TRIGGERED)
            if triggered is not None:
                guardrail = self._name(_string_attribute(span, sc.GENAI_OTEL_GUARDRAIL_NAME))
                self._defer((registry.record_guardrail_evaluation, (service, guardrail, triggered)))
            return
        if end_ns < start_ns or start_ns == 0:
            self._invalid(InvalidReason.NEGATIVE_DURATION)
            return
        agent = self._name(_string_attribute(span, sc.GEN_AI_AGENT_NAME))
        self._defer(
            (
                registry.record_agent_run,
                (service, agent, status, (end_ns - start_ns) / 1e9, trace_id, end_ns / 1e9),
            )
        )

    def _name(self, value: str) -> str:
        """A tool's, an agent's or a guardrail's name as a label value (capped later, by its LabelLimiter)."""
        return value[: self.normaliser.max_value_length] if value else UNKNOWN

    def _duplicate_of(
        self, call: GenAICall, facts: SpanFacts, attrs: dict[str, object], scope_name: str, service: str
    ) -> tuple[bytes, str | None] | None:
        """What the duplicate memory says of a model call's span (duplicates.py): None, it is
        counted (and remembered); (counted span's id, its scope), the second span of a call already
        counted; (counted span's id, None), a copy of such a span; (b"", None), a copy of a span
        counted before."""
        recent = self._recent
        if recent is None:
            return None
        response_id = attrs.get(sc.GEN_AI_RESPONSE_ID)
        return recent.see(
            scope_name,
            _native(scope_name, call.provider),
            service,
            call_ident(call.provider, call.request_model or call.response_model),
            facts[0],
            facts[4],
            facts[5],
            min(facts[1], _MAX_NS),  # fixed64 on the wire; the memory keeps int64 times
            min(facts[2], _MAX_NS),
            response_id if isinstance(response_id, str) else None,
        )

    def _again(self, facts: SpanFacts) -> bool:
        """Whether a span that records something other than a model call (a tool call, an agent
        run, an evaluation) was seen before: a copy counts nothing again."""
        recent = self._recent
        return recent is not None and bool(recent.again(facts[0], facts[4]))

    def _call(  # noqa: PLR0917
        self, call: GenAICall, service: str, trace_id: bytes, start_ns: int, end_ns: int, span_id: bytes
    ) -> bytes:
        registry = self.registry
        raw = (service, call.provider, call.request_model or call.response_model or UNKNOWN, call.operation)
        series = self._series.get(raw)
        if series is None:
            labels, stats = registry.series_of(registry.labels(*raw))
            # as the registry's own cache: calls over a label's or the series cap stay counted
            if OTHER not in labels:
                if len(self._series) >= 100_000:
                    self._series.clear()
                self._series[raw] = (labels, stats)
        else:
            labels, stats = series
        duration: float | None = (end_ns - start_ns) / 1e9
        if end_ns < start_ns or start_ns == 0:
            self._invalid(InvalidReason.NEGATIVE_DURATION)
            duration = None
        cost: Cost | None = None
        unpriced = ""
        reported_quanta = -1
        error = call.error
        if call.reported_cost is not None and trusts_reported_cost(self.trust_reported_cost, call):
            reported_quanta = int(call.reported_cost * QUANTA_PER_USD + 0.5)
        elif not call.has_usage:
            if not error:  # a failed call without usage is not billed: nothing to price
                unpriced = UnpricedReason.NO_USAGE
        else:
            rates = self.prices.rates(
                call.provider, call.request_model, call.response_model, start_ns, call.service_tier
            )
            if type(rates) is str:
                unpriced = rates
            else:
                assert isinstance(rates, Rates)
                cost = compute_cost(
                    rates,
                    call.input_tokens,
                    call.output_tokens,
                    call.cache_read_tokens,
                    call.cache_write_tokens,
                )
        tokens = call.tokens if call.has_usage else None
        self._defer(
            (
                self._record_call,
                (
                    stats,
                    labels[0],
                    STATUS_ERROR if error else STATUS_OK,
                    call.error_category if error else "",
                    tokens,
                    cost,
                    call.user,
                    call.feature,
                    trace_id,
                    duration,
                    call.time_to_first_chunk,
                    end_ns / 1e9,
                ),
            )
        )
        if reported_quanta >= 0:
            self._defer(
                (registry.record_reported_cost, (stats, reported_quanta, call.user, call.feature, labels[0]))
            )
        if unpriced:
            self._defer((registry.record_unpriced, (labels[1], labels[2], unpriced)))
        if self.call_log is not None:
            source = sc.CostSource.PROVIDER if reported_quanta >= 0 else sc.CostSource.LOCAL if cost else ""
            quanta = reported_quanta if reported_quanta >= 0 else cost.total if cost is not None else None
            static = self._log_static(call, service, source, unpriced)
            when = end_ns / 1e9
            line = (static, trace_id, span_id, when, tokens, quanta, duration, call.time_to_first_chunk)
            self._defer((self.call_log.line, (*line, call.user, call.feature)))
        if call.already_enriched:
            return b""
        if call.reported_cost is not None and reported_quanta < 0:
            return self._repriced_enrichment(call, cost, unpriced)
        return self._enrichment(call, cost, unpriced, reported_quanta)

    @staticmethod
    def _log_static(call: GenAICall, service: str, cost_source: str, unpriced: str) -> str:
        """What every call of this kind writes into its call-log line (CallLog.static)."""
        return CallLog.static(
            service,
            call.provider,
            call.operation,
            call.request_model,
            call.response_model,
            STATUS_ERROR if call.error else STATUS_OK,
            call.error_category if call.error else "",
            cost_source,
            unpriced,
        )

    def _packer(self, table: str) -> tuple[struct.Struct, bytes, bytes, bytes, bytes, bytes, bytes]:
        packer = self._cost_packers.get(table)
        if packer is None:
            packer = self._cost_packers[table] = _cost_packer(table)
        return packer

    def _prefixes(self, table: str) -> tuple[bytes, ...]:
        """The cost attributes' fixed bytes for `table`, as priced_call writes them."""
        prefixes = self._prefix_cache.get(table)
        if prefixes is None:
            prefixes = self._prefix_cache[table] = self._packer(table)[1:]
        return prefixes

    def _enrichment(self, call: GenAICall, cost: Cost | None, unpriced: str, reported_quanta: int) -> bytes:
        if cost is not None:
            struct_, p0, p1, p2, p3, p4, p5 = self._packer(cost.table)
            usd = 1.0 / QUANTA_PER_USD
            added = struct_.pack(
                p0,
                (cost.input + cost.output + cost.cache_read + cost.cache_write) * usd,
                p1,
                cost.input * usd,
                p2,
                cost.output * usd,
                p3,
                cost.cache_read * usd,
                p4,
                cost.cache_write * usd,
                p5,
                cost.savings * usd,
            )
            if not call.missing_current_names:
                return added
            parts = [added]
        elif unpriced:
            parts = [self._unpriced_bytes(unpriced)]
        else:
            parts = []
        for key in call.missing_current_names:
            parts.append(self._current_name(call, key))
        return b"".join(parts)

    def _repriced_enrichment(self, call: GenAICall, cost: Cost | None, unpriced: str) -> bytes:
        """The attributes of a span whose reported cost was not trusted and was re-priced.

        The reported figure stays on the span and is copied to genai_otel.cost.reported_amount.
        OpenLIT's spans carry it as gen_ai.usage.cost, so the processor's price takes the proposal's
        names as on any priced span. A span that already carries gen_ai.usage.cost.amount keeps it
        (a collector keeps the first of two equal keys): the price goes to genai_otel.cost.amount,
        with the price table and the breakdown beside it.
        """
        names = tuple(key for key in call.missing_current_names if key != sc.GEN_AI_USAGE_COST_AMOUNT)
        if cost is None and not unpriced:  # nothing to price (a failed call without usage): nothing
            return b"".join(self._current_name(call, key) for key in names)  # to compare, and idempotent
        reported = _REPORTED_AMOUNT(call.reported_cost or 0.0)
        if sc.GEN_AI_USAGE_COST_AMOUNT in call.missing_current_names:  # the proposal's names are free
            restated = dataclasses.replace(call, missing_current_names=names)
            return self._enrichment(restated, cost, unpriced, -1) + reported
        parts = [reported]
        if cost is not None:
            usd = 1.0 / QUANTA_PER_USD
            parts += [
                _OWN_AMOUNT((cost.input + cost.output + cost.cache_read + cost.cache_write) * usd),
                encode_string_attribute(sc.GENAI_OTEL_COST_PRICE_TABLE, cost.table),
                _COST_INPUT(cost.input * usd),
                _COST_OUTPUT(cost.output * usd),
                _COST_CACHE_READ(cost.cache_read * usd),
                _COST_CACHE_WRITE(cost.cache_write * usd),
                _COST_SAVINGS(cost.savings * usd),
            ]
        elif unpriced:
            parts.append(self._unpriced_bytes(unpriced))
        parts += [self._current_name(call, key) for key in names]
        return b"".join(parts)

    def _usage_note(self, call: GenAICall, attrs: dict[str, object], scope_name: str, service: str) -> bytes:
        """genai_otel.usage.incomplete=true, counted, for a span whose usage is known incomplete."""
        if not usage_incomplete(call, attrs, scope_name):
            return b""
        registry = self.registry
        labels = registry.labels(service, call.provider, call.model, call.operation)
        self._defer((registry.record_usage_incomplete, (labels[0], labels[1], labels[2])))
        return b"" if call.already_enriched else _USAGE_INCOMPLETE

    def _unpriced_bytes(self, reason: str) -> bytes:
        attr = self._unpriced_attr.get(reason)
        if attr is None:
            attr = self._unpriced_attr[reason] = encode_string_attribute(
                sc.GENAI_OTEL_COST_UNPRICED_REASON, reason
            )
        return attr

    def _current_name(self, call: GenAICall, key: str) -> bytes:
        if key == sc.GEN_AI_PROVIDER_NAME:
            cached = self._provider_attr.get(call.provider)
            if cached is None:
                if len(self._provider_attr) >= 1024:
                    self._provider_attr.clear()
                cached = self._provider_attr[call.provider] = encode_string_attribute(key, call.provider)
            return cached
        if key == sc.GENAI_OTEL_ERROR_CATEGORY:
            return encode_string_attribute(key, call.error_category)
        if key == sc.GEN_AI_USAGE_COST_AMOUNT:  # OpenLIT's cost, restated under the proposal's names
            return _COST_AMOUNT(call.reported_cost or 0.0) + _CURRENCY + _SOURCE_PROVIDER
        index, encoder = _TOKEN_ENCODERS[key]  # a token type's current name
        return encoder(call.tokens[index])

    # -- evaluation events (rare: parsed with the generated classes) ----------------------
    def _scores(
        self,
        *,
        data: bytes,
        start: int,
        end: int,
        call: GenAICall | None,
        attrs: dict[str, object],
        service: str,
        trace_id: bytes,
        end_ns: int,
    ) -> None:
        registry = self.registry
        span = Span.FromString(data[start:end])
        for event in span.events:
            if event.name != sc.EVENT_EVALUATION_RESULT:
                continue
            values: dict[str, object] = {}
            for kv in event.attributes:
                which = kv.value.WhichOneof("value")
                values[kv.key] = getattr(kv.value, which) if which else None
            name = values.get(sc.GEN_AI_EVALUATION_NAME)
            if not isinstance(name, str):
                self._invalid(InvalidReason.BAD_SCORE)
                continue
            raw_score = values.get(sc.GEN_AI_EVALUATION_SCORE_VALUE)
            threshold = self.safety_thresholds.get(name)
            score: float | None = None
            is_flagged: bool | None = None
            if threshold is not None:  # a safety evaluation: counted, not a quality score
                is_flagged = flagged(raw_score, values.get(sc.GEN_AI_EVALUATION_SCORE_LABEL), threshold)
                valid = is_flagged is not None
            else:
                score = finite_number(raw_score)
                valid = score is not None and 0 <= score <= 10
            if not valid:
                self._invalid(InvalidReason.BAD_SCORE)
                continue
            if call is not None:
                provider, model = call.provider, call.model
            else:
                raw_provider = values.get(sc.GEN_AI_PROVIDER_NAME) or attrs.get(sc.GEN_AI_PROVIDER_NAME) or ""
                raw_model = (
                    values.get(sc.GEN_AI_REQUEST_MODEL)
                    or values.get(sc.GEN_AI_RESPONSE_MODEL)
                    or attrs.get(sc.GEN_AI_REQUEST_MODEL)
                    or ""
                )
                provider = str(raw_provider) or "unknown"
                model = str(raw_model)[:256] or "unknown"
            labels = registry.labels(service, provider, model, "")
            if is_flagged is not None:
                self._defer((registry.record_safety, (labels[0], labels[1], labels[2], name, is_flagged)))
            else:
                self._defer(
                    (
                        registry.record_score,
                        (labels[0], labels[1], labels[2], name[:256], score, trace_id, end_ns / 1e9),
                    )
                )


def _string_attribute(span: Span, key: str) -> str:
    """The string value of the span's first attribute `key`, "" if none (or not a string)."""
    for kv in span.attributes:
        if kv.key == key:
            return kv.value.string_value
    return ""


def _bool_attribute(span: Span, key: str) -> bool | None:
    """The boolean value of the span's first attribute `key`, None if none (or not a boolean)."""
    for kv in span.attributes:
        if kv.key == key:
            return kv.value.bool_value if kv.value.WhichOneof("value") == "bool_value" else None
    return None


def _assemble(data: bytes, resources: list[ResourceEntry], additions: dict[int, bytes]) -> bytes:
    """The request with `additions` (span field start -> encoded attributes) appended to their spans.

    Untouched bytes are copied in runs; only the length prefixes of the enclosing ResourceSpans,
    ScopeSpans and Span messages are rewritten.
    """
    out: list[bytes] = []
    copy_from = 0  # start of a pending run of untouched bytes
    for rs_start, rs_payload, rs_end, _, scopes in resources:
        parts: list[bytes] = []
        pos = rs_payload
        for scope_start, scope_payload, scope_end, _, spans in scopes:
            scope_parts: list[bytes] = []
            scope_pos = scope_payload
            for span_start, start, end, _, _, _ in spans:
                added = additions.get(span_start)
                if added is None:
                    continue
                scope_parts.append(data[scope_pos:span_start])
                scope_parts.append(b"\x12" + encode_varint(end - start + len(added)))
                scope_parts.append(data[start:end])
                scope_parts.append(added)
                scope_pos = end
            if not scope_parts:
                continue
            scope_parts.append(data[scope_pos:scope_end])
            parts.append(data[pos:scope_start])
            parts.append(b"\x12" + encode_varint(sum(len(p) for p in scope_parts)))
            parts += scope_parts
            pos = scope_end
        if not parts:
            continue
        parts.append(data[pos:rs_end])
        out.append(data[copy_from:rs_start])
        out.append(b"\n" + encode_varint(sum(len(p) for p in parts)))
        out += parts
        copy_from = rs_end
    out.append(data[copy_from:])
    return b"".join(out)
