"""Types of the C extension `_wirescan` (sources: processors/native/; see processors/scan.py).

The Lane's context and outcome tuples are declared by name in `lane_contract.py` (the C side indexes
them through `native/_contract.h`, generated from it) and packed by `Pipeline._make_lane`/`_teach`.
"""

from collections.abc import Callable
from typing import Final, final

from .scan import ResourceEntry, SpanEntry

SOURCE_DIGEST: Final[str]  # what setup.py stamped: scan.source_digest() of the sources built

@final
class _Table:
    """The key table `make_table` returns (a capsule: opaque, and not importable by this name)."""

def make_table(
    keys: tuple[str, ...],
    eval_name: bytes,
    wire_error: type[Exception],
    unsupported: object,
    decode_other: Callable[[bytes, int, int], object],
    /,
) -> _Table: ...
def split(data: bytes, table: _Table, count_only: bool = ..., /) -> tuple[list[ResourceEntry], int]: ...
def assemble(data: bytes, resources: list[ResourceEntry], additions: dict[int, bytes], /) -> bytes: ...

@final
class Histogram:
    """metrics.Histogram with its state in C arrays."""

    @property
    def bounds(self) -> tuple[float, ...]: ...
    created: float
    def __init__(self, bounds: tuple[float, ...], exemplars: bool, created: float = ...) -> None: ...
    @property
    def counts(self) -> list[int]: ...
    @property
    def sum(self) -> float: ...
    @property
    def count(self) -> int: ...
    @property
    def exemplars(self) -> list[tuple[bytes, float, float] | None] | None: ...
    def observe(self, value: float, trace_id: bytes, timestamp: float, /) -> None: ...
    def copy(self) -> Histogram: ...

@final
class Recent:
    """Recent GenAI calls, to find the second span of one call (duplicates.RecentCalls)."""

    def __init__(self, capacity: int, window_seconds: float) -> None: ...
    def begin(self, now: float, /) -> None: ...
    def settle(self, ok: bool, /) -> None: ...
    def see(
        self,
        scope: str,
        native: int,  # 0, 1 or 2 (duplicates.RecentCalls.see)
        service: str,
        ident: int,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        start_ns: int,
        end_ns: int,
        response_id: str | None,
        /,
    ) -> tuple[bytes, str | None] | None: ...  # (id, None): a copy of a span seen before
    def again(self, trace_id: bytes, span_id: bytes, /) -> bool: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...

@final
class Lane:
    """A whole export request in C for spans seen before (see Pipeline)."""

    def __init__(self, context: tuple[object, ...], /) -> None:
        """`context`: lane_contract.CONTEXT's items, packed by name (lane_contract.pack)."""
    def process(
        self,
        data: bytes,
        service_of: Callable[[bytes, int, int], str],
        slow: Callable[[bytes, SpanEntry, str, str, bytes | None], tuple[bytes, bool]],
        journal: list[tuple[Callable[..., object], tuple[object, ...]]],
        /,
    ) -> tuple[bytes, int, int]: ...
    def learn(self, signature: bytes, kind: int, outcome: tuple[object, ...] | None, /) -> bool:
        """`outcome`: lane_contract.OUTCOME's items (None for kind KIND_OTHER)."""
    def flush(self) -> None: ...
    def clear(self) -> None: ...
    @property
    def stats(self) -> dict[str, int]: ...
