"""The fake provider over real HTTP: `FakeProvider` for tests, `main()` for `genai-otel fake-provider`.

Streams are written chunk by chunk (HTTP/1.1 chunked encoding, flushed each time), so the time to
first chunk a client measures is real. Request and response bodies are never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import select
import selectors
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self

from .core import Defaults, FakeResponse
from .engine import DEFAULT_MAX_RECORDED, RecordedRequest, Responder

logger = logging.getLogger(__name__)

_POLL_S = 0.05


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    timeout = 0.05  # bounds handle_request() if a readable listener had nothing to accept after all

    def __init__(self, address: tuple[str, int], responder: Responder) -> None:
        self.responder = responder
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (a timeout test, a cancelled stream) is routine, not a fault."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("client %s went away: %s", client_address, error)
        else:
            logger.exception("fake provider: request from %s failed", client_address)

    def serve_until_stopped(self) -> None:
        """Like serve_forever, but `stop()` wakes it at once instead of after a poll interval."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not self.stopping.is_set():
                        self.handle_request()  # the listener is readable: accepts at once

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they end promptly."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm plus delayed ACKs adds ~40 ms to every small response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake provider: " + format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline().strip():  # trailers, up to the empty line
                pass
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        raw_body = self._read_body()
        response = self.server.responder.handle(self.command, self.path, self.headers.items(), raw_body)
        try:
            if response.hang_s is not None:
                self._hang(response.hang_s)
            elif response.chunks is not None:
                self._send_stream(response)
            else:
                self._send_plain(response)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _wait(self, seconds: float) -> bool:
        """Sleep, but return False at once when the server stops."""
        return seconds <= 0 or not self.server.stopping.wait(seconds)

    def _hang(self, seconds: float) -> None:
        """Send nothing until the client gives up, the server stops, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], _POLL_S)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        break  # client closed its side
                except OSError:
                    break
        self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_head(self, response: FakeResponse, extra: dict[str, str]) -> None:
        self.send_response(response.status)
        for name, value in {**response.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_plain(self, response: FakeResponse) -> None:
        if not self._wait(response.delay_s):
            self._drop()
            return
        self._send_head(response, {"content-length": str(len(response.body))})
        if self.command == "HEAD":
            return
        if response.drop_connection:
            self.wfile.write(response.body[: len(response.body) // 2])
            self._drop()
            return
        self.wfile.write(response.body)
        self.wfile.flush()

    def _send_stream(self, response: FakeResponse) -> None:
        self._send_head(response, {"transfer-encoding": "chunked"})
        self.wfile.flush()
        for chunk in response.chunks or []:
            if not self._wait(chunk.delay_s):
                self._drop()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk.data), chunk.data))
            self.wfile.flush()
        if response.drop_connection:
            self._drop()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeProvider:
    """A fake OpenAI + Anthropic API on a real socket, served from a background thread.

    Usage: `with FakeProvider() as provider:` then
    `openai.OpenAI(base_url=provider.openai_base_url, api_key="x", max_retries=0)` or
    `anthropic.Anthropic(base_url=provider.base_url, api_key="x", max_retries=0)`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        ttfc_ms: float = 0,
        max_recorded: int = DEFAULT_MAX_RECORDED,
    ) -> None:
        defaults = Defaults(latency_ms=latency_ms, ttfc_ms=ttfc_ms)
        self.responder = Responder(defaults, max_recorded=max_recorded)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server(self._address, self.responder)
            self._thread = threading.Thread(
                target=self._server.serve_until_stopped,
                name=f"fake-provider:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stop()
        if thread is not None:
            thread.join(timeout=5)
        server.close_all_connections()
        server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(
                "the fake provider is not running; call start() or use it as a context manager"
            )
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Root URL; give it to the Anthropic SDK as `base_url`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Root URL plus `/v1`; give it to the OpenAI SDK as `base_url`."""
        return self.base_url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The last `max_recorded` requests received (health checks excluded), oldest first."""
        return self.responder.requests

    def clear_requests(self) -> None:
        self.responder.clear()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genai-otel fake-provider",
        description="Serve a fake OpenAI- and Anthropic-compatible API for tests, benchmarks and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind (0 picks a free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="total latency of plain responses")
    parser.add_argument("--ttfc-ms", type=float, default=0.0, help="delay before the first streamed chunk")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Nobody can read the request log of the command-line server: keep none.
        with FakeProvider(args.host, args.port, args.latency_ms, args.ttfc_ms, max_recorded=0) as provider:
            print(f"fake provider listening on {provider.base_url}", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
