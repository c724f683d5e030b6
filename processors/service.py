"""`genai-otel processor`: the OTLP gRPC service, its /metrics endpoint and its lifecycle.

Usage:
    genai-otel processor [--listen HOST:PORT] [--metrics-listen HOST:PORT]
                         [--forward-endpoint HOST:PORT] [--config FILE] [--set KEY=VALUE ...]

Every setting (see `config.ProcessorConfig`) can also come from the YAML file or from
`GENAI_OTEL_PROCESSOR_*` environment variables; flags win over the environment, which wins
over the file.

Lifecycle: on SIGTERM (or SIGINT) the health service turns NOT_SERVING, new exports are
refused with UNAVAILABLE (the collector retries elsewhere or later), in-flight exports
finish, everything already accepted is forwarded, and the process exits within
`shutdown_grace_seconds`; anything still unforwarded then is counted as dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from genai_otel import semconv as sc

from .call_log import FLUSH_SECONDS, CallLog
from .config import ConfigError, LabelsConfig, ProcessorConfig, load_config
from .forwarder import RETRY_INFO_KEY, STATUS_DETAILS_KEY, Forwarder
from .http_guard import MetricsGuard
from .metrics import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Registry, hmac_label
from .pipeline import Pipeline
from .pricing import PRICE_TABLE_VERSION, PriceBook, PriceOverrides
from .scan import PURE_PYTHON_ENV, accelerated_available
from .security import listener_check, server_credentials, warn_plaintext_token
from .wire import WireError

logger = logging.getLogger(__name__)

TRACE_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
ERROR_LOG_INTERVAL_SECONDS: Final = 60.0
# /metrics: a connection that has not completed its TLS handshake, or sent a whole request, by then
# is closed (a silent client holds one socket, never the listener)
HTTP_IDLE_SECONDS: Final = 10.0


def _quiet_refusals(record: logging.LogRecord) -> bool:
    """aiohttp logs each request it refuses (malformed, an over-long header) as an ERROR with a
    traceback quoting the request; that is the client's fault, answered with 400, and a stream of
    them must not flood the log: one debug line each. Failures of our own handler keep their ERROR."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError):
        logger.debug("/metrics: refused a malformed request (%s)", type(error).__name__)
        return False
    return True


_http_log = logging.getLogger(__name__ + ".http")
_http_log.addFilter(_quiet_refusals)


class RateLimitedLog:
    """An ERROR log line at most once per `interval` seconds; the lines held back are counted and
    reported with the next one. The first line carries the traceback, later ones only the type."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last: float | None = None
        self.suppressed = 0

    def log(self, log: logging.Logger, message: str, *args: object, exc: BaseException | None = None) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            self.suppressed += 1
            return False
        first = self.last is None
        if self.suppressed:
            message += " (%d more since the last report)"
            args = (*args, self.suppressed)
        log.error(message, *args, exc_info=exc if first else None)
        self.last, self.suppressed = now, 0
        return True


def _retry_trailer(code: int, message: str, delay: float) -> tuple[tuple[str, bytes], ...]:
    seconds = int(delay)
    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9))
    )
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(info)
    # The collector (Go) reads RetryInfo from the rich status; the Python SDK's OTLP exporter
    # from its own trailer. Both get it.
    return ((STATUS_DETAILS_KEY, status.SerializeToString()), (RETRY_INFO_KEY, info.SerializeToString()))


def slow_path_warning() -> str:
    """Why the processor runs its pure-Python path, what that costs, and the one command that fixes it
    (the figures are the README's benchmarks: about 16,000 GenAI spans per CPU-second pure Python,
    over 100,000 accelerated)."""
    if accelerated_available():
        why, fix = f"disabled by {PURE_PYTHON_ENV}", f"unset {PURE_PYTHON_ENV}"
    else:
        why = "not built (no C compiler at install time, or a build stale against its source)"
        fix = "pip install --force-reinstall --no-deps genai-otel with gcc on PATH (or its platform wheel)"
    return (
        f"pure Python (the _wirescan extension is {why}): about 16,000 GenAI spans per CPU-second "
        f"instead of over 100,000; to fix: {fix}"
    )


def _user_label(labels: LabelsConfig) -> Callable[[str], str] | None:
    """The `user` label's transform for labels.user_id=hmac (the key file was checked at load)."""
    if labels.user_id != "hmac" or labels.user_id_hmac_key_file is None:
        return None
    return hmac_label(labels.user_id_hmac_key_file.read_bytes().strip())


