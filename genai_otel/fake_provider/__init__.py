"""A fake OpenAI-, Anthropic- and Gemini-compatible LLM provider for tests, benchmarks and the demo.

- `FakeProvider`: the API over real HTTP on a background thread (context manager).
- `FakeTransport` / `AsyncFakeTransport`: the same responses in-process, for `httpx2` clients.
- `respond()`: the pure request -> response layer both are built on.

Endpoints, `x-fake-*` headers, failure scenarios and the token formula: see README.md here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import SCENARIOS, Chunk, Defaults, FakeRequest, FakeResponse, count_tokens, message_tokens
from .engine import RecordedRequest, Responder, respond
from .server import FakeProvider

if TYPE_CHECKING:
    from .transport import AsyncFakeTransport, FakeTransport

__all__ = [
    "SCENARIOS",
    "AsyncFakeTransport",
    "Chunk",
    "Defaults",
    "FakeProvider",
    "FakeRequest",
    "FakeResponse",
    "FakeTransport",
    "RecordedRequest",
    "Responder",
    "count_tokens",
    "message_tokens",
    "respond",
]


def __getattr__(name: str) -> Any:
    # The transports need httpx2 (installed with the openai/anthropic SDKs); import it only on use.
    if name in ("FakeTransport", "AsyncFakeTransport"):
        from . import transport

        return getattr(transport, name)
    raise AttributeError(name)
