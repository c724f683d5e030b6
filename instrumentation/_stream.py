"""Stream proxies: the span of a streamed call ends exactly once, however the stream ends.

The application gets a `wrapt.ObjectProxy` of the SDK's stream: `isinstance`, attributes, `close()`
and the ``with`` statement behave as the SDK's own object. Iterating it hands out one generator
over the SDK's own iterator (the same for ``for`` loops and ``next()``), so a chunk costs one
generator step and the provider's accumulator, not a Python-level ``__next__`` on the proxy: the
least any instrumentation that sees every chunk can do. The first chunk's time is noted once,
outside the per-chunk loop.

Where the request rules out what the middle of a stream can carry (no tools declared, one choice,
no content capture), the provider reads no chunk as it passes: the generator keeps the last
`tail` chunks (`collections.deque` with a bound), and the accumulator reads the first chunk and
that tail when the call ends: the finish reason and usage come in a stream's last chunks (OpenAI
chat's finish chunk then its usage chunk; the Responses API's final event; Anthropic's
`message_delta` before `message_stop`; Gemini's last chunk; Converse's `messageStop` and
`metadata`). A chunk then costs one generator step and one append, less than reading a field of
a pydantic chunk (CPython 3.11 cannot specialise that read: pydantic's models define
``__getattr__``).

The call ends (once, through `StreamState.finish`) when the stream is exhausted, fails, is closed,
leaves its ``with`` block, or is dropped without any of those. Dropped is the subtle one: a ``for``
loop over ``create(stream=True)`` keeps only the generator, not the proxy, so the state is held
by both and ends the call from ``__del__`` when the last of them goes (a suspended generator also
ends it when it is closed). The sync and async proxies differ only in the iteration protocol.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from time import perf_counter
from types import TracebackType
from typing import Any, Protocol

import wrapt
from genai_otel.instrumentation._core import Call, Outcome

logger = logging.getLogger(__name__)

# Chunks a stream read at its end keeps: its last two carry what the call needs, one spare.
TAIL = 3


class Accumulator(Protocol):
    """A provider's reading of its stream: `first` gets the first chunk (what it alone must
    tell, such as the response id, is read there once), `add` every later one."""

    def first(self, chunk: Any) -> None: ...

    def add(self, chunk: Any) -> None: ...

    def outcome(self) -> Outcome: ...


class StreamState:
    """One streamed call and its accumulator. Held by the proxy and by its chunk generator,
    never by the SDK's stream (no cycle), so it is freed, and ends an abandoned call, as soon
    as neither is left."""

    __slots__ = ("accumulator", "call", "tail")

    def __init__(self, call: Call, accumulator: Accumulator, tail: int = 0) -> None:
        self.call = call
        self.accumulator = accumulator
        # The last chunks after the first, read when the call ends (`tail` > 0), else None.
        self.tail: deque[Any] | None = deque(maxlen=tail) if tail > 0 else None

    def finish(self, error: BaseException | None = None) -> None:
        """Ends the call with what the chunks told (run once; never raises)."""
        call = self.call
        if not call.open:
            return
        try:
            accumulator = self.accumulator
            tail = self.tail
            if tail:
                self.tail = None
                for chunk in tail:
                    try:
                        accumulator.add(chunk)
                    except Exception as unread:  # not `error`: the except would unbind it
                        _unread(unread)
            outcome: Outcome | None = accumulator.outcome()
        except Exception:
            logger.debug("could not summarise a stream", exc_info=True)
            outcome = None
        call.end(outcome, error)

    def __del__(self) -> None:
        # Abandoned without being exhausted or closed: keep what is known.
        if self.call.open:
            self.finish()


def _unread(error: Exception) -> None:
    logger.debug("could not read a stream chunk", exc_info=error)


def _chunks(stream: Any, state: StreamState) -> Iterator[Any]:
    accumulator = state.accumulator
    add = accumulator.add
    try:
        iterator = iter(stream)
        for chunk in iterator:
            state.call.first_chunk_at = perf_counter()
            try:
                accumulator.first(chunk)
            except Exception as error:
                _unread(error)
            yield chunk
            break
        else:
            state.finish()
            return
        if state.tail is not None:  # read when the call ends
            keep = state.tail.append
            for chunk in iterator:
                keep(chunk)
                yield chunk
        else:
            for chunk in iterator:
                try:
                    add(chunk)
                except Exception as error:
                    _unread(error)
                yield chunk
    except GeneratorExit:  # closed or collected while suspended: left early, not failed
        state.finish()
        raise
    except BaseException as error:
        state.finish(error)
        raise
    state.finish()


async def _async_chunks(stream: Any, state: StreamState) -> AsyncIterator[Any]:
    accumulator = state.accumulator
    add = accumulator.add
    try:
        iterator = stream.__aiter__()
        async for chunk in iterator:
            state.call.first_chunk_at = perf_counter()
            try:
                accumulator.first(chunk)
            except Exception as error:
                _unread(error)
            yield chunk
            break
        else:
            state.finish()
            return
        if state.tail is not None:
            keep = state.tail.append
            async for chunk in iterator:
                keep(chunk)
                yield chunk
        else:
            async for chunk in iterator:
                try:
                    add(chunk)
                except Exception as error:
                    _unread(error)
                yield chunk
    except GeneratorExit:
        state.finish()
        raise
    except BaseException as error:
        state.finish(error)
        raise
    state.finish()


class _StreamProxy(wrapt.ObjectProxy):
    # slots, not an instance dict: one object less per streamed call
    __slots__ = ("_self_chunks", "_self_state")
    _self_state: StreamState

    def _self_finish(self, error: BaseException | None = None) -> None:
        self._self_state.finish(error)


class SyncStreamProxy(_StreamProxy):
    __slots__ = ()

    def __init__(self, wrapped: Any, call: Call, accumulator: Accumulator, tail: int = 0) -> None:
        wrapt.ObjectProxy.__init__(self, wrapped)
        state = StreamState(call, accumulator, tail)
        self._self_state = state
        self._self_chunks = _chunks(wrapped, state)

    def __iter__(self) -> Iterator[Any]:
        return self._self_chunks

    def __next__(self) -> Any:
        return next(self._self_chunks)

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
    __slots__ = ()

    def __init__(self, wrapped: Any, call: Call, accumulator: Accumulator, tail: int = 0) -> None:
        wrapt.ObjectProxy.__init__(self, wrapped)
        state = StreamState(call, accumulator, tail)
        self._self_state = state
        self._self_chunks = _async_chunks(wrapped, state)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._self_chunks

    def __anext__(self) -> Any:
        return self._self_chunks.__anext__()

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


def chunk_generator(stream: Any, call: Call, accumulator: Accumulator, tail: int = 0) -> Iterator[Any]:
    """In place of an SDK stream that is itself a plain generator (google-genai's), a generator:
    it iterates, closes (`close()` ends the call) and is collected as one, with no proxy object
    and no proxy frame per call."""
    return _chunks(stream, StreamState(call, accumulator, tail))


def async_chunk_generator(
    stream: Any, call: Call, accumulator: Accumulator, tail: int = 0
) -> AsyncIterator[Any]:
    """The async twin of `chunk_generator`, for a plain async generator (`aclose()` ends the call)."""
    return _async_chunks(stream, StreamState(call, accumulator, tail))


def finish_stream(stream: Any) -> None:
    """Ends the span of `stream` if it is one of our proxies (for SDK helpers that bypass close())."""
    if isinstance(stream, _StreamProxy):
        stream._self_finish()
