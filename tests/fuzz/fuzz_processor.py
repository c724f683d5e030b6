"""Differential fuzz target (atheris): C walk and lane vs pure Python on mutated OTLP requests.

Run it through `scripts/fuzz`, which builds the sanitized extension and sets the environment:

    scripts/fuzz --seconds 110          # what the test command runs
    scripts/fuzz --minutes 30           # a longer run

Each input is an ExportTraceServiceRequest's bytes, checked by `differential.check`: the
splitter C vs Python, the pipelines C-with-lane vs Python and C-without-lane vs Python, twice
each on fresh registries; the answers (forwarded bytes, or status and error class) and the
registries' expositions must be equal. A mismatch is saved (input `.bin` and every path's
outcome `.txt`) under the findings folder and counted; a crash or sanitizer report stops the
run and libFuzzer saves the input (`crash-*`). Known differences (`differential.KNOWN`) are
counted apart and a few of each kept.

Mutation is half structure-aware: the input is parsed as nested protobuf fields wherever a
payload parses cleanly, one to three edits are made to that tree (a payload's bytes mutated
with libFuzzer's mutator, a field deleted, duplicated, moved, reordered, a scanned key or
typed value put in, an attribute added, a value nested deeper) and the lengths re-framed, so
edits reach spans and attributes instead of breaking the outermost frame; the other half is
libFuzzer's byte-level mutation of the whole input (truncations and broken lengths).

Environment (set by scripts/fuzz):
  GENAI_OTEL_FUZZ_EXTENSION_DIR   a folder holding the sanitized `_wirescan` build, imported first
  GENAI_OTEL_FUZZ_FINDINGS        where mismatches and the stats file go
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests folder: `fuzz.differential`

EXTENSION_DIR = os.environ.get("GENAI_OTEL_FUZZ_EXTENSION_DIR", "")
FINDINGS = Path(os.environ.get("GENAI_OTEL_FUZZ_FINDINGS", "fuzz-findings"))
KEEP_PER_SIGNATURE = 3  # inputs kept per distinct difference (all are counted)

with atheris.instrument_imports(include=["genai_otel.processors"]):
    import genai_otel.processors as processors_package

    if EXTENSION_DIR:  # the sanitized build shadows the in-place one
        processors_package.__path__.insert(0, EXTENSION_DIR)
    from genai_otel.processors import scan as scan_module

    from fuzz import differential


def _check_extension() -> None:
    module = scan_module._accelerator
    if module is None:
        raise SystemExit("the _wirescan extension did not import (or is stale): nothing to compare")
    if EXTENSION_DIR and not str(module.__file__).startswith(EXTENSION_DIR):
        raise SystemExit(f"expected the sanitized _wirescan from {EXTENSION_DIR}, got {module.__file__}")
    print(f"fuzzing against {module.__file__}", file=sys.stderr, flush=True)


# -- findings and counts --------------------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.runs = 0
        self.mismatches = 0
        self.known: dict[str, int] = {}
        self.signatures: dict[str, int] = {}
        self.started = time.monotonic()
        self.written = 0.0

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.written < 2.0:
            return
        self.written = now
        state = {
            "runs": self.runs,
            "mismatches": self.mismatches,
            "distinct_mismatches": len(self.signatures),
            "known": self.known,
            "seconds": round(now - self.started, 1),
        }
        path = FINDINGS / "stats.json"
        path.with_suffix(".tmp").write_text(json.dumps(state))
        path.with_suffix(".tmp").replace(path)


STATS = Stats()


def _record(data: bytes, mismatch: differential.Mismatch) -> None:
    digest = hashlib.sha256(data).hexdigest()[:16]
    if mismatch.known:
        STATS.known[mismatch.known] = STATS.known.get(mismatch.known, 0) + 1
        if STATS.known[mismatch.known] <= KEEP_PER_SIGNATURE:
            (FINDINGS / f"known-{mismatch.known}-{digest}.bin").write_bytes(data)
        return
    STATS.mismatches += 1
    signature = mismatch.what + " " + mismatch.summary()[:120]
    seen = STATS.signatures.get(signature, 0)
    STATS.signatures[signature] = seen + 1
    if seen < KEEP_PER_SIGNATURE:
        (FINDINGS / f"mismatch-{digest}.bin").write_bytes(data)
        (FINDINGS / f"mismatch-{digest}.txt").write_text(
            f"{mismatch.summary()}\n\n{differential.describe(data)}\n"
        )
        print(f"MISMATCH saved {FINDINGS / f'mismatch-{digest}.bin'}: {mismatch.summary()[:300]}", flush=True)
    STATS.save(force=True)


def test_one_input(data: bytes) -> None:
    STATS.runs += 1
    mismatch = differential.check(data)
    if mismatch is not None:
        _record(data, mismatch)
    STATS.save()


# -- structure-aware mutation ---------------------------------------------------------------
# A node: [field number, wire type, raw value bytes, children or None]. Wire type 2 payloads that
# parse cleanly as fields get children (a guess: a string can look like a message, which is fine).
Node = list[Any]
MAX_PARSE_DEPTH = 24

TOKENS = [
    *(key.encode() for key in differential.SCANNED_KEYS),
    b"service.name", b"gen_ai.request.stream", b"http.route", b"gen_ai.evaluation.result",
    b"gen_ai.evaluation.name", b"gen_ai.evaluation.score.value", b"gen_ai.evaluation.score.label",
    b"openai", b"anthropic", b"Anthropic", b"gcp.gemini", b"x_ai", b"deepseek", b"acme", b"vertex_ai",
    b"gpt-4o", b"o3", b"claude-sonnet-4-5", b"claude-3-5-haiku-latest", b"gemini-2.5-pro", b"grok-3",
    b"deepseek-chat", b"chat", b"embeddings", b"execute_tool", b"invoke_agent", b"completion",
    b"flex", b"priority", b"default", b"provider", b"local", b"RateLimitError", b"timeout",
    b"rate_limit", b"com.anthropic.sdk.python", b"openlit.otel.tracing", b"u1", b"", b"\xff\xfe",
    b"\xc3\x28", b"\xed\xa0\x80", b"u" * 300,
]  # fmt: skip
NUMBERS = [0, 1, 2, 7, 127, 128, 255, 100_000_000, 100_000_001, 2**31 - 1, 2**32, 2**53, 2**53 + 1,
           2**63 - 1, 2**63, 2**64 - 1]  # fmt: skip
DOUBLES = [0.0, -0.0, 0.5, 1.0, -1.0, 1e-9, 1e300, float("inf"), float("-inf"), float("nan"), 2.0**53]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError("bad varint")


def _parse(data: bytes, start: int, end: int, depth: int) -> list[Node] | None:
    nodes: list[Node] = []
    pos = start
    try:
        while pos < end:
            tag, pos = _read_varint(data, pos, end)
            number, wire_type = tag >> 3, tag & 7
            if number == 0:
                return None
            if wire_type == 0:
                _, after = _read_varint(data, pos, end)
            elif wire_type == 1:
                after = pos + 8
            elif wire_type == 5:
                after = pos + 4
            elif wire_type == 2:
                length, pos = _read_varint(data, pos, end)
                after = pos + length
            else:
                return None
            if after > end:
                return None
            children = (
                _parse(data, pos, after, depth + 1) if wire_type == 2 and depth < MAX_PARSE_DEPTH else None
            )
            nodes.append([number, wire_type, data[pos:after], children])
            pos = after
    except ValueError:
        return None
    return nodes


def _serialise(nodes: list[Node]) -> bytes:
    out = bytearray()
    for number, wire_type, raw, children in nodes:
        out += _varint(number << 3 | wire_type)
        if wire_type == 2:
            payload = _serialise(children) if children is not None else raw
            out += _varint(len(payload)) + payload
        else:
            out += raw
    return bytes(out)


def _all_nodes(nodes: list[Node], into: list[tuple[list[Node], int]]) -> None:
    """Every (sibling list, index) pair of the tree."""
    for index, node in enumerate(nodes):
        into.append((nodes, index))
        if node[3]:
            _all_nodes(node[3], into)


def _message_lists(nodes: list[Node], into: list[list[Node]]) -> None:
    into.append(nodes)
    for node in nodes:
        if node[3] is not None:
            _message_lists(node[3], into)


def _any_value(rng: random.Random) -> Node:
    """An AnyValue payload as one field: string, bool, int, double, array, kvlist or bytes."""
    kind = rng.randrange(7)
    if kind == 0:
        return [1, 2, rng.choice(TOKENS), None]
    if kind == 1:
        return [2, 0, _varint(rng.randrange(3)), None]
    if kind == 2:
        return [3, 0, _varint(rng.choice(NUMBERS) * rng.choice((1, -1))), None]
    if kind == 3:
        return [4, 1, struct.pack("<d", rng.choice(DOUBLES)), None]
    if kind == 4:
        return [5, 2, b"", [[1, 2, b"", [_any_value(rng)]] for _ in range(rng.randrange(3))]]
    if kind == 5:
        return [6, 2, b"", [[1, 2, b"", _key_value(rng)]]]
    return [7, 2, rng.randbytes(rng.randrange(5)), None]


def _key_value(rng: random.Random) -> list[Node]:
    return [[1, 2, rng.choice(TOKENS), None], [2, 2, b"", [_any_value(rng)]]]


def _mutate_tree(nodes: list[Node], rng: random.Random, max_size: int) -> None:
    where: list[tuple[list[Node], int]] = []
    _all_nodes(nodes, where)
    messages: list[list[Node]] = []
    _message_lists(nodes, messages)
    choice = rng.randrange(10)
    if not where or choice == 0:  # a new attribute (field 9, a span's) or KeyValue anywhere
        target = rng.choice(messages)
        target.insert(rng.randrange(len(target) + 1), [rng.choice((9, 1, 3)), 2, b"", _key_value(rng)])
        return
    siblings, index = rng.choice(where)
    node = siblings[index]
    if choice == 1:
        del siblings[index]
    elif choice == 2:
        siblings.insert(index, _copy(node))
    elif choice == 3:  # reorder: fields in any order are still the same message
        rng.shuffle(siblings) if rng.randrange(2) else siblings.reverse()
    elif choice == 4:  # move a field into another message (a splice within the input)
        del siblings[index]
        target = rng.choice(messages)
        target.insert(rng.randrange(len(target) + 1), node)
    elif choice == 5 and node[1] == 2:  # a scanned key, a provider, a model, bad UTF-8
        node[2], node[3] = rng.choice(TOKENS), None
    elif choice == 6:  # a typed value in place of this field (AnyValue field numbers)
        siblings[index] = _any_value(rng)
    elif choice == 7 and node[1] in (0, 1, 5):
        if node[1] == 0:
            node[2] = _varint(rng.choice(NUMBERS) - rng.randrange(2))
        elif node[1] == 1:
            node[2] = struct.pack("<d", rng.choice(DOUBLES)) if rng.randrange(2) else rng.randbytes(8)
        else:
            node[2] = rng.randbytes(4)
    elif choice == 8:  # one level deeper: a kvlist or array around this value
        wrapper_field = rng.choice((5, 6))
        inner = (
            [[1, 2, b"", [node]]]
            if wrapper_field == 5
            else [[1, 2, b"", [[1, 2, b"k", None], [2, 2, b"", [node]]]]]
        )
        siblings[index] = [wrapper_field, 2, b"", inner]
    else:  # libFuzzer's byte mutation of one payload, framing kept
        raw = _serialise(node[3]) if node[3] is not None else node[2]
        if node[1] == 2:
            mutated = atheris.Mutate(raw, max(len(raw) * 2, 16))
            node[2], node[3] = mutated, (_parse(mutated, 0, len(mutated), 0) if rng.randrange(2) else None)
        else:
            node[2] = atheris.Mutate(raw, len(raw))[: len(raw)].ljust(len(raw), b"\x00")


def _copy(node: Node) -> Node:
    return [node[0], node[1], node[2], [_copy(child) for child in node[3]] if node[3] is not None else None]


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    tree = _parse(data, 0, len(data), 0) if rng.randrange(2) else None
    if tree is None:
        return atheris.Mutate(data, max_size)
    for _ in range(rng.randrange(1, 4)):
        _mutate_tree(tree, rng, max_size)
    out = _serialise(tree)
    if rng.randrange(20) == 0:  # now and then a truncated frame
        out = out[: rng.randrange(len(out) + 1)]
    return out[:max_size]


def main() -> None:
    FINDINGS.mkdir(parents=True, exist_ok=True)
    _check_extension()
    atheris.Setup(sys.argv, test_one_input, custom_mutator=mutate)
    try:
        atheris.Fuzz()
    finally:
        STATS.save(force=True)


if __name__ == "__main__":
    main()
