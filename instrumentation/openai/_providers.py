"""Which provider an OpenAI-compatible endpoint is: ``gen_ai.provider.name`` from the base URL.

The openai SDK speaks to OpenAI and to every OpenAI-compatible API (Azure OpenAI, Groq,
DeepSeek, Together, Mistral, Ollama, vLLM...). The provider decides which price table the
processor uses, so it is read from the client's base URL through `semconv.OPENAI_COMPATIBLE_HOSTS`,
which the environment can extend (`semconv.ENV_PROVIDER_HOSTS`) or bypass
(`semconv.ENV_OPENAI_PROVIDER`). Both are read once, when the instrumentor starts; each base URL
is looked up once and remembered, so a call pays one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from genai_otel.instrumentation._core import Telemetry, address_of, base_url_of

from genai_otel import semconv

logger = logging.getLogger(__name__)

_OPENAI = semconv.Provider.OPENAI.value
_AZURE_CLIENTS = frozenset({"AzureOpenAI", "AsyncAzureOpenAI"})

# (host or host suffix, port or None for any, True when the host is a suffix, provider)
HostRule = tuple[str, int | None, bool, str]


def host_rule(pattern: str, provider: str) -> HostRule:
    """One rule from a pattern of `semconv.OPENAI_COMPATIBLE_HOSTS`; ValueError if malformed."""
    text = pattern.strip().lower()
    host, colon, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if colon and not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text) if colon else None
    suffix = host.startswith("*")
    host = host[1:] if suffix else host
    if not host and not (suffix and port is not None):
        raise ValueError("no host")
    if not provider.strip():
        raise ValueError("no provider")
    return host, port, suffix, semconv.provider_spelling(provider)


def parse_provider_hosts(raw: str) -> list[HostRule]:
    """`GENAI_OTEL_PROVIDER_HOSTS`: "pattern=provider" entries separated by commas. A malformed
    entry is skipped with a warning that names it; the others still apply."""
    rules: list[HostRule] = []
    for entry in raw.split(","):
        if not entry.strip():
            continue
        pattern, equals, provider = entry.partition("=")
        try:
            if not equals:
                raise ValueError("expected pattern=provider")
            rules.append(host_rule(pattern, provider))
        except ValueError as problem:
            logger.warning("%s: entry %r skipped: %s", semconv.ENV_PROVIDER_HOSTS, entry.strip(), problem)
    return rules


BUILT_IN_RULES: tuple[HostRule, ...] = tuple(
    host_rule(pattern, provider) for pattern, provider in semconv.OPENAI_COMPATIBLE_HOSTS
)


def provider_of_host(host: str | None, port: int | None, rules: Iterable[HostRule] = BUILT_IN_RULES) -> str:
    """The provider of an endpoint at `host`:`port` (the port the URL names or its scheme's)."""
    host = (host or "").lower().rstrip(".")
    for rule_host, rule_port, suffix, provider in rules:
        if rule_port is not None and rule_port != port:
            continue
        if host.endswith(rule_host) if suffix else host == rule_host:
            return provider
    return semconv.UNLISTED_HOST_PROVIDER


def provider_of_url(url: str, rules: Iterable[HostRule] = BUILT_IN_RULES) -> str:
    """`provider_of_host` for a URL string (what a user passes as ``base_url``)."""
    parts = urlsplit(url)
    return provider_of_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), rules)


class Endpoints:
    """Client -> (gen_ai.provider.name, server.address, server.port), once per base URL object.

    Keyed by id() of the URL object: holding the URL keeps its id from being reused, and a
    client given a new base URL gets a new URL object. Bounded: cleared when full."""

    __slots__ = ("_forced", "_known", "_rules")
    _MAX = 256

    def __init__(self, forced: str | None = None, hosts: Iterable[HostRule] = ()) -> None:
        self._forced = semconv.provider_spelling(forced) if forced and forced.strip() else None
        self._rules = (*hosts, *BUILT_IN_RULES)
        self._known: dict[int, tuple[Any, str, str | None, int | None]] = {}

    @classmethod
    def configured(
        cls,
        provider: str | None = None,
        provider_hosts: Mapping[str, str] | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Endpoints:
        """From `instrument()`'s arguments, else the environment (read now, once)."""
        forced = provider if provider is not None else environ.get(semconv.ENV_OPENAI_PROVIDER)
        if provider_hosts is not None:
            hosts = [host_rule(pattern, name) for pattern, name in provider_hosts.items()]
        else:
            hosts = parse_provider_hosts(environ.get(semconv.ENV_PROVIDER_HOSTS, ""))
        return cls(forced, hosts)

    def __call__(self, client: Any) -> tuple[str, str | None, int | None]:
        url = base_url_of(client)
        if url is None:  # no client to read: the SDK's default endpoint is OpenAI's
            return self._forced or _OPENAI, None, None
        known = self._known.get(id(url))
        if known is not None and known[0] is url:
            return known[1], known[2], known[3]
        address, port = address_of(url)
        provider = self._forced or self._provider(type(client).__name__, address, port)
        if len(self._known) >= self._MAX:
            self._known.clear()
        self._known[id(url)] = (url, provider, address, port)
        return provider, address, port

    def _provider(self, client_type: str, address: str | None, port: int | None) -> str:
        provider = provider_of_host(address, port, self._rules)
        if provider == semconv.UNLISTED_HOST_PROVIDER and client_type in _AZURE_CLIENTS:
            return semconv.Provider.AZURE_OPENAI.value  # Azure behind a custom domain or gateway
        return provider


class OpenAITelemetry(Telemetry):
    """The shared telemetry handles plus the openai instrumentor's endpoint table."""

    __slots__ = ("endpoints",)

    def __init__(self, endpoints: Endpoints, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.endpoints = endpoints
