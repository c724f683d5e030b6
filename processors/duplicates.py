"""One provider response, one bill: the second span of one model call (issue 14).

Two instrumentations can describe one call: the anthropic SDK emits its own span
(`anthropic.messages.create`, scope `com.anthropic.sdk.python`) beside a peer's; the official
instrumentation and OpenLIT make it a child of theirs, OpenLLMetry an unrelated span. Both carry
the call's tokens, so both would be priced and counted.

Two GenAI spans are one call only when all of these hold:
- they come from different instrumentation scopes (one instrumentation never reports one call
  twice, so concurrent calls from one instrumentation are never merged, even when a server
  answers every call with the same response id);
- they name the same provider and model;
- they are parent and child in one trace with overlapping times, or carry the same
  `gen_ai.response.id` with overlapping times, or one of them is an SDK's own span (the
  anthropic SDK's) and the other, from the same service, starts before it and ends after it.

The last case is OpenLLMetry's: its span and the SDK's are in unrelated traces, so a failed call
(no response id) is told apart only by time. Two concurrent failed calls to one model in one
service can then pair the wrong spans, one count each still; one call per pair is always kept.

The first span the processor sees is counted; the later one is the duplicate: it keeps its own
attributes, gets `genai_otel.cost.duplicate_of` (the counted span's id) instead of a cost, and adds
to no `llm_*` series. Which span is first is the export order; the SDK's span, a child, usually
ends and is exported first. When the two disagree on tokens (OpenLLMetry counts one more output
token on an Anthropic stream), the counted span's tokens are the ones in the metrics.

The memory is bounded: a ring of the last `capacity` spans, each found under up to four keys (its
id, the parent it may be waiting for, its response id, its service and model), trusted for
`window_seconds`. Spans of one
call further apart than that are both counted. When processors scale out, the spans of one trace
must reach one processor (the gateway's load balancing by trace id), or nested pairs are missed.

A copy of a span (the same trace and span id: a sender's retry, or the gateway's retry of a whole
batch one processor refused part of) is not a second call but the same span again: `see` finds it
under its own id, whatever the scope and the window, and says what its first copy was (counted,
or the duplicate of which span), so the copy is enriched the same way and counted nowhere. For
that, duplicates are remembered too (under their own id only, paired), and so are the spans that
record something other than a model call (`again`: tool calls, agent runs, evaluations).

`Recent` in the C extension does this for the lane and the Python path alike; `RecentCalls` is
the same rule in Python for installs without the extension (tests/processor/test_duplicates.py
holds them to the same answers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from . import _wirescan

MAX_RESPONSE_ID_BYTES: Final = 128  # a longer response id is not remembered
DEFAULT_MAX_SPANS: Final = 100_000  # GenAI spans remembered: about 26 MB at most
DEFAULT_WINDOW_SECONDS: Final = 300.0

Key = tuple[Any, ...]


# what a remembered span's first copy was (a later copy, the same trace and span id, is recognised
# by its own id and counts nothing again)
COUNTED: Final = 0  # a model call, counted
DUPLICATE: Final = 1  # the second span of a call: it names the counted span
SEEN: Final = 2  # a span that records something else (a tool call, an agent run, an evaluation)

NATIVE: Final = 1  # the SDK's own span
AROUND_NATIVE: Final = 2  # a span of a provider whose SDK emits its own (it may be around one)


class RecentCalls:
    """The pure-Python twin of the extension's `Recent` (same ring, same keys, same answers)."""

    def __init__(self, capacity: int, window_seconds: float) -> None:
        if not 1 <= capacity <= 100_000_000 or not window_seconds >= 0:
            raise ValueError("Recent: capacity 1..1e8, window >= 0")
        # per span: [keys, scope, ident, start, end, span id, paired, seen, kind]; a DUPLICATE's
        # span id is the counted span's
        self._ring: list[list[Any] | None] = [None] * capacity
        self._index: dict[Key, int] = {}  # key -> ring position
        self._next = 0
        self._window = window_seconds
        self._now = 0.0
        self._undo: list[tuple[int, int]] = []  # (1 inserted | 2 paired, ring position)
        self.duplicates = 0

    def begin(self, now: float) -> None:
        self._now = now
        self._undo.clear()

    def settle(self, ok: bool) -> None:
        if not ok:
            for op, pos in reversed(self._undo):
                if op == 1:
                    self._clear(pos)
                else:
                    record = self._ring[pos]
                    if record is not None:
                        record[6] = False
                    self.duplicates -= 1
        self._undo.clear()

    def _clear(self, pos: int) -> None:
        record = self._ring[pos]
        if record is not None:
            for key in record[0]:
                if key is not None:
                    self._index.pop(key, None)
            self._ring[pos] = None

    def _insert(self, record: list[Any]) -> None:
        for key in record[0]:
            old = self._index.pop(key, None) if key is not None else None
            if old is not None:
                keys = self._ring[old][0]  # type: ignore[index]
                keys[keys.index(key)] = None
        pos = self._next
        self._clear(pos)
        self._next = (pos + 1) % len(self._ring)
        self._ring[pos] = record
        for key in record[0]:
            if key is not None:
                self._index[key] = pos
        self._undo.append((1, pos))

    def see(  # noqa: PLR0917 - mirrors Recent.see
        self,
        scope: str,
        native: int,
        service: str,
        ident: int,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        start_ns: int,
        end_ns: int,
        response_id: str | None,
    ) -> tuple[bytes, str | None] | None:
        traced = len(trace_id) == 16
        has_span = traced and len(span_id) == 8
        has_parent = traced and len(parent_span_id) == 8
        own = ("S", trace_id, span_id) if has_span else None
        first = self._index.get(own) if own is not None else None
        if first is not None:  # a copy of a span seen before, whatever the window
            record = self._ring[first]
            assert record is not None
            return (record[5] if record[8] == DUPLICATE else b""), None
        rid = response_id.encode() if response_id else b""
        answer = ("R", ident, rid) if 0 < len(rid) <= MAX_RESPONSE_ID_BYTES else None
        side = (service, ident)
        look = (
            ("S", trace_id, parent_span_id) if has_parent else None,
            ("W", trace_id, span_id) if has_span else None,
            answer,
            ("P" if native == NATIVE else "N", *side) if native else None,
        )
        mine = hash(scope)
        for k, key in enumerate(look):
            pos = self._index.get(key) if key is not None else None
            if pos is None:
                continue
            record = self._ring[pos]
            assert record is not None
            _, scope_seen, ident_seen, start, end, span_seen, paired, seen, _ = record
            if k < 3:  # nested or one response: overlapping
                timed = start <= end_ns and start_ns <= end
            elif native == NATIVE:  # a peer's span around the SDK's
                timed = start <= start_ns and end_ns <= end
            else:
                timed = start_ns <= start and end <= end_ns
            if (
                not paired
                and hash(scope_seen) != mine
                and ident_seen == ident
                and timed
                and self._now - seen <= self._window
            ):
                record[6] = True
                self.duplicates += 1
                self._undo.append((2, pos))
                if own is not None:  # remembered under its own id, paired, naming the counted span
                    self._insert([[None, own, None, None], scope_seen, ident, start_ns, end_ns, span_seen,
                                  True, self._now, DUPLICATE])  # fmt: skip
                return span_seen, scope_seen
        keys = [
            answer,
            own,
            ("W", trace_id, parent_span_id) if has_parent else None,
            ("N" if native == NATIVE else "P", *side) if native else None,
        ]
        if keys[1] is not None and keys[1] == keys[2]:  # a span its own parent: one key
            keys[2] = None
        span_seen = span_id if has_span else bytes(8)
        self._insert([keys, scope, ident, start_ns, end_ns, span_seen, False, self._now, COUNTED])
        return None

    def again(self, trace_id: bytes, span_id: bytes) -> bool:
        """For a span that records something other than a model call: whether it was seen before;
        if not, it is remembered under its own id (paired: nothing pairs with it)."""
        if len(trace_id) != 16 or len(span_id) != 8:
            return False  # no identity to recognise a copy by
        own = ("S", trace_id, span_id)
        if own in self._index:
            return True
        self._insert([[None, own, None, None], None, 0, 0, 0, span_id, True, self._now, SEEN])
        return False


def recent_calls(capacity: int, window_seconds: float, accelerated: bool) -> RecentCalls | _wirescan.Recent:
    """The extension's `Recent` when the C walk is in use, else `RecentCalls`."""
    from .scan import _accelerator

    if accelerated and _accelerator is not None:
        return _accelerator.Recent(capacity, window_seconds)
    return RecentCalls(capacity, window_seconds)


def call_ident(provider: str, model: str) -> int:
    """Which provider and model a span names, as one number both paths compare."""
    return hash((provider, model))
