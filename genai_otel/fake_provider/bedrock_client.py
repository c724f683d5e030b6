"""A boto3 `bedrock-runtime` client pointed at the fake provider (for tests, benchmarks and the demo).

boto3 is not a dependency of genai-otel: it is imported when a client is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def bedrock_client(endpoint_url: str, headers: Mapping[str, str] | None = None) -> Any:
    """A client for the fake provider at `endpoint_url` (its `base_url`): fake credentials (the
    fake checks SigV4's shape, not the signature), us-east-1, one attempt per call (boto3 retries
    throttling and 5xx answers by default), `headers` (such as `x-fake-output-tokens`) sent with
    every request."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    if headers:
        add_headers(client, headers)
    return client


def add_headers(client: Any, headers: Mapping[str, str]) -> None:
    """Sends `headers` with every request of `client`, signed with the rest."""
    sent = dict(headers)

    def add(request: Any, **_: Any) -> None:
        for name, value in sent.items():
            request.headers[name] = value

    client.meta.events.register_first("before-sign.bedrock-runtime.*", add)
