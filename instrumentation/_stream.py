"""Stream proxies: the span of a streamed call ends exactly once, however the stream ends.

The application gets a `wrapt.ObjectProxy` of the SDK's stream. Each chunk goes through the
provider's accumulator; the span ends (once) when the stream is exhausted, fails, is closed,
leaves its ``with`` block, or is garbage-collected without any of those. The sync and the
async proxy differ only in the iteration protocol; their bookkeeping is shared.
"""

from __future__ import annotations

import logging
from time import perf_counter
from types import TracebackType
from typing import Any, Protocol

import wrapt
from genai_otel.instrumentation._core import Call, Outcome

logger = logging.getLogger(__name__)


class Accumulator(Protocol):
    def add(self, chunk: Any) -> None: ...

    def outcome(self) -> Outcome: ...


class _ChunkReader:
    """The per-chunk work. A plain object: every attribute read on a `wrapt` proxy costs several
    times one on a slotted object, so the proxy makes one read per chunk, of this."""

    __slots__ = ("accumulator", "call")

    def __init__(self, call: Call, accumulator: Accumulator) -> None:
        self.call = call
        self.accumulator = accumulator

    def __call__(self, chunk: Any) -> None:
        call = self.call
        if call.first_chunk_at is None:
            call.first_chunk_at = perf_counter()
        try:
            self.accumulator.add(chunk)
        except Exception:
            logger.debug("could not read a stream chunk", exc_info=True)


class _StreamProxy(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, call: Call, accumulator: Accumulator) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_accumulator = accumulator
        self._self_chunk = _ChunkReader(call, accumulator)

    def _self_finish(self, error: BaseException | None = None) -> None:
        call = self._self_call
        if not call.open:
            return
        try:
            outcome: Outcome | None = self._self_accumulator.outcome()
        except Exception:
            logger.debug("could not summarise a stream", exc_info=True)
            outcome = None
        call.end(outcome, error)

    def __del__(self) -> None:
        # Abandoned without being exhausted or closed: keep what is known.
        self._self_finish()


class SyncStreamProxy(_StreamProxy):
    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            self._self_finish()
            raise
        except BaseException as error:
            self._self_finish(error)
            raise
        self._self_chunk(chunk)
        return chunk

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_finish()

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            self._self_finish()


class AsyncStreamProxy(_StreamProxy):
    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_finish()
            raise
        except BaseException as error:
            self._self_finish(error)
            raise
        self._self_chunk(chunk)
        return chunk

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_finish()

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            self._self_finish()


def finish_stream(stream: Any) -> None:
    """Ends the span of `stream` if it is one of our proxies (for SDK helpers that bypass close())."""
    finish = getattr(stream, "_self_finish", None)
    if finish is not None and isinstance(stream, _StreamProxy):
        finish()
