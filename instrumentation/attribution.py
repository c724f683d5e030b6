"""Attribute GenAI calls to a user, a feature, a tenant and a conversation.

Every GenAI span started inside the scope carries the values, so the processor can bill
per user and per feature::

    from genai_otel.instrumentation.attribution import attribution

    with attribution(user_id="u-42", feature="search-summary", tenant_id="acme"):
        client.chat.completions.create(...)

    @attribution(feature="nightly-report")          # plain and ``async def`` functions
    async def build_report(): ...

Nested scopes add to (and override) the outer values. The values live in a
``contextvars.ContextVar``, so asyncio tasks created inside a scope inherit them. Threads
do not inherit context variables: run work for a thread pool through `in_current_context`
(or ``contextvars.copy_context().run``)::

    executor.submit(in_current_context(summarise), document)

Span attributes: ``user.id``, ``genai_otel.feature``, ``genai_otel.tenant.id`` and
``gen_ai.conversation.id``. They are span attributes, never metric labels.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from genai_otel import semconv

_F = TypeVar("_F", bound=Callable[..., Any])
_R = TypeVar("_R")

_ATTRIBUTES: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "genai_otel_attribution", default=None
)


def current_attributes() -> dict[str, str] | None:
    """The attribution of the current context, as span attributes (None outside any scope)."""
    return _ATTRIBUTES.get()


class attribution:
    """Context manager and decorator that attributes the GenAI calls in its scope.

    Lower-case on purpose: it reads like a function, ``with attribution(...)``.
    """

    def __init__(
        self,
        *,
        user_id: str | None = None,
        feature: str | None = None,
        tenant_id: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        values = {
            semconv.USER_ID: user_id,
            semconv.GENAI_OTEL_FEATURE: feature,
            semconv.GENAI_OTEL_TENANT_ID: tenant_id,
            semconv.GEN_AI_CONVERSATION_ID: conversation_id,
        }
        self._values = {key: str(value) for key, value in values.items() if value is not None}
        self._tokens: list[contextvars.Token[dict[str, str] | None]] = []

    def __enter__(self) -> attribution:
        merged = dict(_ATTRIBUTES.get() or {})
        merged.update(self._values)
        self._tokens.append(_ATTRIBUTES.set(merged))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _ATTRIBUTES.reset(self._tokens.pop())

    def __call__(self, function: _F) -> _F:
        values = self._values
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_scoped(*args: Any, **kwargs: Any) -> Any:
                with attribution(**_as_kwargs(values)):
                    return await function(*args, **kwargs)

            return async_scoped  # type: ignore[return-value]

        @functools.wraps(function)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            with attribution(**_as_kwargs(values)):
                return function(*args, **kwargs)

        return scoped  # type: ignore[return-value]


_KWARG_OF = {
    semconv.USER_ID: "user_id",
    semconv.GENAI_OTEL_FEATURE: "feature",
    semconv.GENAI_OTEL_TENANT_ID: "tenant_id",
    semconv.GEN_AI_CONVERSATION_ID: "conversation_id",
}


def _as_kwargs(values: dict[str, str]) -> dict[str, str]:
    return {_KWARG_OF[key]: value for key, value in values.items()}


def in_current_context(function: Callable[..., _R]) -> Callable[..., _R]:
    """`function`, bound to a copy of the current context (attribution and trace context).

    For work handed to threads, which start with an empty context::

        executor.submit(in_current_context(work), item)
    """
    context = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> _R:
        return context.copy().run(function, *args, **kwargs)

    return run
