"""Forwards accepted requests to the next hop: bounded queue, retries, nothing dropped silently.

The queue is bounded in *spans* (accepted and not yet acknowledged by the next hop, in-flight
and waiting-to-retry included). The service asks `has_room` before it accepts a request, so
when the next hop is slow or down the queue fills and the collector upstream is told to retry
(RESOURCE_EXHAUSTED with RetryInfo) rather than this process dropping anything.

One sender's request never shares another's fate:
- Requests waiting in the queue travel together as one export (protobuf concatenation), but
  the export remembers its parts. When the next hop refuses it for good (a non-retryable
  status, or "message larger than max"), each part is resent alone with its own retry budget,
  so only the part the next hop really refuses is dropped.
- No export is larger than `max_message_bytes` (the next hop's receive limit): a larger
  request is split by span into pieces that fit. A "larger than max" answer anyway (the next
  hop's limit is lower than configured) splits the export again, by part, then in halves by
  span, never retrying the same bytes; one span that still does not fit is dropped.
- A failed export does not hold a forward slot while it waits to retry: it waits in a delayed
  heap with its own deadline (`retry.max_elapsed_seconds` after its first attempt) and backoff,
  and the workers forward other requests meanwhile. Only while the next hop has answered
  nothing but failures since then, and 2 x `concurrency` exports already wait to retry, do
  fresh requests stay queued (their retry clocks not started), as they would behind a down hop.

A span is dropped only when the next hop refuses it for good, when its retries run past
`retry.max_elapsed_seconds`, when it cannot fit in any export, or at shutdown after the grace
period; each drop is counted in `genai_otel_processor_spans_dropped_total{reason}`.

`submit` returns a future that completes when every piece of the request is settled
(acknowledged by the next hop, or dropped and counted): the service holds the sender's answer
until then (`forward.acknowledge=forwarded`), so a crash of this process loses nothing the
sender was told was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Final

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .config import ForwardConfig
from .metrics import Registry
from .nexthop import RETRY_INFO_KEY, RETRYABLE, STATUS_DETAILS_KEY, retry_delay, too_large
from .security import channel_credentials, channel_options, forward_token, warn_plaintext_token
from .wire import WireError, largest_single_span_export, split_by_size

__all__ = ["RETRYABLE", "RETRY_INFO_KEY", "STATUS_DETAILS_KEY", "Forwarder", "retry_delay"]

logger = logging.getLogger(__name__)

EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# What enrichment may add to one span and its framing (measured: 366 bytes for a priced span,
# 404 with an error category; restated names add at most limits.max_attribute_length each); a
# span that does not fit with this much room is refused before anything is counted.
ENRICHMENT_HEADROOM_BYTES: Final = 4096
TOO_LARGE: Final = "too_large"


class Settlement:
    """The future the service awaits for one accepted request, done once all its pieces are."""

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.pending = 1  # pieces of the request not yet settled

    def divided(self, pieces: int) -> None:
        """The piece being settled became `pieces` pieces."""
        self.pending += pieces - 1

    def settle(self) -> None:
        self.pending -= 1
        if self.pending <= 0 and not self.future.done():
            self.future.set_result(None)


# an accepted request (or a piece of one), its span count, and whom its settling concerns
Part = tuple[bytes, int, Settlement]


@dataclass(slots=True, eq=False)
class Export:
    """Parts that travel as one RPC, and their retry state."""

    parts: list[Part]
    spans: int
    deadline: float | None = None  # loop time; set at the first attempt
    backoff: float = 0.0
    failed: bool = False  # waiting to retry after a retryable failure

    def payload(self) -> bytes:
        return self.parts[0][0] if len(self.parts) == 1 else b"".join(p for p, _, _ in self.parts)


class Forwarder:
    def __init__(self, config: ForwardConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        registry.queue_capacity = config.queue_max_spans
        self._queue: deque[Part] = deque()
        self._delayed: list[tuple[float, int, Export]] = []  # heap by the time an export is due
        self._order = itertools.count()
        self._retrying = 0  # exports with `failed` set: in the heap or in flight
        self._last_ok = self._last_failed = 0.0  # loop times of the latest answers
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None
        self._export: grpc.aio.UnaryUnaryMultiCallable | None = None
        self._token = forward_token(config.auth)

    # -- accepting --------------------------------------------------------------------
    def has_room(self, spans: int) -> bool:
        """Room for a request of `spans`; an empty queue takes any size, so nothing is refused forever."""
        depth = self.registry.queue_spans
        return depth == 0 or depth + spans <= self.config.queue_max_spans

    def refusal(self, request: bytes) -> str | None:
        """Why `request` can never be forwarded (a span too large for any export), or None."""
        limit = self.config.max_message_bytes
        if len(request) + ENRICHMENT_HEADROOM_BYTES <= limit:
            return None  # no one-span piece of it can be larger than the whole
        largest = largest_single_span_export(request)
        if largest + ENRICHMENT_HEADROOM_BYTES <= limit:
            return None
        return (
            f"a span of this request takes {largest} bytes with its Resource and Scope; with "
            f"{ENRICHMENT_HEADROOM_BYTES} bytes for the cost attributes it cannot fit in the next "
            f"hop's {limit}-byte limit (forward.max_message_bytes)"
        )

    def submit(self, payload: bytes, spans: int) -> asyncio.Future[None]:
        """Queue an accepted request; the future completes once all its spans are settled."""
        self.registry.queue_spans += spans
        self._idle.clear()
        settlement = Settlement(asyncio.get_running_loop().create_future())
        limit = self.config.max_message_bytes
        if len(payload) <= limit:
            self._queue.append((payload, spans, settlement))
        else:
            pieces = self._pieces(payload, spans, limit)
            settlement.divided(len(pieces))
            for piece, count in pieces:
                if len(piece) > limit:
                    logger.warning("a span of %d bytes cannot fit in any export", len(piece))
                    self._done(count, dropped=TOO_LARGE)
                    settlement.settle()
                elif count:
                    self._queue.append((piece, count, settlement))
                else:
                    settlement.settle()
        self._work.set()
        return settlement.future

    def _pieces(self, payload: bytes, spans: int, limit: int) -> list[tuple[bytes, int]]:
        """`payload` split by span into pieces of at most `limit` bytes (but for lone spans);
        their span counts add up to `spans` whatever happens, so the queue's accounting holds."""
        try:
            pieces = split_by_size(payload, limit)
        except WireError:
            logger.exception("cannot split a request of %d bytes", len(payload))
            return [(payload, spans)]  # sent whole: the next hop's answer decides
        counted = sum(count for _, count in pieces)
        if counted != spans:
            logger.error("split found %d spans where the request walk found %d", counted, spans)
            last, count = pieces[-1]
            pieces[-1] = (last, count + spans - counted)
        return pieces

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        options: list[tuple[str, str | int]] = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        credentials = channel_credentials(self.config.tls)
        if credentials is not None:
            options += channel_options(self.config.tls)
            self._channel = grpc.aio.secure_channel(self.config.endpoint, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self.config.endpoint, options=options)
            if self._token is not None:
                warn_plaintext_token("forward", self.config.endpoint)
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        self._workers = [asyncio.create_task(self._worker()) for _ in range(self.config.concurrency)]

    async def drain(self, grace_seconds: float) -> None:
        """Forward everything accepted (retries included), waiting at most `grace_seconds`; then
        count the rest as dropped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._delayed:
            self._finish(heapq.heappop(self._delayed)[2], dropped="shutdown")
        while self._queue:
            _, spans, settlement = self._queue.popleft()
            self._done(spans, dropped="shutdown")
            settlement.settle()
        if self._channel is not None:
            await self._channel.close()

    # -- accounting -------------------------------------------------------------------
    def _done(self, spans: int, *, forwarded: int = 0, dropped: str = "") -> None:
        registry = self.registry
        registry.queue_spans -= spans
        registry.forwarded += forwarded
        if dropped and spans - forwarded:
            registry.count(registry.dropped, dropped, spans - forwarded)
            logger.warning("dropped %d spans: %s", spans - forwarded, dropped)
        if registry.queue_spans == 0:
            self._idle.set()

    def _finish(self, export: Export, *, forwarded: int = 0, dropped: str = "") -> None:
        self._leave_retry(export)
        self._done(export.spans, forwarded=forwarded, dropped=dropped)
        for _, _, settlement in export.parts:
            settlement.settle()

    def _leave_retry(self, export: Export) -> None:
        if export.failed:
            export.failed = False
            self._retrying -= 1
            self._work.set()  # fresh requests may have been held back for this one

    def _schedule(self, export: Export, due: float) -> None:
        heapq.heappush(self._delayed, (due, next(self._order), export))
        self._work.set()

    # -- sending ----------------------------------------------------------------------
    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            export = self._next(loop.time())
            if export is None:
                self._work.clear()
                timeout = max(0.0, self._delayed[0][0] - loop.time()) if self._delayed else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), timeout)
                continue
            try:
                await self._attempt(export)
            except asyncio.CancelledError:
                self._finish(export, dropped="shutdown")
                raise

    def _next(self, now: float) -> Export | None:
        """Due retries and split parts first (older data), then fresh requests, unless the next
        hop seems down and enough exports already wait to retry."""
        if self._delayed and self._delayed[0][0] <= now:
            return heapq.heappop(self._delayed)[2]
        hop_answering = self._last_ok >= self._last_failed
        if self._queue and (hop_answering or self._retrying < 2 * self.config.concurrency):
            return self._take()
        return None

    def _take(self) -> Export:
        """The oldest queued request, with the ones after it that fit in `max_batch_bytes`.

        Serialized ExportTraceServiceRequests concatenate into one (protobuf appends repeated
        fields), so several accepted requests travel as one export: one RPC instead of several.
        """
        queue = self._queue
        first = queue.popleft()
        parts = [first]
        spans = first[1]
        room = self.config.batch_bytes - len(first[0])
        while queue and len(queue[0][0]) <= room:
            part = queue.popleft()
            parts.append(part)
            spans += part[1]
            room -= len(part[0])
        return Export(parts, spans)

    async def _attempt(self, export: Export) -> None:
        assert self._export is not None
        retry = self.config.retry
        loop = asyncio.get_running_loop()
        if export.deadline is None:
            export.deadline = loop.time() + retry.max_elapsed_seconds
            export.backoff = retry.initial_backoff_seconds
        registry = self.registry
        try:
            response = await self._export(
                export.payload(),
                timeout=self.config.timeout_seconds,
                metadata=self._token.metadata() if self._token is not None else None,
            )
        except grpc.aio.AioRpcError as err:
            code = err.code()
            registry.count(registry.export_failures, code.name.lower())
            if too_large(code, err.details()):
                self._refused(export, TOO_LARGE, loop.time())
                return
            if code not in RETRYABLE:
                self._refused(export, f"rejected_{code.name.lower()}", loop.time())
                return
            now = self._last_failed = loop.time()
            delay = retry_delay(err.trailing_metadata())
            if delay is None:
                delay = export.backoff * (1 + retry.jitter * (2 * random.random() - 1))
                export.backoff = min(export.backoff * retry.multiplier, retry.max_backoff_seconds)
            if now + delay > export.deadline:
                self._finish(export, dropped="retries_exhausted")
                return
            if not export.failed:
                export.failed = True
                self._retrying += 1
            self._schedule(export, now + delay)
            return
        self._last_ok = loop.time()
        rejected = response.partial_success.rejected_spans if response.HasField("partial_success") else 0
        rejected = min(max(rejected, 0), export.spans)
        if rejected:
            logger.warning("next hop rejected %d spans: %s", rejected, response.partial_success.error_message)
        self._finish(export, forwarded=export.spans - rejected, dropped="next_hop_partial_success")

    def _refused(self, export: Export, reason: str, now: float) -> None:
        """The next hop will never take these bytes: resend the parts alone (each with a budget
        of its own), or a lone too-large part in halves by span; drop only what cannot be split."""
        pieces: list[Part] = []
        if len(export.parts) > 1:
            pieces = export.parts
        elif reason == TOO_LARGE and export.spans > 1:
            payload, spans, settlement = export.parts[0]
            pieces = [
                (piece, count, settlement)
                for piece, count in self._pieces(payload, spans, max(1, len(payload) // 2))
            ]
            if len(pieces) > 1:
                settlement.divided(len(pieces))
        if len(pieces) < 2:
            self._finish(export, dropped=reason)
            return
        logger.info("next hop refused an export of %d spans (%s): resending it in %d parts",
                    export.spans, reason, len(pieces))  # fmt: skip
        self._leave_retry(export)
        for piece in pieces:
            self._schedule(Export([piece], piece[1]), now)
