"""The shared stream proxy: every way a stream can end ends its span exactly once.

A stand-in for the SDKs' stream objects (the same shape as openai's and anthropic's `Stream`:
`__iter__` a generator over one shared iterator, `__next__`, `close()`, the ``with`` statement)
and a counting accumulator, so each path is checked on its own; the provider test modules run
the same paths through the real SDKs.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from genai_otel.instrumentation._core import Outcome, Telemetry, start_call
from genai_otel.instrumentation._stream import TAIL, AsyncStreamProxy, SyncStreamProxy, finish_stream
from opentelemetry.trace import StatusCode
from otel_fixtures import Otel

from genai_otel import semconv

CHUNKS = 5


class Cut(ConnectionError):
    pass


class SdkStream:
    def __init__(self, fail_after: int | None = None) -> None:
        self._iterator = self._produce(fail_after)
        self.closed = False
        self.entered = False

    @staticmethod
    def _produce(fail_after: int | None) -> Iterator[str]:
        for index in range(CHUNKS):
            if index == fail_after:
                raise Cut("connection cut")
            yield f"chunk-{index}"

    def __iter__(self) -> Iterator[str]:
        yield from self._iterator

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> SdkStream:
        self.entered = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncSdkStream:
    def __init__(self, fail_after: int | None = None) -> None:
        self._iterator = self._produce(fail_after)
        self.closed = False

    @staticmethod
    async def _produce(fail_after: int | None) -> AsyncIterator[str]:
        for index in range(CHUNKS):
            if index == fail_after:
                raise Cut("connection cut")
            yield f"chunk-{index}"

    async def __aiter__(self) -> AsyncIterator[str]:
        async for item in self._iterator:
            yield item

    async def __anext__(self) -> str:
        return await self._iterator.__anext__()

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> AsyncSdkStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Counting:
    """Outcome: the first chunk as the response id, the chunks seen as output tokens."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on

    def first(self, chunk: str) -> None:
        self.add(chunk)

    def add(self, chunk: str) -> None:
        if chunk == self.fail_on:
            raise ValueError("accumulator bug")
        self.seen.append(chunk)

    def outcome(self) -> Outcome:
        outcome = Outcome()
        outcome.response_id = self.seen[0] if self.seen else None
        outcome.output_tokens = len(self.seen)
        return outcome


def _call(otel: Otel) -> Any:
    telemetry = Telemetry("test", "openai", otel.tracer_provider, otel.meter_provider)
    call = start_call(
        telemetry, "chat", model="m", server_address=None, server_port=None, request_attributes={}
    )
    call.detach()
    return call


def _sync(otel: Otel, stream: Any = None, accumulator: Any = None) -> SyncStreamProxy:
    return SyncStreamProxy(stream or SdkStream(), _call(otel), accumulator or Counting())


def _async(otel: Otel, stream: Any = None, accumulator: Any = None, tail: int = 0) -> AsyncStreamProxy:
    return AsyncStreamProxy(stream or AsyncSdkStream(), _call(otel), accumulator or Counting(), tail)


def _ended(otel: Otel) -> dict[str, Any]:
    (span,) = otel.spans()
    assert span.end_time is not None
    return dict(span.attributes or {})


def test_a_for_loop_over_the_call_keeps_the_span_open_until_the_last_chunk(otel: Otel) -> None:
    received = []
    for chunk in _sync(otel):  # the loop holds the chunk generator only; the proxy is gone
        gc.collect()
        assert otel.spans() == []
        received.append(chunk)
    attributes = _ended(otel)
    assert received == [f"chunk-{index}" for index in range(CHUNKS)]
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == CHUNKS
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "chunk-0"
    assert attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    ((_, point),) = otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
    assert point.count == 1


def test_next_and_iteration_share_one_pass(otel: Otel) -> None:
    stream = _sync(otel)
    assert next(stream) == "chunk-0"
    assert iter(stream) is iter(stream)
    assert list(stream) == [f"chunk-{index}" for index in range(1, CHUNKS)]
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == CHUNKS
    assert list(stream) == []
    with pytest.raises(StopIteration):
        next(stream)
    assert len(otel.spans()) == 1


def test_an_empty_stream_ends_without_a_first_chunk(otel: Otel) -> None:
    sdk = SdkStream()
    list(sdk)
    assert list(_sync(otel, sdk)) == []
    attributes = _ended(otel)
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 0


def test_closed_early_ends_once_with_what_was_read(otel: Otel) -> None:
    sdk = SdkStream()
    stream = _sync(otel, sdk)
    for _chunk in stream:
        break
    assert otel.spans() == []
    stream.close()
    assert sdk.closed
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    stream.close()
    del stream
    gc.collect()
    assert len(otel.spans()) == 1


def test_with_block_exit_ends_the_span(otel: Otel) -> None:
    sdk = SdkStream()
    with _sync(otel, sdk) as stream:
        assert sdk.entered and isinstance(stream, SyncStreamProxy)
        next(stream)
        assert otel.spans() == []
    assert sdk.closed
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 1


def test_failure_midway_is_reraised_unchanged_and_recorded(otel: Otel) -> None:
    received = []
    with pytest.raises(Cut) as raised:
        for chunk in _sync(otel, SdkStream(fail_after=2)):
            received.append(chunk)
    assert str(raised.value) == "connection cut"
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes[semconv.ERROR_TYPE] == "Cut"
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == len(received) == 2


