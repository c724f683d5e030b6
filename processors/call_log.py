"""The call log: one JSON line per model call the processor counted (`call_log.*` settings).

Each line says what the metrics say about one call, for `jq` and log shippers: when it ended,
its trace and span id, service, provider, operation, request and response model, tokens by type,
its cost (and where the cost came from), duration, time to first chunk, status, error category,
user and feature. Never content: the processor does not read prompts or completions.

Lines are written when a request's metrics are recorded (`Pipeline.process`: all or nothing, so a
refused request writes none, and the lines add up to the `llm_*` counters), by the Python path
and by the C lane alike, through `CallLog.line`. The file is bounded: at `max_bytes` it is
rotated (`path.1`, ..., `path.<backups>`, the oldest dropped); `-` writes to standard output.
The user is written as the `user` label is (`labels.user_id`: raw, its keyed hash, or left out).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

from .metrics import TOKEN_TYPES
from .pricing import QUANTA_PER_USD

logger = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 1.0  # buffered lines reach the file at least this often (and at close)

# What a kind of call has in common (CallLog.static): written into every one of its lines.
Static = str


class CallLog:
    def __init__(
        self,
        path: str,
        max_bytes: int,
        backups: int,
        *,
        user: Callable[[str], str] | None,
        clock: Callable[[], float] = time.monotonic,
        stream: IO[str] | None = None,
    ) -> None:
        """`user`: how a user id is written (the user label's transform, `str` for raw ids);
        None: users are left out. `stream`: written instead of `path` (never rotated; tests)."""
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._user = user
        self._clock = clock
        self._stream: IO[str] | None = None
        self._size = 0
        self._flushed = clock()
        self.lines = 0  # written since start
        self.dropped = 0  # lines lost to a failed write (a full disk): counted, logged once a minute
        self._complained = -float("inf")
        self._given = stream
        self._rotates = stream is None and path != "-"  # a file of our own: bounded by rotation
        self._open()

    # -- the line --------------------------------------------------------------------------
    @staticmethod
    def static(  # noqa: PLR0917
        service: str,
        provider: str,
        operation: str,
        request_model: str,
        response_model: str,
        status: str,
        error_category: str,
        cost_source: str,
        unpriced_reason: str,
    ) -> Static:
        """The part of a line every call of one kind shares, as JSON members (computed once per
        kind: the lane is taught it with the kind's outcome)."""
        members = {
            "service": service,
            "provider": provider,
            "operation": operation,
            "request_model": request_model,
            "response_model": response_model,
            "status": status,
            "error_category": error_category or None,
            "cost_source": cost_source or None,
            "unpriced_reason": unpriced_reason or None,
        }
        return json.dumps(members, ensure_ascii=False, separators=(",", ":"))[1:-1]

    def line(  # noqa: PLR0917
        self,
        static: Static,
        trace_id: bytes,
        span_id: bytes,
        end_s: float,
        tokens: Sequence[int] | None,
        cost_quanta: int | None,
        duration_s: float | None,
        ttfc_s: float | None,
        user: str | bytes,
        feature: str | bytes,
    ) -> None:
        """Writes one call's line. `tokens` per TOKEN_TYPES (None: no usage reported),
        `cost_quanta` its cost in quanta of 2**-32 USD (None: not priced)."""
        if isinstance(user, bytes):  # the lane hands the raw attribute bytes, decoded as the scanner does
            user = user.decode("utf-8", "replace")
        if isinstance(feature, bytes):
            feature = feature.decode("utf-8", "replace")
        variable = {
            "time": round(end_s, 6),
            "trace_id": trace_id.hex(),
            "span_id": span_id.hex(),
            "tokens": dict(zip(TOKEN_TYPES, tokens, strict=True)) if tokens is not None else None,
            "cost_usd": cost_quanta / QUANTA_PER_USD if cost_quanta is not None else None,
            "duration_s": duration_s,
            "time_to_first_chunk_s": ttfc_s,
            "user": (self._user(user) if self._user is not None else None) if user else None,
            "feature": feature or None,
        }
        text = json.dumps(variable, ensure_ascii=False, separators=(",", ":"))
        self._write("{" + static + "," + text[1:] + "\n")

    # -- the file --------------------------------------------------------------------------
    def _open(self) -> None:
        if self._given is not None or self.path == "-":
            self._stream = self._given or sys.stdout
            return
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = path.open("a", encoding="utf-8")
        self._size = path.stat().st_size

    def _write(self, text: str) -> None:
        """Appends a line; a failed write (a full disk, a removed folder) loses that line only:
        counted in `dropped` and logged at most once a minute, never with the line."""
        try:
            if self._stream is None:
                self._open()
            size = len(text) if text.isascii() else len(text.encode())
            if self._rotates and self._size and self._size + size > self.max_bytes:
                self._rotate()
            stream = self._stream
            assert stream is not None
            stream.write(text)
            self._size += size
            self.lines += 1
            now = self._clock()
            if now - self._flushed >= FLUSH_SECONDS:
                stream.flush()
                self._flushed = now
        except (OSError, ValueError) as exc:  # ValueError: a text the file's encoding refuses
            self.dropped += 1
            self._stream = None  # reopened on the next line
            self._complain(exc)

    def _rotate(self) -> None:
        assert self._stream is not None
        self._stream.close()
        for index in range(self.backups, 0, -1):
            older = f"{self.path}.{index}"
            newer = self.path if index == 1 else f"{self.path}.{index - 1}"
            if os.path.exists(newer):
                os.replace(newer, older)
        if self.backups == 0:
            os.remove(self.path)
        self._open()

    def flush(self) -> None:
        """Buffered lines to the file; a failure is reported as a failed write's is (once a minute)."""
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self._stream = None
            self._complain(exc)
        self._flushed = self._clock()

    def _complain(self, exc: Exception) -> None:
        now = self._clock()
        if now - self._complained >= 60:
            self._complained = now
            logger.warning("call log: lines could not be written to %s (%s); %d lost so far",
                           self.path, type(exc).__name__, self.dropped)  # fmt: skip

    def close(self) -> None:
        if self._stream is None:
            return
        self._stream.flush()
        if self._stream is not sys.stdout and self._stream is not self._given:
            self._stream.close()
        self._stream = None
