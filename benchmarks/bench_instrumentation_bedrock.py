"""CPU the instrumentation adds per Bedrock Runtime call (boto3): none vs genai-otel vs the SDK floor.

The same method as `bench_instrumentation.py` (which measures the openai SDK): one thread, the
fake provider answering in-process (a botocore `before-send` handler hands the request to its
`Responder` and returns the answer, so no socket is opened; the request is still built, signed
with SigV4 and parsed by botocore), a real `TracerProvider` with a `BatchSpanProcessor` to an
exporter that drops spans, a real `MeterProvider`; blocks of calls rotate between the modes and
each figure is the median over blocks. "sdk floor" wraps the uninstrumented call in exactly the
telemetry genai-otel emits for it, made with the OpenTelemetry SDK alone.

    .venv/bin/python benchmarks/bench_instrumentation_bedrock.py [--calls 25] [--blocks 60]

Calls: `converse` (16 output tokens) and `converse_stream` of 50 chunks.
"""

from __future__ import annotations

import functools
import io
import sys
from typing import Any
from urllib.parse import urlsplit

from _instrumentation_harness import Results, compare, compare_main
from botocore.awsrequest import AWSResponse
from genai_otel.instrumentation.bedrock import BedrockInstrumentor

from genai_otel.fake_provider import Responder
from genai_otel.fake_provider.bedrock_client import bedrock_client

MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarise the benchmark in one sentence."}]}]


class _Raw:
    """The urllib3 response botocore reads: `read()` for plain bodies, `stream()` for event streams."""

    def __init__(self, data: bytes) -> None:
        self._body = io.BytesIO(data)

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        return self._body.read(amt)

    def stream(self, amt: int = 1024, decode_content: bool = True) -> Any:
        while chunk := self._body.read(amt):
            yield chunk


def _client(stream_tokens: str | None = None) -> Any:
    responder = Responder(max_recorded=0)
    client = bedrock_client("http://fake")

    def send(request: Any, **_: Any) -> AWSResponse:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        if stream_tokens:
            headers["x-fake-output-tokens"] = stream_tokens
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        answer = responder.handle(request.method, urlsplit(request.url).path, headers, body)
        data = answer.body if answer.chunks is None else b"".join(chunk.data for chunk in answer.chunks)
        headers_out = {**answer.headers, "content-length": str(len(data))}
        return AWSResponse(request.url, answer.status, headers_out, _Raw(data))

    client.meta.events.register("before-send.bedrock-runtime.*", send)
    return client


def _converse(client: Any) -> None:
    client.converse(modelId=MODEL, messages=MESSAGES)


def _converse_stream(client: Any) -> None:
    for _ in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
        pass


def run(calls: int, blocks: int) -> Results:
    # Instrumentation hooks clients as they are created: the genai-otel mode makes a new client
    # once instrumented (outside the timed block); uninstrument() untraces it again. The
    # responder records nothing, so the client is never renewed otherwise.
    return compare(
        BedrockInstrumentor,
        {"converse": _converse, "stream_50": _converse_stream},
        lambda call: functools.partial(_client, "50" if call is _converse_stream else None),
        calls,
        blocks,
        renew_every=None,
        fresh_client_for="genai-otel",
    )


def main(argv: list[str] | None = None) -> int:
    return compare_main(__doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
