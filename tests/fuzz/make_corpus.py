"""Writes the fuzz target's seed corpus (tests/fuzz/corpus/): small, structure-aware requests.

    .venv/bin/python tests/fuzz/make_corpus.py [--check]

Each seed is one ExportTraceServiceRequest covering one shape the processor's rules branch on:
each provider and naming generation the tests use, errors, streams, evaluation events, reported
costs, service tiers, users and features, already-enriched spans, the collector's reversed field
order, deep nesting, invalid UTF-8 and truncated frames. The bytes are deterministic (fixed ids
and times), so the generated files are committed and `--check` fails when they are stale.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests folder: `processor.helpers`

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from processor.helpers import (  # noqa: E402
    T_2025_01_01,
    T_2026_11_01,
    framed,
    make_pipeline,
    make_request,
    make_span,
    request_of_span_bytes,
    run,
)

CORPUS = HERE / "corpus"
DICTIONARY = HERE / "processor.dict"  # libFuzzer's -dict: tokens its byte mutations insert
USAGE = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80}
EVALUATION = "gen_ai.evaluation.result"


def _kv(key: bytes, value: bytes) -> bytes:
    """A span attribute (field 9) with a raw AnyValue payload."""
    return framed(0x4A, framed(0x0A, key) + framed(0x12, value))


def _reversed(data: bytes) -> bytes:
    """The request with every message's fields in reverse order, as otelcol's exporter writes them."""
    from genai_otel.processors.wire import iter_fields

    nested = {(): {1}, (1,): {1, 2}, (1, 1): {1}, (1, 2): {2}, (1, 2, 2): {9, 11}, (1, 2, 2, 11): {3}}

    def walk(start: int, end: int, path: tuple[int, ...]) -> bytes:
        parts = []
        for number, wire_type, field_start, field_end in iter_fields(data, start, end):
            tag = (number << 3) | wire_type
            if wire_type == 2:
                payload = data[field_start:field_end]
                if number in nested.get(path, set()):
                    payload = walk(field_start, field_end, (*path, number))
                parts.append(framed(tag, payload))
            else:
                head = bytes((tag,)) if tag < 0x80 else bytes((tag & 0x7F | 0x80, tag >> 7))
                parts.append(head + data[field_start:field_end])
        return b"".join(reversed(parts))

    return walk(0, len(data), ())


def _nested_kvlist(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for level in range(depth):
        outer = AnyValue()
        outer.kvlist_value.values.append(KeyValue(key=f"k{level}", value=value))
        value = outer
    return value


def _nested_array(depth: int) -> AnyValue:
    value = AnyValue(int_value=7)
    for _ in range(depth):
        outer = AnyValue()
        outer.array_value.values.append(value)
        value = outer
    return value


def _two_resources() -> bytes:
    request = ExportTraceServiceRequest()
    for service, model in (("svc-a", "gpt-4o"), ("svc-b", "claude-sonnet-4-5")):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = service
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "test.scope"
        scope.spans.append(make_span({"gen_ai.request.model": model, **USAGE}))
        scope.spans.append(make_span({"http.route": "/x"}, name="GET /x"))
    return request.SerializeToString()


def _duplicate_pair() -> bytes:
    """One Anthropic call seen twice (processors/duplicates.py): the SDK's own span, a child of a
    peer's span, and a third span in another trace with the same response id."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc"
    call = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-haiku-4-5", **USAGE}
    call["gen_ai.response.id"] = "msg_1"
    for scope_name, span_id, parent, trace in (
        ("com.anthropic.sdk.python", 2, 1, bytes(range(1, 17))),
        ("opentelemetry.instrumentation.anthropic", 1, 0, bytes(range(1, 17))),
        ("openlit.otel.tracing", 3, 0, bytes(range(17, 33))),
    ):
        scope = resource_spans.scope_spans.add()
        scope.scope.name = scope_name
        span = make_span(call, trace_id=trace)
        span.span_id = span_id.to_bytes(8, "big")
        if parent:
            span.parent_span_id = parent.to_bytes(8, "big")
        scope.spans.append(span)
    return request.SerializeToString()


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}

    def add(seed: str, attributes: dict[str, Any], scope: str = "test.scope", **span: Any) -> None:
        out[seed] = make_request([make_span(attributes, **span)], scope=scope)

    add(
        "openai-chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            **USAGE,
            "gen_ai.usage.cache_read.input_tokens": 1000,
        },
    )
    add(
        "openai-reasoning",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "o3",
            **USAGE,
            "gen_ai.usage.reasoning.output_tokens": 60,
        },
        start_ns=T_2025_01_01,
    )
    add(
        "openai-service-tier",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "openai.response.service_tier": "flex",
            **USAGE,
        },
        start_ns=T_2026_11_01,
    )
    add(
        "anthropic-cache",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            **USAGE,
            "gen_ai.usage.cache_read.input_tokens": 300,
            "gen_ai.usage.cache_creation.input_tokens": 200,
        },
    )
    add(
        "anthropic-sdk-scope",
        {"gen_ai.request.model": "claude-3-5-haiku-latest", **USAGE},
        scope="com.anthropic.sdk.python",
    )
    add("gemini", {"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-pro", **USAGE})
    add("xai", {"gen_ai.provider.name": "x_ai", "gen_ai.request.model": "grok-3", **USAGE})
    add("deepseek", {"gen_ai.provider.name": "deepseek", "gen_ai.request.model": "deepseek-chat", **USAGE})
    add("unknown-model", {"gen_ai.provider.name": "acme", "gen_ai.request.model": "llama-internal", **USAGE})
    add(
        "legacy-names",
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 3,
        },
    )
    add(
        "openllmetry",
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "llm.usage.cache_read_input_tokens": 5,
            "llm.user": "u9",
            **USAGE,
        },
    )
    add(
        "openlit-reported-cost",
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.cost": 0.0123, **USAGE},
        scope="openlit.otel.tracing",
    )
    add(
        "reported-cost",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.cost.amount": 0.5,
            "gen_ai.usage.cost.source": "provider",
            **USAGE,
        },
    )
    add(
        "error-rate-limit",
        {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "error.type": "RateLimitError"},
        error=True,
    )
    add(
        "error-category",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "genai_otel.error.category": "timeout",
            **USAGE,
        },
        error=True,
    )
    add(
        "stream",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.stream": True,
            "gen_ai.response.time_to_first_chunk": 0.35,
            **USAGE,
        },
    )
    add(
        "user-feature",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "user.id": "u1",
            "genai_otel.feature": "checkout-assistant",
            **USAGE,
        },
    )
    add(
        "embeddings",
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 9,
        },
    )
    add(
        "absurd-tokens",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10**12,
            "gen_ai.usage.output_tokens": -1,
        },
    )
    add(
        "token-types",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": "12",
            "gen_ai.usage.output_tokens": 2.5,
            "gen_ai.usage.cache_read.input_tokens": [1, 2],
        },
    )
    add(
        "evaluation-event",
        {"http.route": "/judge"},
        events=[
            (
                EVALUATION,
                {
                    "gen_ai.evaluation.name": "relevance",
                    "gen_ai.evaluation.score.value": 8.0,
                    "gen_ai.evaluation.score.label": "good",
                },
            )
        ],
    )
    add(
        "evaluation-on-genai",
        {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", **USAGE},
        events=[
            (EVALUATION, {"gen_ai.evaluation.name": "faithfulness", "gen_ai.evaluation.score.value": 0.4})
        ],
    )
    add("not-genai", {"http.route": "/orders", "http.response.status_code": 200}, name="GET /orders")

    repeated = [
        make_span(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 100 + i,
                "gen_ai.usage.output_tokens": i,
                "user.id": f"user-{i % 3}",
            },
            error=i == 2,
        )
        for i in range(4)
    ]
    out["lane-repeated-kind"] = make_request(repeated)
    out["two-resources"] = _two_resources()
    out["duplicate-pair"] = _duplicate_pair()
    # one call and one tool span, each twice: the copies (a sender's retry) are counted nothing
    call = make_span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", **USAGE})
    tool = make_span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
    out["redelivered"] = make_request([call, tool, call, tool])
    out["collector-field-order"] = _reversed(out["openai-chat"])
    out["collector-field-order-events"] = _reversed(out["evaluation-on-genai"])
    out["already-enriched"] = run(make_pipeline(), out["openai-chat"])

    deep = make_span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", **USAGE})
    deep.attributes.append(KeyValue(key="app.context", value=_nested_kvlist(20)))
    out["deep-kvlist"] = make_request([deep])
    nested = make_span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
    nested.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=_nested_array(3)))
    out["nested-array"] = make_request([nested])

    model = b"\x0a\x06gpt-4o"
    out["invalid-utf8-value"] = request_of_span_bytes(
        _kv(b"gen_ai.request.model", b"\x0a\x04gp\xc3\x28")
        + _kv(b"gen_ai.provider.name", b"\x0a\x02\xff\xfe")
    )
    out["invalid-utf8-key"] = request_of_span_bytes(
        _kv(b"gen_ai.request.model", model) + _kv(b"user.\xe2\x82id", b"\x0a\x01u")
    )
    out["no-header-span"] = request_of_span_bytes(_kv(b"gen_ai.request.model", model))
    out["user-id-only"] = request_of_span_bytes(_kv(b"user.id", b"\x0a\x02u1") + b"\x39\x01")
    chat = out["openai-chat"]
    out["truncated-frame"] = chat[: len(chat) * 2 // 3]
    out["length-past-end"] = chat[:1] + b"\xff\x7f" + chat[3:]
    out["empty-request"] = b""
    out["empty-resource-spans"] = b"\x0a\x00"
    return out


def dictionary() -> str:
    from genai_otel.processors.normalise import SCANNED_KEYS

    tokens = [
        *SCANNED_KEYS,
        "service.name",
        EVALUATION,
        "gen_ai.evaluation.name",
        "gen_ai.evaluation.score.value",
        "gen_ai.request.stream",
        "openai",
        "anthropic",
        "gcp.gemini",
        "gpt-4o",
        "claude-sonnet-4-5",
        "com.anthropic.sdk.python",
        "openlit",
        "chat",
    ]
    lines = ["# generated by make_corpus.py: do not edit"]
    lines += [f'"{token}"' for token in tokens]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed corpus differs")
    args = parser.parse_args()
    wanted = {f"seed-{name}.bin": data for name, data in seeds().items()}
    present = {path.name: path.read_bytes() for path in CORPUS.glob("seed-*.bin")}
    if args.check:
        if DICTIONARY.read_text() != dictionary():
            print(f"{DICTIONARY.name} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        if present != wanted:
            stale = sorted(set(present) ^ set(wanted) | {n for n in wanted if present.get(n) != wanted[n]})
            print(f"the seed corpus is stale: {stale}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    CORPUS.mkdir(exist_ok=True)
    DICTIONARY.write_text(dictionary())
    for name in set(present) - set(wanted):
        (CORPUS / name).unlink()
    for name, data in sorted(wanted.items()):
        (CORPUS / name).write_bytes(data)
        print(f"{name:48} {len(data):5} bytes  {hashlib.sha256(data).hexdigest()[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
