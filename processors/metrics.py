"""Aggregates the derived metrics and writes them in the Prometheus text formats.

Hand-rolled on purpose: a span touches ~15 series, and `prometheus_client` costs a lock and
several lookups per sample. Here one dict lookup (the call's label tuple) finds a
`SeriesStats` record and everything else is list arithmetic.

Bounded: every label has a cap on distinct values (first N admitted, the rest `other`,
each overflow counted by label); user and feature cost keep a top-N the same way. Why
first-N rather than a heavy-hitter sketch (space-saving): a Prometheus counter must only go
up and series must not trade counts, so a value, once admitted, keeps its series; a sketch
that evicts a user would move that user's past cost into `other` and break `rate()` and the
exact sum over users. The trade-off: a heavy user who first appears after the cap is full
is reported as `other` until the processor restarts (caps are sized for that, and the
overflow counter says when it happens). Caps per label do not bound their product (200 services
x 500 models), so each labelled table (call series, quality-score keys, user and feature cost
keys) also admits only its first `max_series` keys; a new key beyond that is recorded under one
all-`other` key, each such record counted (`label_overflow_total{label="series"}`, ...), so
sums over the series stay exact.

The exposition is rendered from `Registry.snapshot()` (copies of the counts and histograms), so
the service can render it in a worker thread while the event loop keeps recording.

Every counter and histogram series remembers when it was created (the registry's clock, unix
seconds), written as the OpenMetrics `_created` sample: a Prometheus that ingests created
timestamps as zeros then counts the first increment of a new series, which `rate()` otherwise
misses (an error that happens once per model would never show). A series exposed only once it
is non-zero (cache and reasoning tokens, cost breakdown, savings) is created when it first
becomes non-zero. The classic text format has no `_created` samples.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final

from genai_otel import semconv as sc

from . import normalise
from .normalise import TOKEN_INPUT, TOKEN_OUTPUT
from .pricing import QUANTA_PER_USD, Cost

OTHER: Final = sc.OTHER_LABEL_VALUE
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
TOKEN_TYPES: Final = tuple(str(token.label) for token in normalise.TOKEN_TYPES)  # token_type labels
COST_TYPES: Final = ("input", "output", "cache_read", "cache_write")
ALL_LABELS: Final = sc.METRIC_LABEL_KEYS
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


Clock = Callable[[], float]
# makes a Histogram(bounds, exemplars, created): this module's, or the C extension's
HistogramType = Callable[[tuple[float, ...], bool, float], "Histogram"]


class Counts(dict[Any, int]):
    """A table of counter series (key -> count) that remembers when each key was created."""

    __slots__ = ("clock", "created")

    def __init__(self, clock: Clock, *initial: Hashable) -> None:
        super().__init__()
        self.clock = clock
        self.created: dict[Any, float] = {}
        for key in initial:
            self.add(key, 0)

    def stamp(self, key: Hashable) -> None:
        """Record `key` as created now."""
        self.created[key] = self.clock()

    def admit(self, key: Hashable) -> Hashable:
        """The key a new `key` is counted under, stamped if new (the C extension calls this
        before inserting a key). Here `key` itself; a capped table may name its overflow key."""
        self.stamp(key)
        return key

    def add(self, key: Hashable, n: int) -> None:
        old = self.get(key)
        if old is None:
            key = self.admit(key)
            old = self.get(key, 0)
        self[key] = old + n

    def copy(self) -> Counts:
        copied = Counts(self.clock)
        dict.update(copied, self)
        copied.created = self.created.copy()
        return copied


class SeriesCap:
    """Admits the first `limit` distinct keys of one table; later ones share one all-`other` key.

    Per-label caps bound each label, not their product (200 services x 500 models); this bounds
    the table. First-N for the reason the label caps are: an admitted key keeps its series."""

    __slots__ = ("clock", "limit", "name", "other", "overflow", "overflow_created", "used")

    def __init__(self, name: str, limit: int, width: int, clock: Clock) -> None:
        self.name = name
        self.limit = limit
        self.clock = clock
        self.other: tuple[str, ...] = (OTHER,) * width
        self.used = 0  # keys admitted, the all-`other` key aside
        self.overflow = 0
        self.overflow_created = 0.0

    def admit(self, key: Any) -> Any:
        """The key a record under a key new to the table goes to (each overflow counted)."""
        if key == self.other:
            return key
        if self.used < self.limit:
            self.used += 1
            return key
        if not self.overflow:
            self.overflow_created = self.clock()
        self.overflow += 1
        return self.other


class CappedCounts(Counts):
    """Counts whose distinct keys are bounded by a SeriesCap."""

    __slots__ = ("cap",)

    def __init__(self, clock: Clock, cap: SeriesCap) -> None:
        super().__init__(clock)
        self.cap = cap

    def admit(self, key: Hashable) -> Hashable:
        key = self.cap.admit(key)
        if key not in self:
            self.stamp(key)
        return key


class Histogram:
    __slots__ = ("bounds", "count", "counts", "created", "exemplars", "sum")

    def __init__(self, bounds: tuple[float, ...], exemplars: bool, created: float = 0.0) -> None:
        self.bounds = bounds
        self.created = created
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self.exemplars: list[tuple[bytes, float, float] | None] | None = (
            [None] * (len(bounds) + 1) if exemplars else None
        )

    def observe(self, value: float, trace_id: bytes, timestamp: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        self.counts[index] += 1
        self.sum += value
        self.count += 1
        if self.exemplars is not None and trace_id:
            self.exemplars[index] = (trace_id, value, timestamp)

    def copy(self) -> Histogram:
        """A copy that later observations leave alone (the C extension's Histogram has one too)."""
        copied = Histogram.__new__(Histogram)
        copied.bounds = self.bounds
        copied.created = self.created
        copied.counts = self.counts.copy()
        copied.sum = self.sum
        copied.count = self.count
        copied.exemplars = None if self.exemplars is None else self.exemplars.copy()
        return copied


# SeriesStats.stamps: when each series exposed only once non-zero was created
COST_BY_USER, COST_BY_FEATURE = 0, 1  # Registry.cost_key
STAMP_BREAKDOWN: Final = len(TOKEN_TYPES)  # before it: one per token type
STAMP_SAVINGS: Final = STAMP_BREAKDOWN + 1


class SeriesStats:
    """Everything recorded for one (service, provider, model, operation)."""

    __slots__ = (
        "breakdown",
        "clock",
        "cost",
        "cost_exemplar",
        "cost_per_request",
        "created",
        "duration",
        "requests",
        "savings",
        "stamps",
        "tokens",
        "tps",
        "ttfc",
    )

    def __init__(self, exemplars: bool, clock: Clock = time.time) -> None:
        self.clock = clock
        self.created = clock()
        # input and output tokens are exposed from the start; the rest once non-zero
        self.stamps: list[float | None] = [None] * (STAMP_SAVINGS + 1)
        self.stamps[TOKEN_INPUT] = self.stamps[TOKEN_OUTPUT] = self.created
        self.requests = Counts(clock)
        self.tokens = [0] * len(TOKEN_TYPES)
        self.cost = 0  # quanta
        self.breakdown = [0, 0, 0, 0]  # quanta, COST_TYPES order
        self.savings = 0  # quanta
        self.cost_exemplar: tuple[bytes, float, float] | None = None
        self.duration: dict[str, Histogram] = {}
        self.ttfc: Histogram | None = None
        self.cost_per_request: Histogram | None = None
        self.tps: Histogram | None = None

    def stamp(self, index: int) -> None:
        """Record series `index` of `stamps` as created now (it just became non-zero)."""
        self.stamps[index] = self.clock()

    def copy(self) -> SeriesStats:
        """What the exposition reads, copied: later recording leaves the copy alone."""
        copied = SeriesStats.__new__(SeriesStats)
        copied.clock = self.clock
        copied.created = self.created
        copied.stamps = self.stamps.copy()
        copied.requests = self.requests.copy()
        copied.tokens = self.tokens.copy()
        copied.cost = self.cost
        copied.breakdown = self.breakdown.copy()
        copied.savings = self.savings
        copied.cost_exemplar = self.cost_exemplar
        copied.duration = {status: h.copy() for status, h in self.duration.items()}
        copied.ttfc = None if self.ttfc is None else self.ttfc.copy()
        copied.cost_per_request = None if self.cost_per_request is None else self.cost_per_request.copy()
        copied.tps = None if self.tps is None else self.tps.copy()
        return copied


class _Labels(set[str]):
    """Admitted labels that are not the raw values (a transform is set): the C extension looks raw
    values up in an exact `set` to skip the call, so this subclass sends every value to Python."""


def hmac_label(key: bytes) -> Callable[[str], str]:
    """A user id as a short, stable keyed hash: the first 16 hex digits of HMAC-SHA256."""

    def label(value: str) -> str:
        return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]

    return label


