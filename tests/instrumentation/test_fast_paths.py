"""The hot-path shortcuts give exactly the answers of the plain lookups they replace."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import httpx2
import openai
import pytest
import wrapt
from genai_otel.instrumentation._core import fields_of, get, http_response_of, server_of
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


class Config(BaseModel):
    temperature: float | None = None
    tools: list[str] | None = None


class ExtraConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    temperature: float | None = None


class WithProperty:
    @property
    def temperature(self) -> float:
        return 0.5


def _plain_get(obj: Any, key: str) -> Any:
    """What `get` answers, without its per-type memory."""
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _configs() -> list[Any]:
    return [
        {"temperature": 0.2},
        types.MappingProxyType({"temperature": 0.3}),
        wrapt.ObjectProxy({"temperature": 0.4}),  # a proxy's answer is its wrapped object's
        wrapt.ObjectProxy(Config(temperature=0.45)),
        Config(temperature=0.6, tools=["t"]),
        Config(),
        ExtraConfig(temperature=0.7, top_k=3),  # type: ignore[call-arg]
        WithProperty(),
        Plain(),
    ]


@pytest.mark.parametrize("config", _configs(), ids=lambda config: type(config).__name__)
def test_get_and_fields_of_equal_the_plain_reads(config: Any) -> None:
    for _ in range(2):  # the second time from the per-type memory
        for key in ("temperature", "tools", "top_k", "missing"):
            assert get(config, key) == _plain_get(config, key)
            assert fields_of(config).get(key) == _plain_get(config, key)
    assert fields_of(None).get("temperature") is None
