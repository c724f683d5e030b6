"""In-process `httpx2` transports: the fake provider's responses without sockets (for benchmarks).

Both `openai` (3.x) and `anthropic` (2.x) take an `httpx2.Client` / `httpx2.AsyncClient`:

    client = openai.OpenAI(base_url="http://fake/v1", api_key="x",
                           http_client=httpx2.Client(transport=FakeTransport()))

Delays, hangs and dropped connections are reproduced the way a client would see them over the network:
a hang ends in `httpx2.ReadTimeout` once the request's read timeout passes (or in a disconnect after
30 s), a dropped connection in `httpx2.RemoteProtocolError` while the body is read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx2

from .core import Chunk, Defaults, FakeResponse
from .engine import DEFAULT_MAX_RECORDED, RecordedRequest, Responder

_DROPPED = "peer closed connection without sending complete message body"


def _path(request: httpx2.Request) -> str:
    return request.url.raw_path.decode("ascii", "replace")


def _hang_outcome(request: httpx2.Request, hang_s: float) -> tuple[float, Exception]:
    read_timeout = (request.extensions.get("timeout") or {}).get("read")
    if read_timeout is not None and read_timeout < hang_s:
        return float(read_timeout), httpx2.ReadTimeout("timed out", request=request)
    return hang_s, httpx2.RemoteProtocolError(
        "Server disconnected without sending a response.", request=request
    )


def _plan_body(response: FakeResponse) -> tuple[list[Chunk], bool]:
    """The body as (chunks, drop at end); plain bodies are one chunk (half of it when dropped)."""
    if response.chunks is not None:
        return response.chunks, response.drop_connection
    if response.drop_connection:
        return [Chunk(response.body[: len(response.body) // 2])], True
    return [Chunk(response.body)], False


class _SyncBody(httpx2.SyncByteStream):
    def __init__(self, chunks: list[Chunk], drop: bool, request: httpx2.Request) -> None:
        self._chunks, self._drop, self._request = chunks, drop, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk.delay_s > 0:
                time.sleep(chunk.delay_s)
            yield chunk.data
        if self._drop:
            raise httpx2.RemoteProtocolError(_DROPPED, request=self._request)


class _AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[Chunk], drop: bool, request: httpx2.Request) -> None:
        self._chunks, self._drop, self._request = chunks, drop, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            if chunk.delay_s > 0:
                await anyio.sleep(chunk.delay_s)
            yield chunk.data
        if self._drop:
            raise httpx2.RemoteProtocolError(_DROPPED, request=self._request)


class _FakeTransportBase:
    def __init__(
        self,
        latency_ms: float = 0,
        ttfc_ms: float = 0,
        responder: Responder | None = None,
        max_recorded: int = DEFAULT_MAX_RECORDED,
    ) -> None:
        defaults = Defaults(latency_ms=latency_ms, ttfc_ms=ttfc_ms)
        self.responder = responder or Responder(defaults, max_recorded=max_recorded)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.responder.requests

    def _respond(self, request: httpx2.Request, raw_body: bytes) -> FakeResponse:
        return self.responder.handle(request.method, _path(request), request.headers.multi_items(), raw_body)

    @staticmethod
    def _headers(response: FakeResponse) -> dict[str, str]:
        if response.chunks is None:
            return {**response.headers, "content-length": str(len(response.body))}
        return dict(response.headers)


class FakeTransport(_FakeTransportBase, httpx2.BaseTransport):
    """Synchronous in-process transport for `httpx2.Client(transport=...)`."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._respond(request, request.read())
        if response.hang_s is not None:
            wait, error = _hang_outcome(request, response.hang_s)
            time.sleep(wait)
            raise error
        if response.delay_s > 0:
            time.sleep(response.delay_s)
        chunks, drop = _plan_body(response)
        return httpx2.Response(
            response.status,
            headers=self._headers(response),
            stream=_SyncBody(chunks, drop, request),
            request=request,
        )


class AsyncFakeTransport(_FakeTransportBase, httpx2.AsyncBaseTransport):
    """Asynchronous in-process transport for `httpx2.AsyncClient(transport=...)`."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._respond(request, await request.aread())
        if response.hang_s is not None:
            wait, error = _hang_outcome(request, response.hang_s)
            await anyio.sleep(wait)
            raise error
        if response.delay_s > 0:
            await anyio.sleep(response.delay_s)
        chunks, drop = _plan_body(response)
        return httpx2.Response(
            response.status,
            headers=self._headers(response),
            stream=_AsyncBody(chunks, drop, request),
            request=request,
        )