class LabelLimiter:
    """Admits the first `limit` distinct values of one label; later ones become `other`.

    `transform` (set by the Registry, e.g. `hmac_label`) turns a raw value into its label first."""

    __slots__ = ("admitted", "allowed", "clock", "limit", "name", "overflow", "overflow_created", "transform")

    def __init__(self, name: str, limit: int, allowed: bool, clock: Clock = time.time) -> None:
        self.name = name
        self.limit = limit
        self.allowed = allowed
        self.clock = clock
        self.transform: Callable[[str], str] | None = None
        self.admitted: set[str] = set()
        self.overflow = 0
        self.overflow_created = 0.0

    def __call__(self, value: str) -> str:
        if not self.allowed:
            return ""
        if self.transform is not None:
            value = self.transform(value)
        if value in self.admitted:
            return value
        if len(self.admitted) < self.limit:
            self.admitted.add(value)
            return value
        self.count_overflow(1)
        return OTHER

    def count_overflow(self, n: int) -> None:
        """`n` more calls whose value became `other`."""
        if not self.overflow:
            self.overflow_created = self.clock()
        self.overflow += n


class Registry:
    """The processor's derived metrics and its own health counters."""

    def __init__(
        self,
        *,
        label_limits: dict[str, int],
        allowed_labels: Iterable[str],
        top_users: int,
        top_features: int,
        exemplars: bool,
        price_table: str,
        max_series: int | None = None,
        user_label: Callable[[str], str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        """`clock`: unix seconds, for the `_created` samples (tests pass a fixed one);
        `max_series`: distinct keys per labelled table (None: the config's default)."""
        if max_series is None:
            from .config import LabelsConfig

            max_series = LabelsConfig().max_series
        allowed = set(allowed_labels)
        self.clock = clock
        self.created = clock()
        self.exemplars = exemplars
        self.price_table = price_table
        self.accelerated = False  # the C lane records here (set by its pipeline): processor_info
        self._histogram_type: HistogramType = Histogram
        self.limiters = {
            name: LabelLimiter(name, label_limits.get(name, 1000), name in allowed, clock)
            for name in ALL_LABELS
        }
        self.limiters[sc.LABEL_USER].limit = top_users
        if user_label is not None:  # labels.user_id: hmac
            user = self.limiters[sc.LABEL_USER]
            user.transform, user.admitted = user_label, _Labels()
        self.limiters[sc.LABEL_FEATURE].limit = top_features
        self._allowed = allowed
        # totals per table, beyond the per-label caps (label_overflow_total{label=<cap name>})
        self.caps = {
            name: SeriesCap(name, max_series, width, clock)
            for name, width in (
                ("series", 4),
                ("quality_series", 4),
                ("safety_series", 4),
                ("user_series", 2),
                ("feature_series", 2),
                ("duplicate_series", 2),
                ("tool_series", 3),
                ("tool_execution_series", 3),
                ("agent_series", 3),
                ("guardrail_series", 3),
            )
        }
        self._decided: tuple[LabelLimiter | SeriesCap, ...] = (
            *(
                self.limiters[name]
                for name in (sc.LABEL_SERVICE, sc.LABEL_PROVIDER, sc.LABEL_MODEL, sc.LABEL_OPERATION)
            ),
            self.caps["series"],
        )
        self.series: dict[tuple[str, str, str, str], SeriesStats] = {}
        self._label_cache: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}
        self.unpriced = Counts(clock)
        self.usage_incomplete = Counts(clock)  # (service, provider, model), labels capped
        self.user_cost = CappedCounts(clock, self.caps["user_series"])
        self.feature_cost = CappedCounts(clock, self.caps["feature_series"])
        self.quality: dict[tuple[str, ...], Histogram] = {}
        # (service, provider, model, evaluation) -> safety evaluations, and how many flagged the
        # response: the same keys in both (a key's flagged series exists from its first evaluation)
        self.safety_evaluations = Counts(clock)
        self.safety_flagged = Counts(clock)
        # (counted span's scope, duplicate span's scope) -> spans found to be the second of a call
        self.duplicates = CappedCounts(clock, self.caps["duplicate_series"])
        # agents and tools (execute_tool / invoke_agent spans: never priced, counted here)
        self.tool_calls = CappedCounts(clock, self.caps["tool_series"])  # (service, tool, status)
        self.agent_runs: dict[tuple[str, ...], Histogram] = {}  # (service, agent, status)
        # SERVER-kind execute_tool spans: tools this service served (service, tool, status)
        self.tool_executions = CappedCounts(clock, self.caps["tool_execution_series"])
        # apply_guardrail spans with a verdict (service, guardrail, "true" | "false")
        self.guardrail_evaluations = CappedCounts(clock, self.caps["guardrail_series"])
        # health
        self.received = Counts(clock, "genai", "other")
        self.redelivered = Counts(clock, "genai", "other")  # copies of spans received before
        self.forwarded = 0  # created with the registry
        self.invalid = Counts(clock)
        self.dropped = Counts(clock)
        self.rejected = Counts(clock)
        self.export_failures = Counts(clock)
        self.queue_spans = 0
        self.queue_capacity = 0
        self._settlers: list[Callable[[], object]] = []

    def overflow_marks(self) -> tuple[tuple[int, float], ...]:
        """The overflow counts that deciding a span's labels bumps (`labels`, `series_of`): a
        request's records are applied only when it succeeds, but its labels are decided as its
        spans are walked, so a failed request puts these back (`restore_overflow`). Which values
        were admitted is not undone: admission is first come, first served, not a count."""
        return tuple((h.overflow, h.overflow_created) for h in self._decided)

    def restore_overflow(self, marks: tuple[tuple[int, float], ...]) -> None:
        for holder, (overflow, created) in zip(self._decided, marks, strict=True):
            holder.overflow, holder.overflow_created = overflow, created

    def settle_with(self, flush: Callable[[], object]) -> None:
        """`flush` adds sums held elsewhere (the C lane's) to this registry; `settle` calls it."""
        self._settlers.append(flush)

    def settle(self) -> None:
        """Bring every series up to date. `expose` does this; so must any other reader."""
        for flush in self._settlers:
            flush()

    def use_histogram_type(self, histogram_type: HistogramType) -> None:
        """Make new histograms with `histogram_type` (the C extension's Histogram: the same
        constructor, attributes and `observe`, its state in C arrays, which the lane updates)."""
        self._histogram_type = histogram_type

    # -- recording ---------------------------------------------------------------------
    def histogram(self, bounds: tuple[float, ...], exemplars: bool) -> Histogram:
        return self._histogram_type(bounds, exemplars, self.clock())

    def labels(self, service: str, provider: str, model: str, operation: str) -> tuple[str, str, str, str]:
        raw = (service, provider, model, operation)
        capped = self._label_cache.get(raw)
        if capped is None:
            limiters = self.limiters
            capped = (
                limiters[sc.LABEL_SERVICE](service),
                limiters[sc.LABEL_PROVIDER](provider),
                limiters[sc.LABEL_MODEL](model),
                limiters[sc.LABEL_OPERATION](operation),
            )
            if OTHER not in capped:  # only stable mappings are cached; overflow stays counted
                if len(self._label_cache) >= 100_000:
                    self._label_cache.clear()
                self._label_cache[raw] = capped
        return capped

    def stats(self, labels: tuple[str, str, str, str]) -> SeriesStats:
        """The series of `labels`, created if new (uncapped: `series_of` applies the cap)."""
        stats = self.series.get(labels)
        if stats is None:
            stats = self.series[labels] = SeriesStats(self.exemplars, self.clock)
        return stats

    def series_of(self, labels: tuple[str, str, str, str]) -> tuple[tuple[str, str, str, str], SeriesStats]:
        """The labels a call with (capped) `labels` is recorded under, and their series: a
        label set new beyond `max_series` goes to the all-`other` series (each such call
        counted, as a label over its cap is)."""
        stats = self.series.get(labels)
        if stats is None:
            admitted = self.caps["series"].admit(labels)
            if admitted is not labels:
                labels = admitted
                stats = self.series.get(labels)
            if stats is None:
                stats = self.series[labels] = SeriesStats(self.exemplars, self.clock)
        return labels, stats

    def add_sums(  # noqa: PLR0917
        self,
        stats: SeriesStats,
        request_key: tuple[str, str],
        requests: int,
        tokens: Sequence[int] | None,
        breakdown: Sequence[int] | None,
        savings: int,
        cost_exemplar: tuple[bytes, float, float] | None,
    ) -> None:
        """What `requests` calls recorded under one series and request key add to its counters:
        their tokens (normalise.TOKEN_TYPES order; None: calls without usage), their cost
        (COST_TYPES order, and the cache savings; None: not priced) and the last priced call's
        exemplar. The C lane adds the sums it kept so; `record_call` adds one call the same way."""
        self._add_requests(stats, request_key, requests, tokens)
        if breakdown is not None:
            self._add_cost(stats, breakdown, savings, cost_exemplar)

    @staticmethod
    def _add_requests(
        stats: SeriesStats, request_key: tuple[str, str], requests: int, tokens: Sequence[int] | None
    ) -> None:
        stats.requests.add(request_key, requests)
        if tokens is not None:
            counts, stamps = stats.tokens, stats.stamps
            for index, n in enumerate(tokens):
                counts[index] += n
                if stamps[index] is None and counts[index]:
                    stats.stamp(index)

    @staticmethod
    def _add_cost(
        stats: SeriesStats,
        breakdown: Sequence[int],
        savings: int,
        cost_exemplar: tuple[bytes, float, float] | None,
    ) -> None:
        stats.cost += sum(breakdown)
        parts = stats.breakdown
        for index, n in enumerate(breakdown):
            parts[index] += n
        if stats.stamps[STAMP_BREAKDOWN] is None and any(parts):
            stats.stamp(STAMP_BREAKDOWN)
        stats.savings += savings
        if stats.stamps[STAMP_SAVINGS] is None and stats.savings:
            stats.stamp(STAMP_SAVINGS)
        if cost_exemplar is not None:
            stats.cost_exemplar = cost_exemplar

    def record_call(  # noqa: PLR0917 - the hot path: positional calls are cheaper
        self,
        stats: SeriesStats,
        service_label: str,
        status: str,
        error_type: str,
        tokens: Sequence[int] | None,
        cost: Cost | None,
        user: str,
        feature: str,
        trace_id: bytes,
        duration_s: float | None,
        ttfc_s: float | None,
        end_s: float,
    ) -> None:
        key = (status, self.limiters[sc.LABEL_ERROR_TYPE](error_type) if error_type else "")
        self._add_requests(stats, key, 1, tokens)
        if duration_s is not None:
            histogram = stats.duration.get(status)
            if histogram is None:
                histogram = stats.duration[status] = self.histogram(sc.DURATION_BUCKETS, self.exemplars)
            histogram.observe(duration_s, trace_id, end_s)
        if ttfc_s is not None:
            if stats.ttfc is None:
                stats.ttfc = self.histogram(sc.TIME_TO_FIRST_CHUNK_BUCKETS, self.exemplars)
            stats.ttfc.observe(ttfc_s, trace_id, end_s)
        if tokens is not None and tokens[TOKEN_OUTPUT] > 0 and duration_s is not None:
            generating = duration_s - (ttfc_s or 0.0)
            if generating > 0:
                if stats.tps is None:
                    stats.tps = self.histogram(sc.OUTPUT_TOKENS_PER_SECOND_BUCKETS, self.exemplars)
                stats.tps.observe(tokens[TOKEN_OUTPUT] / generating, trace_id, end_s)
        if cost is not None:
            total = cost.total
            usd = total / QUANTA_PER_USD
            exemplar = (trace_id, usd, end_s) if self.exemplars and trace_id else None
            breakdown = (cost.input, cost.output, cost.cache_read, cost.cache_write)
            self._add_cost(stats, breakdown, cost.savings, exemplar)
            if stats.cost_per_request is None:
                stats.cost_per_request = self.histogram(sc.COST_PER_REQUEST_BUCKETS, self.exemplars)
            stats.cost_per_request.observe(usd, trace_id, end_s)
            if user:
                self.user_cost.add(self.cost_key(COST_BY_USER, service_label, user)[0], total)
            if feature:
                self.feature_cost.add(self.cost_key(COST_BY_FEATURE, service_label, feature)[0], total)

    def cost_key(self, which: int, service_label: str, value: str) -> tuple[tuple[str, str], bool]:
        """The series a call's cost by user (COST_BY_USER) or by feature (COST_BY_FEATURE) is
        added to: (service label, the value's label, capped); and whether capping the value
        counted an overflow (the C lane counts each later sighting of such a value again)."""
        limiter = self.limiters[sc.LABEL_FEATURE if which == COST_BY_FEATURE else sc.LABEL_USER]
        before = limiter.overflow
        label = limiter(value)
        return (service_label, label), limiter.overflow > before

    def record_reported_cost(
        self, stats: SeriesStats, quanta: int, user: str, feature: str, service: str
    ) -> None:
        """A cost the span already carried (provider-reported): totals, no breakdown."""
        stats.cost += quanta
        if stats.cost_per_request is None:
            stats.cost_per_request = self.histogram(sc.COST_PER_REQUEST_BUCKETS, self.exemplars)
        stats.cost_per_request.observe(quanta / QUANTA_PER_USD, b"", 0.0)
        if user:
            self.user_cost.add(self.cost_key(COST_BY_USER, service, user)[0], quanta)
        if feature:
            self.feature_cost.add(self.cost_key(COST_BY_FEATURE, service, feature)[0], quanta)

    def record_unpriced(self, provider: str, model: str, reason: str) -> None:
        self.unpriced.add((provider, model, reason), 1)

    def record_usage_incomplete(self, service: str, provider: str, model: str) -> None:
        self.usage_incomplete.add((service, provider, model), 1)

    def record_score(  # noqa: PLR0917
        self,
        service: str,
        provider: str,
        model: str,
        evaluation: str,
        score: float,
        trace_id: bytes,
        end_s: float,
    ) -> None:
        key: tuple[str, ...] = (service, provider, model, self.limiters[sc.LABEL_EVALUATION](evaluation))
        histogram = self.quality.get(key)
        if histogram is None:
            key = self.caps["quality_series"].admit(key)
            histogram = self.quality.get(key)
        if histogram is None:
            histogram = self.quality[key] = self.histogram(sc.QUALITY_SCORE_BUCKETS, self.exemplars)
        histogram.observe(score, trace_id, end_s)

    def record_safety(self, service: str, provider: str, model: str, evaluation: str, flagged: bool) -> None:
        """One result of a safety evaluation (processors/safety.py decided `flagged`)."""
        key: tuple[str, ...] = (service, provider, model, self.limiters[sc.LABEL_EVALUATION](evaluation))
        evaluations, flags = self.safety_evaluations, self.safety_flagged
        if key not in evaluations:
            key = self.caps["safety_series"].admit(key)
            if key not in evaluations:  # both series born together, flagged at 0
                evaluations.add(key, 0)
                flags[key] = 0
                flags.created[key] = evaluations.created[key]
        evaluations[key] += 1
        if flagged:
            flags[key] += 1

    def record_duplicate(self, counted_scope: str, duplicate_scope: str) -> None:
        self.duplicates.add((counted_scope[:256], duplicate_scope[:256]), 1)

    def record_again(self, genai: bool) -> None:
        """A copy of a span received before (a sender's retry): what it records was counted with
        its first copy, so only the copy is counted (a model call's, or another span's)."""
        self.redelivered.add("genai" if genai else "other", 1)

    def record_tool_call(self, service: str, tool: str, status: str, served: bool = False) -> None:
        """One execute_tool span: a call this service made, or (`served`, a SERVER-kind span) a tool
        this service served, whoever called it; its labels decided here, when the request's
        records apply."""
        limiters = self.limiters
        key = (limiters[sc.LABEL_SERVICE](service), limiters[sc.LABEL_TOOL](tool), status)
        (self.tool_executions if served else self.tool_calls).add(key, 1)

    def record_guardrail_evaluation(self, service: str, guardrail: str, triggered: bool) -> None:
        """One apply_guardrail span with a verdict: whether its tripwire triggered."""
        limiters = self.limiters
        key = (
            limiters[sc.LABEL_SERVICE](service),
            limiters[sc.LABEL_GUARDRAIL](guardrail),
            "true" if triggered else "false",
        )
        self.guardrail_evaluations.add(key, 1)

    def record_agent_run(  # noqa: PLR0917
        self, service: str, agent: str, status: str, duration_s: float, trace_id: bytes, end_s: float
    ) -> None:
        """One invoke_agent span: the run's duration, start to end (its tools and model calls inside)."""
        limiters = self.limiters
        key: tuple[str, ...] = (limiters[sc.LABEL_SERVICE](service), limiters[sc.LABEL_AGENT](agent), status)
        histogram = self.agent_runs.get(key)
        if histogram is None:
            key = self.caps["agent_series"].admit(key)
            histogram = self.agent_runs.get(key)
        if histogram is None:
            histogram = self.agent_runs[key] = self.histogram(sc.AGENT_RUN_DURATION_BUCKETS, self.exemplars)
        histogram.observe(duration_s, trace_id, end_s)

    def count(self, table: Counts, reason: str, n: int = 1) -> None:
        table.add(reason, n)

    # -- exposition --------------------------------------------------------------------
    def expose(self, openmetrics: bool) -> str:
        self.settle()
        return _Writer(self, openmetrics).render()

    def snapshot(self) -> Registry:
        """A settled copy of everything `expose` reads. Cheap next to rendering (no text is
        made), so the event loop takes it and a worker thread renders it (`snapshot.expose`)
        while recording goes on: the copy is consistent and no thread iterates a live dict."""
        self.settle()
        copied = copy.copy(self)  # scalars and the immutable parts shared, containers copied
        copied._settlers = []
        copied.series = {labels: stats.copy() for labels, stats in self.series.items()}
        copied.quality = {key: h.copy() for key, h in self.quality.items()}
        copied.agent_runs = {key: h.copy() for key, h in self.agent_runs.items()}
        for name in ("unpriced", "usage_incomplete", "user_cost", "feature_cost", "duplicates", "tool_calls",
                     "tool_executions", "guardrail_evaluations",
                     "received", "redelivered", "invalid", "dropped", "rejected", "export_failures",
                     "safety_evaluations",
                     "safety_flagged"):  # fmt: skip
            setattr(copied, name, getattr(self, name).copy())
        copied.limiters = {name: copy.copy(limiter) for name, limiter in self.limiters.items()}
        copied.caps = {name: copy.copy(cap) for name, cap in self.caps.items()}
        return copied


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _timestamp(seconds: float) -> str:
    return f"{seconds:.3f}"


def _usd(quanta: int) -> str:
    return repr(quanta / QUANTA_PER_USD)


class _Writer:
    def __init__(self, registry: Registry, openmetrics: bool) -> None:
        self.r = registry
        self.om = openmetrics
        self.lines: list[str] = []
        # a series' label values recur in every family: each pair is escaped once per render
        self._pairs: dict[tuple[str, str], str] = {}
        self._bounds: dict[tuple[float, ...], list[str]] = {}

    def _inner(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        """The label pairs of a sample, without the braces ("" when none is written)."""
        allowed = self.r._allowed
        pairs = self._pairs
        parts = []
        for pair in zip(names, values, strict=True):
            text = pairs.get(pair)
            if text is None:
                n, v = pair
                text = pairs[pair] = f'{n}="{_escape(v)}"' if n in allowed or n in {"le", "kind"} else ""
            if text:
                parts.append(text)
        return ",".join(parts)

    def _labels(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        inner = self._inner(names, values)
        return "{" + inner + "}" if inner else ""

    def _les(self, bounds: tuple[float, ...]) -> list[str]:
        """The `le` pair of each bucket of `bounds`, +Inf last."""
        les = self._bounds.get(bounds)
        if les is None:
            les = self._bounds[bounds] = [f'le="{_number(float(b))}"' for b in (*bounds, math.inf)]
        return les

    def _exemplar(self, exemplar: tuple[bytes, float, float] | None) -> str:
        if not self.om or exemplar is None:
            return ""
        trace_id, value, timestamp = exemplar
        return f' # {{trace_id="{trace_id.hex()}"}} {_number(value)} {timestamp:.3f}'

    def _family(self, name: str, kind: str, help_: str) -> None:
        family = name[: -len("_total")] if self.om and kind == "counter" and name.endswith("_total") else name
        self.lines.append(f"# HELP {family} {help_}")
        self.lines.append(f"# TYPE {family} {kind}")

    def _sample(
        self, name: str, names: tuple[str, ...], values: tuple[str, ...], value: str, ex: str = ""
    ) -> None:
        self.lines.append(f"{name}{self._labels(names, values)} {value}{ex}")

    def _counter(  # noqa: PLR0917
        self,
        name: str,
        names: tuple[str, ...],
        values: tuple[str, ...],
        value: str,
        created: float,
        ex: str = "",
    ) -> None:
        self._counter_text(name, self._labels(names, values), value, created, ex)

    def _counter_text(self, name: str, labels: str, value: str, created: float, ex: str = "") -> None:
        """One counter series: its `_total` sample and, in OpenMetrics, its `_created` sample."""
        self.lines.append(f"{name}{labels} {value}{ex}")
        if self.om:
            self.lines.append(f"{name[: -len('_total')]}_created{labels} {_timestamp(created)}")

    def _histogram(
        self,
        name: str,
        names: tuple[str, ...],
        values: tuple[str, ...],
        h: Histogram,
        sum_text: str | None = None,
    ) -> None:
        inner = self._inner(names, values)
        labels = "{" + inner + "}" if inner else ""
        bucket = f"{name}_bucket{{{inner}," if inner else f"{name}_bucket{{"
        append = self.lines.append
        exemplars = h.exemplars if self.om else None
        cumulative = 0
        for index, (le, n) in enumerate(zip(self._les(h.bounds), h.counts, strict=True)):
            cumulative += n
            if exemplars is not None and exemplars[index] is not None:
                append(f"{bucket}{le}}} {cumulative}{self._exemplar(exemplars[index])}")
            else:
                append(f"{bucket}{le}}} {cumulative}")
        append(f"{name}_sum{labels} {sum_text if sum_text is not None else _number(h.sum)}")
        append(f"{name}_count{labels} {h.count}")
        if self.om:
            append(f"{name}_created{labels} {_timestamp(h.created)}")

    def render(self) -> str:
        r = self.r
        base = (sc.LABEL_SERVICE, sc.LABEL_PROVIDER, sc.LABEL_MODEL, sc.LABEL_OPERATION)
        # a series is made when a span's labels are decided, and shown once a call is recorded
        # there (a refused request records nothing: see Pipeline.process)
        series = sorted(item for item in r.series.items() if item[1].requests)

        self._family(sc.PROM_LLM_REQUESTS, "counter", "GenAI model calls, by outcome.")
        for labels, stats in series:
            requests = stats.requests
            for key, n in sorted(requests.items()):
                self._counter(
                    sc.PROM_LLM_REQUESTS,
                    (*base, sc.LABEL_STATUS, sc.LABEL_ERROR_TYPE),
                    (*labels, *key),
                    str(n),
                    requests.created[key],
                )
        self._family(
            sc.PROM_LLM_TOKENS, "counter", "Tokens; input includes cache, output includes reasoning."
        )
        for labels, stats in series:
            for token_type, n, created in zip(TOKEN_TYPES, stats.tokens, stats.stamps, strict=False):
                if n or token_type in ("input", "output"):
                    self._counter(
                        sc.PROM_LLM_TOKENS,
                        (*base, sc.LABEL_TOKEN_TYPE),
                        (*labels, token_type),
                        str(n),
                        stats.created if created is None else created,
                    )
        self._family(sc.PROM_LLM_COST, "counter", "Cost of priced calls in USD.")
        for labels, stats in series:
            if stats.cost_per_request is not None:
                self._counter(
                    sc.PROM_LLM_COST,
                    base,
                    labels,
                    _usd(stats.cost),
                    stats.cost_per_request.created,
                    self._exemplar(stats.cost_exemplar),
                )
        self._family(sc.PROM_LLM_COST_BREAKDOWN, "counter", "Locally priced cost in USD by token type.")
        for labels, stats in series:
            if any(stats.breakdown):
                created = stats.stamps[STAMP_BREAKDOWN]
                for cost_type, quanta in zip(COST_TYPES, stats.breakdown, strict=True):
                    self._counter(
                        sc.PROM_LLM_COST_BREAKDOWN,
                        (*base, sc.LABEL_COST_TYPE),
                        (*labels, cost_type),
                        _usd(quanta),
                        stats.created if created is None else created,
                    )
        self._family(
            sc.PROM_LLM_CACHE_SAVINGS, "counter", "USD saved by cache reads against the input price."
        )
        for labels, stats in series:
            if stats.savings:
                created = stats.stamps[STAMP_SAVINGS]
                self._counter(
                    sc.PROM_LLM_CACHE_SAVINGS,
                    base[:3],
                    labels[:3],
                    _usd(stats.savings),
                    stats.created if created is None else created,
                )
        self._family(sc.PROM_LLM_REQUEST_DURATION, "histogram", "Model call duration in seconds.")
        for labels, stats in series:
            for status, h in sorted(stats.duration.items()):
                self._histogram(sc.PROM_LLM_REQUEST_DURATION, (*base, sc.LABEL_STATUS), (*labels, status), h)
        self._family(
            sc.PROM_LLM_TIME_TO_FIRST_CHUNK, "histogram", "Time to the first streamed chunk in seconds."
        )
        for labels, stats in series:
            if stats.ttfc is not None:
                self._histogram(sc.PROM_LLM_TIME_TO_FIRST_CHUNK, base, labels, stats.ttfc)
        self._family(sc.PROM_LLM_COST_PER_REQUEST, "histogram", "Cost of one priced call in USD.")
        for labels, stats in series:
            if stats.cost_per_request is not None:
                self._histogram(
                    sc.PROM_LLM_COST_PER_REQUEST, base, labels, stats.cost_per_request, _usd(stats.cost)
                )
        self._family(
            sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND, "histogram", "Output tokens per generating second."
        )
        for labels, stats in series:
            if stats.tps is not None:
                self._histogram(sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND, base, labels, stats.tps)
        for name, help_, names, counts in (
            (sc.PROM_LLM_UNPRICED_REQUESTS, "Calls that could not be priced, by reason.",
             (sc.LABEL_PROVIDER, sc.LABEL_MODEL, sc.LABEL_REASON), r.unpriced),
            (sc.PROM_LLM_USAGE_INCOMPLETE,
             "Calls whose usage is known incomplete: their cost is a lower bound.",
             (sc.LABEL_SERVICE, sc.LABEL_PROVIDER, sc.LABEL_MODEL), r.usage_incomplete),
        ):  # fmt: skip
            self._family(name, "counter", help_)
            for key, n in sorted(counts.items()):
                self._counter(name, names, key, str(n), counts.created[key])
        for name, label, table in (
            (sc.PROM_LLM_USER_COST, sc.LABEL_USER, r.user_cost),
            (sc.PROM_LLM_FEATURE_COST, sc.LABEL_FEATURE, r.feature_cost),
        ):
            self._family(name, "counter", f"Cost in USD per {label} (top-N, the rest as other).")
            for key, quanta in sorted(table.items()):
                self._counter(name, (sc.LABEL_SERVICE, label), key, _usd(quanta), table.created[key])
        self._family(sc.PROM_LLM_QUALITY_SCORE, "histogram", "Evaluation scores on a 0-10 scale.")
        for key, h in sorted(r.quality.items(), key=lambda item: item[0]):
            self._histogram(sc.PROM_LLM_QUALITY_SCORE, (*base[:3], sc.LABEL_EVALUATION), key, h)
        for name, help_, counts in (
            (sc.PROM_LLM_SAFETY_EVALUATIONS, "Results of safety evaluations (hallucination, toxicity).",
             r.safety_evaluations),
            (sc.PROM_LLM_SAFETY_FLAGGED, "Results of safety evaluations that flagged the response.",
             r.safety_flagged),
        ):  # fmt: skip
            self._family(name, "counter", help_)
            for key, n in sorted(counts.items()):
                self._counter(name, (*base[:3], sc.LABEL_EVALUATION), key, str(n), counts.created[key])
        self._agents()
        self._health()
        if self.om:
            self.lines.append("# EOF")
        return "\n".join(self.lines) + "\n"

    def _agents(self) -> None:
        r = self.r
        self._family(sc.PROM_LLM_TOOL_CALLS, "counter", "Tool executions (execute_tool spans), by outcome.")
        names = (sc.LABEL_SERVICE, sc.LABEL_TOOL, sc.LABEL_STATUS)
        for key, n in sorted(r.tool_calls.items()):
            self._counter(sc.PROM_LLM_TOOL_CALLS, names, key, str(n), r.tool_calls.created[key])
        self._family(
            sc.PROM_LLM_TOOL_EXECUTIONS,
            "counter",
            "Tools this service served (SERVER execute_tool spans), by outcome.",
        )
        for key, n in sorted(r.tool_executions.items()):
            self._counter(sc.PROM_LLM_TOOL_EXECUTIONS, names, key, str(n), r.tool_executions.created[key])
        self._family(
            sc.PROM_LLM_AGENT_RUN_DURATION, "histogram", "Agent run (invoke_agent span) duration in seconds."
        )
        names = (sc.LABEL_SERVICE, sc.LABEL_AGENT, sc.LABEL_STATUS)
        for key, h in sorted(r.agent_runs.items(), key=lambda item: item[0]):
            self._histogram(sc.PROM_LLM_AGENT_RUN_DURATION, names, key, h)
        self._family(
            sc.PROM_LLM_GUARDRAIL_EVALUATIONS,
            "counter",
            "Guardrail verdicts (apply_guardrail spans), by tripwire.",
        )
        names = (sc.LABEL_SERVICE, sc.LABEL_GUARDRAIL, sc.LABEL_TRIGGERED)
        for key, n in sorted(r.guardrail_evaluations.items()):
            self._counter(
                sc.PROM_LLM_GUARDRAIL_EVALUATIONS, names, key, str(n), r.guardrail_evaluations.created[key]
            )

    def _health_counter(
        self, name: str, help_: str, label: str, table: dict[str, int], created: dict[str, float]
    ) -> None:
        self._family(name, "counter", help_)
        for value, n in sorted(table.items()):
            self._counter_text(name, f'{{{label}="{_escape(value)}"}}', str(n), created[value])

    def _health(self) -> None:
        r = self.r
        self._health_counter(
            sc.PROM_PROCESSOR_SPANS_RECEIVED,
            "Spans accepted, by kind.",
            "kind",
            r.received,
            r.received.created,
        )
        self._health_counter(
            sc.PROM_PROCESSOR_SPANS_REDELIVERED,
            "Copies of spans received before, counted nothing again, by kind.",
            "kind",
            r.redelivered,
            r.redelivered.created,
        )
        self._family(sc.PROM_PROCESSOR_SPANS_FORWARDED, "counter", "Spans the next hop acknowledged.")
        self._counter_text(sc.PROM_PROCESSOR_SPANS_FORWARDED, "", str(r.forwarded), r.created)
        for name, help_, table in (
            (sc.PROM_PROCESSOR_SPANS_INVALID, "GenAI spans forwarded unchanged, by reason.", r.invalid),
            (sc.PROM_PROCESSOR_SPANS_DROPPED, "Accepted spans never forwarded, by reason.", r.dropped),
            (sc.PROM_PROCESSOR_REQUESTS_REJECTED, "Export requests refused, by reason.", r.rejected),
            (sc.PROM_PROCESSOR_EXPORT_FAILURES, "Failed forwarding attempts, by reason.", r.export_failures),
        ):
            self._health_counter(name, help_, "reason", table, table.created)
        self._family(sc.PROM_PROCESSOR_QUEUE_DEPTH, "gauge", "Spans accepted and not yet forwarded.")
        self.lines.append(f"{sc.PROM_PROCESSOR_QUEUE_DEPTH} {r.queue_spans}")
        self._family(sc.PROM_PROCESSOR_QUEUE_CAPACITY, "gauge", "Queue capacity in spans.")
        self.lines.append(f"{sc.PROM_PROCESSOR_QUEUE_CAPACITY} {r.queue_capacity}")
        self._family(
            sc.PROM_PROCESSOR_DUPLICATE_SPANS,
            "counter",
            "Spans of a call another span was counted for, by scope pair.",
        )
        for (counted, duplicate), n in sorted(r.duplicates.items()):
            labels = f'{{counted_scope="{_escape(counted)}",duplicate_scope="{_escape(duplicate)}"}}'
            self._counter_text(
                sc.PROM_PROCESSOR_DUPLICATE_SPANS, labels, str(n), r.duplicates.created[(counted, duplicate)]
            )
        limiters: list[LabelLimiter | SeriesCap] = [lim for lim in r.limiters.values() if lim.overflow]
        limiters += [cap for cap in r.caps.values() if cap.overflow]
        self._health_counter(
            sc.PROM_PROCESSOR_SERIES_OVERFLOW,
            "Label values replaced by other, by label.",
            "label",
            {lim.name: lim.overflow for lim in limiters},
            {lim.name: lim.overflow_created for lim in limiters},
        )
        self._family(sc.PROM_PROCESSOR_PRICE_TABLE_INFO, "gauge", "The price table in use.")
        self.lines.append(f'{sc.PROM_PROCESSOR_PRICE_TABLE_INFO}{{version="{_escape(r.price_table)}"}} 1')
        self._family(sc.PROM_PROCESSOR_INFO, "gauge", "Processor build (accelerated: C request walk in use).")
        self.lines.append(f'{sc.PROM_PROCESSOR_INFO}{{accelerated="{str(r.accelerated).lower()}"}} 1')
