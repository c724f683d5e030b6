"""Forwards accepted requests to the next hop: bounded queue, retries, nothing dropped silently.

The queue is bounded in *spans* (accepted and not yet acknowledged by the next hop, in-flight
included). The service asks `has_room` before it accepts a request, so when the next hop is
slow or down the queue fills and the collector upstream is told to retry (RESOURCE_EXHAUSTED
with RetryInfo) rather than this process dropping anything. A batch is only ever dropped when
the next hop refuses it for good (a non-retryable status), when retries run past
`retry.max_elapsed_seconds`, or at shutdown after the grace period; each drop is counted in
`genai_otel_processor_spans_dropped_total{reason}`.

`submit` returns a future that completes when the request's spans are settled (acknowledged by
the next hop, or dropped and counted): the service holds the sender's answer until then, so a
crash of this process loses nothing the sender was told was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from typing import Final

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .config import ForwardConfig
from .metrics import Registry

logger = logging.getLogger(__name__)

EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
# The statuses after which the same request may succeed later (the collector's OTLP exporter
# retries the same set).
RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def retry_delay(metadata: object) -> float | None:
    """The RetryInfo delay in a status's details trailer, if the peer sent one."""
    try:
        for key, value in metadata or ():  # type: ignore[attr-defined]
            if key == RETRY_INFO_KEY:
                info = error_details_pb2.RetryInfo.FromString(value)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            if key == STATUS_DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # a malformed trailer from the peer is just ignored
        logger.debug("unreadable status details", exc_info=True)
    return None


class Forwarder:
    def __init__(self, config: ForwardConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        registry.queue_capacity = config.queue_max_spans
        self._queue: deque[tuple[bytes, int, asyncio.Future[None]]] = deque()
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None
        self._export: grpc.aio.UnaryUnaryMultiCallable | None = None

    # -- accepting --------------------------------------------------------------------
    def has_room(self, spans: int) -> bool:
        """Room for a request of `spans`; an empty queue takes any size, so nothing is refused forever."""
        depth = self.registry.queue_spans
        return depth == 0 or depth + spans <= self.config.queue_max_spans

    def submit(self, payload: bytes, spans: int) -> asyncio.Future[None]:
        """Queue an accepted request; the future completes once its spans are settled."""
        settled = asyncio.get_running_loop().create_future()
        self._queue.append((payload, spans, settled))
        self.registry.queue_spans += spans
        self._idle.clear()
        self._work.set()
        return settled

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(
            self.config.endpoint,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        self._workers = [asyncio.create_task(self._worker()) for _ in range(self.config.concurrency)]

    async def drain(self, grace_seconds: float) -> None:
        """Forward everything accepted, waiting at most `grace_seconds`; then count the rest as dropped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:
            _, spans, settled = self._queue.popleft()
            self._done(spans, (settled,), dropped="shutdown")
        if self._channel is not None:
            await self._channel.close()

    # -- sending ----------------------------------------------------------------------
    def _done(
        self, spans: int, waiters: tuple[asyncio.Future[None], ...], *, forwarded: int = 0, dropped: str = ""
    ) -> None:
        for settled in waiters:
            if not settled.done():
                settled.set_result(None)
        registry = self.registry
        registry.queue_spans -= spans
        registry.forwarded += forwarded
        if dropped and spans - forwarded:
            registry.count(registry.dropped, dropped, spans - forwarded)
            logger.warning("dropped %d spans: %s", spans - forwarded, dropped)
        if registry.queue_spans == 0:
            self._idle.set()

    async def _worker(self) -> None:
        while True:
            if not self._queue:
                self._work.clear()
                await self._work.wait()
                continue
            payload, spans, waiters = self._take()
            try:
                await self._send(payload, spans, waiters)
            except asyncio.CancelledError:
                self._done(spans, waiters, dropped="shutdown")
                raise

    def _take(self) -> tuple[bytes, int, tuple[asyncio.Future[None], ...]]:
        """The oldest queued request, with the ones after it that fit in `max_batch_bytes`.

        Serialized ExportTraceServiceRequests concatenate into one (protobuf appends repeated
        fields), so several accepted requests travel as one export: one RPC instead of several.
        """
        queue = self._queue
        payload, spans, settled = queue.popleft()
        room = self.config.max_batch_bytes - len(payload)
        if not queue or room < len(queue[0][0]):
            return payload, spans, (settled,)
        parts = [payload]
        waiters = [settled]
        while queue and len(queue[0][0]) <= room:
            more, count, settled = queue.popleft()
            parts.append(more)
            waiters.append(settled)
            spans += count
            room -= len(more)
        return b"".join(parts), spans, tuple(waiters)

    async def _send(self, payload: bytes, spans: int, waiters: tuple[asyncio.Future[None], ...]) -> None:
        assert self._export is not None
        retry = self.config.retry
        loop = asyncio.get_running_loop()
        started = loop.time()
        backoff = retry.initial_backoff_seconds
        registry = self.registry
        while True:
            try:
                response = await self._export(payload, timeout=self.config.timeout_seconds)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                registry.count(registry.export_failures, code.name.lower())
                if code not in RETRYABLE:
                    self._done(spans, waiters, dropped=f"rejected_{code.name.lower()}")
                    return
                delay = retry_delay(err.trailing_metadata())
                if delay is None:
                    delay = backoff * (1 + retry.jitter * (2 * random.random() - 1))
                    backoff = min(backoff * retry.multiplier, retry.max_backoff_seconds)
                if loop.time() - started + delay > retry.max_elapsed_seconds:
                    self._done(spans, waiters, dropped="retries_exhausted")
                    return
                await asyncio.sleep(delay)
                continue
            rejected = response.partial_success.rejected_spans if response.HasField("partial_success") else 0
            rejected = min(max(rejected, 0), spans)
            if rejected:
                logger.warning(
                    "next hop rejected %d spans: %s", rejected, response.partial_success.error_message
                )
            self._done(spans, waiters, forwarded=spans - rejected, dropped="next_hop_partial_success")
            return
