"""The hot-path shortcuts give exactly the answers of the plain lookups they replace."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from genai_otel.instrumentation._core import http_response_of, server_of
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict

from genai_otel.fake_provider import FakeTransport

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [],
}


class WithField(BaseModel):
    http_response: str | None = "field"


class WithClassAttribute(BaseModel):
    model_config = ConfigDict(extra="allow")

    @property
    def http_response(self) -> str:
        return "property"


class Slotted:
    __slots__ = ("http_response",)

    def __init__(self) -> None:
        self.http_response = "slot"


class Forwarding:
    def __getattr__(self, name: str) -> Any:
        return f"forwarded {name}"


class Plain:
    pass


def _results() -> list[Any]:
    client = openai.OpenAI(
        base_url="http://fake/v1", api_key="k", http_client=httpx2.Client(transport=FakeTransport())
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
    )
    client.close()
    return [
        ChatCompletion.model_validate(COMPLETION),
        ChatCompletion.model_validate({**COMPLETION, "http_response": "an extra field"}),
        WithField(),
        WithField(http_response=None),
        WithClassAttribute(),
        Slotted(),
        Forwarding(),
        Plain(),
        None,
        raw,
    ]


@pytest.mark.parametrize("result", _results(), ids=lambda result: type(result).__name__)
def test_http_response_of_equals_getattr(result: Any) -> None:
    assert http_response_of(result) == getattr(result, "http_response", None)
    assert http_response_of(result) == getattr(result, "http_response", None)  # cached type


def test_pydantic_extra_field_named_http_response_is_found() -> None:
    completion = ChatCompletion.model_validate({**COMPLETION, "http_response": "an extra field"})
    assert http_response_of(completion) == "an extra field"


def test_server_of_follows_a_new_base_url() -> None:
    client = openai.OpenAI(base_url="http://first.example:8000/v1", api_key="k", http_client=httpx2.Client())
    assert server_of(client) == ("first.example", 8000)
    assert server_of(client) == ("first.example", 8000)
    client.base_url = "https://second.example/v1"  # type: ignore[assignment]
    assert server_of(client) == ("second.example", 443)
    client.close()


class _PublicOnly:
    """A client that keeps its URL behind the public property only."""

    @property
    def base_url(self) -> httpx2.URL:
        return httpx2.URL("http://public.example/v1")


def test_server_of_without_private_url_reads_base_url() -> None:
    assert server_of(_PublicOnly()) == ("public.example", 80)
    assert server_of(object()) == (None, None)
    assert server_of(None) == (None, None)