@pytest.mark.parametrize("path", ["never iterated", "iterator never started", "started"])
def test_abandoned_stream_ends_when_proxy_and_iterator_are_both_gone(otel: Otel, path: str) -> None:
    stream = _sync(otel)
    iterator = None
    if path == "iterator never started":
        iterator = iter(stream)
    elif path == "started":
        iterator = iter(stream)
        next(iterator)
    del stream
    gc.collect()
    if iterator is not None:
        assert otel.spans() == []  # the iterator can still be read
        del iterator
        gc.collect()
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.UNSET
    expected = 1 if path == "started" else 0
    assert dict(span.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == expected


def test_accumulator_failure_never_reaches_the_application(otel: Otel) -> None:
    accumulator = Counting(fail_on="chunk-2")
    received = list(_sync(otel, accumulator=accumulator))
    assert len(received) == CHUNKS
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == CHUNKS - 1


def test_finish_stream_ends_only_our_proxies(otel: Otel) -> None:
    stream = _sync(otel)
    finish_stream(SdkStream())
    assert otel.spans() == []
    finish_stream(stream)
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 0


async def test_async_exhausted_after_anext(otel: Otel) -> None:
    stream = _async(otel)
    assert await stream.__anext__() == "chunk-0"
    rest = [chunk async for chunk in stream]
    assert rest == [f"chunk-{index}" for index in range(1, CHUNKS)]
    attributes = _ended(otel)
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == CHUNKS
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attributes


async def test_async_close_and_with_exit_end_once(otel: Otel) -> None:
    sdk = AsyncSdkStream()
    stream = _async(otel, sdk)
    async for _chunk in stream:
        break
    await stream.close()
    assert sdk.closed
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    await stream.close()
    assert len(otel.spans()) == 1

    otel.exporter.clear()
    sdk = AsyncSdkStream()
    async with _async(otel, sdk) as stream:
        await stream.__anext__()
    assert sdk.closed
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 1


async def test_async_failure_midway_is_reraised_and_recorded(otel: Otel) -> None:
    with pytest.raises(Cut):
        async for _chunk in _async(otel, AsyncSdkStream(fail_after=3)):
            pass
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


async def test_async_abandoned_stream_ends_when_collected(otel: Otel) -> None:
    stream = _async(otel)
    await stream.__anext__()
    del stream
    gc.collect()
    for _ in range(50):  # the event loop closes a dropped async generator in a task of its own
        if otel.spans():
            break
        await asyncio.sleep(0.01)
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 1


# Read at the end (`tail`): the first chunk as it comes, the last TAIL when the call ends, however it ends.
def _chunk_names(*indexes: int) -> list[str]:
    return [f"chunk-{index}" for index in indexes]


@pytest.mark.parametrize("ending", ["exhausted", "closed", "with exit", "failed", "abandoned"])
def test_a_stream_read_at_its_end_reads_its_first_and_last_chunks(otel: Otel, ending: str) -> None:
    assert TAIL == 3 and CHUNKS == 5
    accumulator = Counting()
    sdk = SdkStream(fail_after=3 if ending == "failed" else None)
    stream = SyncStreamProxy(sdk, _call(otel), accumulator, TAIL)
    if ending == "exhausted":
        received = list(stream)
        assert received == _chunk_names(0, 1, 2, 3, 4)
        expected = _chunk_names(0, 2, 3, 4)
    elif ending in ("closed", "with exit"):
        with stream:
            assert [next(stream), next(stream)] == _chunk_names(0, 1)
            assert accumulator.seen == _chunk_names(0)  # nothing read in the middle
            if ending == "closed":
                stream.close()
                assert accumulator.seen == _chunk_names(0, 1)
        expected = _chunk_names(0, 1)
    elif ending == "failed":
        with pytest.raises(Cut):
            for _chunk in stream:
                pass
        expected = _chunk_names(0, 1, 2)
    else:
        iterator = iter(stream)
        next(iterator), next(iterator)
        del stream, iterator
        gc.collect()
        expected = _chunk_names(0, 1)
    assert accumulator.seen == expected
    (span,) = otel.spans()
    assert span.end_time is not None
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == len(expected)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "chunk-0"
    assert (span.status.status_code is StatusCode.ERROR) == (ending == "failed")


async def test_async_stream_read_at_its_end(otel: Otel) -> None:
    accumulator = Counting()
    stream = _async(otel, accumulator=accumulator, tail=TAIL)
    assert [chunk async for chunk in stream] == _chunk_names(0, 1, 2, 3, 4)
    assert accumulator.seen == _chunk_names(0, 2, 3, 4)
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4


def test_a_failing_read_at_the_end_loses_only_that_chunk(otel: Otel) -> None:
    accumulator = Counting(fail_on="chunk-3")
    assert len(list(SyncStreamProxy(SdkStream(), _call(otel), accumulator, TAIL))) == CHUNKS
    assert accumulator.seen == _chunk_names(0, 2, 4)
    assert _ended(otel)[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


def test_an_azure_openai_chat_stream_is_read_chunk_by_chunk() -> None:
    """Azure's asynchronous content filter may send any number of annotation chunks after the
    finish reason: a stream from Azure OpenAI is read as it passes, never only at its end."""
    from genai_otel.instrumentation.openai._wrappers import ChatAccumulator, ResponsesAccumulator

    plain: dict[str, Any] = {"model": "gpt-4o", "stream": True}
    assert ChatAccumulator.read_at_end(plain, False, semconv.Provider.OPENAI.value)
    assert not ChatAccumulator.read_at_end(plain, False, semconv.Provider.AZURE_OPENAI.value)
    assert not ChatAccumulator.read_at_end({**plain, "tools": [{}]}, False, semconv.Provider.OPENAI.value)
    assert not ChatAccumulator.read_at_end(plain, True, semconv.Provider.OPENAI.value)
    assert ResponsesAccumulator.read_at_end(plain, False, semconv.Provider.AZURE_OPENAI.value)