class Processor:
    """The running service; `start` binds, `stop` drains. Used by `main` and by tests."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config
        overrides = (
            PriceOverrides.load(config.pricing.overrides_file) if config.pricing.overrides_file else None
        )
        self.registry = Registry(
            label_limits=config.labels.max_values,
            # labels.user_id=drop: user cost is kept per service, without the user label
            allowed_labels=[
                label
                for label in config.labels.allow
                if not (label == sc.LABEL_USER and config.labels.user_id == "drop")
            ],
            top_users=config.labels.top_users,
            top_features=config.labels.top_features,
            max_series=config.labels.max_series,
            user_label=_user_label(config.labels),
            exemplars=config.exemplars,
            price_table=PRICE_TABLE_VERSION,
        )
        self.call_log = (
            CallLog(
                config.call_log.path,
                config.call_log.max_bytes,
                config.call_log.backups,
                user=None if config.labels.user_id == "drop" else (_user_label(config.labels) or str),
            )
            if config.call_log.path
            else None
        )
        self.pipeline = Pipeline(
            self.registry,
            PriceBook(overrides, max_entries=config.pricing.cache_entries),
            max_tokens=config.limits.max_tokens_per_span,
            max_value_length=config.limits.max_attribute_length,
            trust_reported_cost=config.pricing.trust_reported_cost,
            duplicates_capacity=config.duplicates.max_spans,
            duplicates_window_seconds=config.duplicates.window_seconds,
            call_log=self.call_log,
            safety_thresholds=config.evaluations.safety_thresholds,
        )
        self.forwarder = Forwarder(config.forward, self.registry)
        self._auth = listener_check(config.auth)
        self.health = HealthServicer()
        self._error_log = RateLimitedLog(ERROR_LOG_INTERVAL_SECONDS)
        self.draining = False
        self.port = 0
        self.metrics_port = 0
        self._server: grpc.aio.Server | None = None
        self._http: asyncio.Server | None = None
        self._http_handler: web.Server | None = None
        self._call_log_flusher: asyncio.Task[None] | None = None

    # -- OTLP ---------------------------------------------------------------------------
    async def export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        registry = self.registry
        # First of all: an unauthenticated request is counted as that and nothing else.
        if self._auth is not None and not self._auth.allows(context.invocation_metadata()):
            registry.count(registry.rejected, "unauthenticated")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if self.draining:
            registry.count(registry.rejected, "shutting_down")
            context.set_trailing_metadata(
                _retry_trailer(code_pb2.UNAVAILABLE, "processor shutting down", 1.0)
            )
            await context.abort(grpc.StatusCode.UNAVAILABLE, "processor shutting down")
        try:
            blocks, spans = self.pipeline.split(request)
        except (WireError, IndexError) as exc:
            registry.count(registry.rejected, "malformed")
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"malformed ExportTraceServiceRequest: {exc}"
            )
        except Exception as exc:
            await self._internal_error(context, exc)
        if spans == 0:
            return b""
        if (too_large := self.forwarder.refusal(request)) is not None:
            registry.count(registry.rejected, "too_large")  # retrying can never fix it
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, too_large)
        if not self.forwarder.has_room(spans):
            registry.count(registry.rejected, "queue_full")
            delay = self.config.forward.backpressure_retry_after_seconds
            context.set_trailing_metadata(
                _retry_trailer(code_pb2.RESOURCE_EXHAUSTED, "processor queue full, retry later", delay)
            )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "processor queue full, retry later")
        # Accepted: from here on the request is counted and will be forwarded or counted dropped.
        try:
            payload = self.pipeline.process(request, blocks)
        except Exception as exc:  # a defect, not the sender's data: see _internal_error
            await self._internal_error(context, exc)
        settled = self.forwarder.submit(payload, spans)
        if self.config.forward.acknowledge == "forwarded":
            await self._until_settled(settled, context.time_remaining())
        return b""  # an empty ExportTraceServiceResponse: full success

    async def _internal_error(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        """Refuse one request whose processing raised.

        What the sender's bytes can get wrong is caught span by span and counted as invalid, and
        the fuzz tests feed the pipeline arbitrary requests; an exception that still reaches here
        is a defect. The request is refused for good (INVALID_ARGUMENT: retrying the same bytes
        would fail the same way), counted, and logged at most once per interval so that a stream
        of such requests cannot flood the log.
        """
        self.registry.count(self.registry.rejected, "internal_error")
        self._error_log.log(logger, "request refused: processing failed with %s", type(exc).__name__, exc=exc)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"processing failed: {type(exc).__name__}")

    async def _until_settled(self, settled: asyncio.Future[None], time_remaining: float | None) -> None:
        """Hold the answer until the forward settles, or until just before the sender gives up.

        Answering after the sender's deadline would make it send the spans again while they are
        still queued here: forwarded twice and counted twice. Only a waiter of our own is awaited
        (cheaper than wait_for + shield on every export): a sender that goes away (cancelled call,
        broken connection) cancels the waiter, never the queued request.
        """
        if settled.done():
            return
        wait = self.config.forward.timeout_seconds if time_remaining is None else time_remaining - 1.0
        if wait <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def release(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(wait, release)
        settled.add_done_callback(release)
        try:
            await waiter
        finally:
            timer.cancel()
            settled.remove_done_callback(release)

    # -- /metrics -----------------------------------------------------------------------
    async def _http_request(self, request: web.BaseRequest) -> web.StreamResponse:
        """/metrics, /healthz and / over aiohttp's HTTP/1.1 server; one answer per connection."""
        headers: dict[str, str] = {}
        if request.method not in ("GET", "HEAD"):
            status, ctype, body = 405, "text/plain", b"method not allowed\n"
        elif request.path == "/metrics" and not self._metrics_guard.authorized(
            request.headers.get("Authorization")
        ):
            status, ctype, body = 401, "text/plain", b"unauthorized\n"
            headers["WWW-Authenticate"] = self._metrics_guard.challenge
        elif request.path == "/metrics":
            openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
            # Copied on the loop (consistent, and cheap next to rendering); rendered in a
            # thread, so OTLP exports are served while a large exposition is written.
            snapshot = self.registry.snapshot()
            body = await asyncio.to_thread(lambda: snapshot.expose(openmetrics).encode())
            status = 200
            ctype = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        elif request.path in ("/healthz", "/"):
            ok = not self.draining
            status, ctype, body = (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"draining\n")
        else:
            status, ctype, body = 404, "text/plain", b"not found\n"
        headers["Content-Type"] = ctype
        headers["Server"] = "genai-otel"  # not aiohttp's default, which names its and Python's versions
        # A StreamResponse sends its headers on their own: web.Response would join them to the body
        # first (on Python before 3.12.9), one more copy of a many-megabyte exposition per scrape.
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        response.force_close()  # "Connection: close", as before: each scrape sees a rotated certificate
        await response.prepare(request)
        if request.method != "HEAD":
            await response.write(body)
        await response.write_eof()
        return response

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        limit = self.config.limits.max_receive_message_bytes
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)]
        )
        handler = grpc.method_handlers_generic_handler(
            TRACE_SERVICE,
            {"Export": grpc.unary_unary_rpc_method_handler(self.export)},  # raw bytes in and out
        )
        server.add_generic_rpc_handlers((handler,))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        # The health service shares the port but not the token check: health probes stay open.
        credentials = server_credentials(self.config.tls)
        if credentials is not None:
            self.port = server.add_secure_port(self.config.listen, credentials)
        else:
            self.port = server.add_insecure_port(self.config.listen)
            if self._auth is not None:
                warn_plaintext_token("OTLP listener", self.config.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.listen}")
        await self.forwarder.start()
        await server.start()
        self._server = server
        host, _, port = self.config.metrics_listen.rpartition(":")
        self._metrics_guard = MetricsGuard(self.config.metrics)
        # aiohttp's parser (llhttp) refuses an over-long header line or too many headers with 400;
        # a connection without a whole request within HTTP_IDLE_SECONDS is closed.
        self._http_handler = web.Server(
            self._http_request, keepalive_timeout=HTTP_IDLE_SECONDS, access_log=None, logger=_http_log
        )
        self._http = await asyncio.get_running_loop().create_server(
            self._http_handler,
            host,
            int(port),
            ssl=self._metrics_guard.ssl_context(),
            ssl_handshake_timeout=HTTP_IDLE_SECONDS if self.config.metrics.tls.cert_file else None,
        )
        self.metrics_port = self._http.sockets[0].getsockname()[1]
        if self.call_log is not None:
            self._call_log_flusher = asyncio.create_task(self._flush_call_log())
        for name in ("", TRACE_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "processor listening on %s (OTLP) and %s (metrics), forwarding to %s",
            self.port,
            self.metrics_port,
            self.config.forward.endpoint,
        )
        logger.info(
            "OTLP listener: %s, %s; forward: %s, %s",
            ("mutual TLS" if self.config.tls.client_ca_file else "TLS") if credentials else "plaintext",
            "bearer token required" if self._auth else "no token required",
            "TLS" if self.config.forward.tls.active else "plaintext",
            "bearer token sent" if self.config.forward.auth.enabled else "no token sent",
        )
        if self.pipeline.scanner.accelerated:
            logger.info("hot path: accelerated (C extension _wirescan: request walk, lane, re-assembly)")
        else:
            logger.warning("hot path: %s", slow_path_warning())

    async def _flush_call_log(self) -> None:
        """The call log's buffered lines reach the file within a second, busy or idle."""
        assert self.call_log is not None
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.call_log.flush()

    async def stop(self) -> None:
        """NOT_SERVING -> refuse new exports -> finish in-flight -> forward the queue -> exit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace_seconds
        self.draining = True
        for name in ("", TRACE_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._server is not None:
            await self._server.stop(grace=min(5.0, self.config.shutdown_grace_seconds / 2))
        await self.forwarder.drain(max(0.0, deadline - loop.time()))
        if self._http is not None:
            self._http.close()
            if self._http_handler is not None:
                await self._http_handler.shutdown(1.0)
            await self._http.wait_closed()
        if self._call_log_flusher is not None:
            self._call_log_flusher.cancel()
        if self.call_log is not None:
            self.call_log.close()
        logger.info(
            "processor stopped: %d spans forwarded, %s dropped",
            self.registry.forwarded,
            self.registry.dropped or "none",
        )


async def serve(config: ProcessorConfig) -> int:
    processor = Processor(config)
    await processor.start()
    # Everything alive now (the price table, the compiled caches, grpc's machinery) lives as long
    # as the process: out of the collector's reach, a collection walks only per-request objects.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutdown requested: draining")
    await processor.stop()
    return 0


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="genai-otel processor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", help="OTLP gRPC listen address HOST:PORT")
    parser.add_argument("--metrics-listen", help="Prometheus /metrics listen address HOST:PORT")
    parser.add_argument("--forward-endpoint", help="next hop OTLP gRPC endpoint HOST:PORT")
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by its dotted key, e.g. forward.queue_max_spans=50000",
    )
    return parser.parse_args(argv)


def flags_from_args(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        target = flags
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    if args.listen:
        flags["listen"] = args.listen
    if args.metrics_listen:
        flags["metrics_listen"] = args.metrics_listen
    if args.forward_endpoint:
        flags.setdefault("forward", {})["endpoint"] = args.forward_endpoint
    return flags


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(flags_from_args(args), args.config)
    except ConfigError as exc:
        print(f"genai-otel processor: {exc}", file=sys.stderr)
        return 2
    # A fault in the C extension prints every thread's Python stack before the process dies.
    faulthandler.enable()
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(serve(config))
    except (OSError, ValueError) as exc:
        print(f"genai-otel processor: {exc}", file=sys.stderr)
        return 1
