"""Protobuf wire-format reading and writing for OTLP trace requests, without a full parse.

Why not the generated classes: with the upb backend, reading one span attribute from Python
costs about 0.7 µs, so scanning every attribute of every span would eat the processor's whole
time budget. Instead we walk only the outer levels (request -> resource spans -> scope spans
-> span byte ranges) in Python, find the attributes we care about inside a span with one
compiled regular expression (C speed), and enrich a span by *appending* encoded attributes to
its bytes (protobuf merges repeated fields by concatenation). Untouched resource spans are
copied byte for byte.

Everything here raises `WireError` on malformed input; callers turn that into
INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Final

_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")

# Field tags (field number << 3 | wire type) of the messages we walk.
TAG_LEN_1: Final = 0x0A  # field 1, length-delimited
TAG_LEN_2: Final = 0x12  # field 2, length-delimited
TAG_SPAN_ATTRIBUTE: Final = 0x4A  # Span.attributes (field 9)
TAG_SPAN_STATUS: Final = 0x7A  # Span.status (field 15)


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message of the expected shape."""


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; return (value, next position)."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def encode_varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def skip_field(data: bytes, pos: int, wire_type: int, end: int) -> int:
    """Return the position just after a field's payload whose tag has been read."""
    if wire_type == 0:
        _, pos = read_varint(data, pos)
    elif wire_type == 1:
        pos += 8
    elif wire_type == 2:
        length, pos = read_varint(data, pos)
        pos += length
    elif wire_type == 5:
        pos += 4
    else:
        raise WireError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise WireError("field runs past the end of its message")
    return pos


def walk_fields(data: bytes, pos: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """All fields of the message in data[pos:end] as
    (field number, wire type, field start incl. its tag, value start, value end).

    For length-delimited fields the value is the payload (after the length prefix).
    """
    fields = []
    while pos < end:
        field_start = pos
        tag, pos = read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 2:
            length, pos = read_varint(data, pos)
            stop = pos + length
            if stop > end:
                raise WireError("length-delimited field runs past the end of its message")
        else:
            stop = skip_field(data, pos, wire_type, end)
        fields.append((number, wire_type, field_start, pos, stop))
        pos = stop
    if pos != end:
        raise WireError("message overruns its length")
    return fields


def iter_fields(data: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """All fields of the message in data[pos:end] as (field number, wire type, value start, value end)."""
    return [(number, kind, start, stop) for number, kind, _, start, stop in walk_fields(data, pos, end)]


@dataclass(slots=True)
class ScopeBlock:
    """One ScopeSpans message: its scope name and the byte ranges of its spans."""

    scope_name: str
    # (field start incl. tag, payload start, payload end, is a span) for every field.
    fields: list[tuple[int, int, int, bool]] = field(default_factory=list)
    # field index -> encoded attributes to append to that span
    additions: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class ResourceBlock:
    """One ResourceSpans message."""

    start: int  # first byte of the tag
    end: int  # one past the payload
    resource: tuple[int, int] | None  # payload range of the Resource message
    # (field start incl. tag, payload start, payload end, ScopeBlock or None for other fields)
    fields: list[tuple[int, int, int, ScopeBlock | None]] = field(default_factory=list)


def split_request(data: bytes) -> tuple[list[ResourceBlock], int]:
    """Walk an ExportTraceServiceRequest down to span byte ranges; return blocks and span count."""
    blocks: list[ResourceBlock] = []
    span_count = 0
    end = len(data)
    pos = 0
    while pos < end:
        start = pos
        tag, pos = read_varint(data, pos)
        if tag != TAG_LEN_1:
            pos = skip_field(data, pos, tag & 7, end)  # unknown field of the request: kept
            blocks.append(ResourceBlock(start, pos, None))
            blocks[-1].fields.append((start, start, pos, None))
            continue
        length, pos = read_varint(data, pos)
        stop = pos + length
        if stop > end:
            raise WireError("resource_spans runs past the end of the request")
        block = ResourceBlock(start, stop, None)
        for number, wire_type, field_start, value_start, value_end in walk_fields(data, pos, stop):
            if number == 1 and wire_type == 2:
                block.resource = (value_start, value_end)
                block.fields.append((field_start, value_start, value_end, None))
            elif number == 2 and wire_type == 2:
                scope = _split_scope(data, value_start, value_end)
                span_count += sum(1 for f in scope.fields if f[3])
                block.fields.append((field_start, value_start, value_end, scope))
            else:
                block.fields.append((field_start, value_start, value_end, None))
        blocks.append(block)
        pos = stop
    return blocks, span_count


def _split_scope(data: bytes, pos: int, end: int) -> ScopeBlock:
    scope = ScopeBlock("")
    append = scope.fields.append
    while pos < end:
        field_start = pos
        tag = data[pos]
        if tag == TAG_LEN_2:  # the hot loop: one span
            length = data[pos + 1] if pos + 1 < end else 0x80
            if length < 0x80:
                pos += 2
            else:
                length, pos = read_varint(data, pos + 1)
            stop = pos + length
            if stop > end:
                raise WireError("span runs past the end of its scope_spans")
            append((field_start, pos, stop, True))
            pos = stop
            continue
        tag, pos = read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 2:
            length, pos = read_varint(data, pos)
            stop = pos + length
            if stop > end:
                raise WireError("field runs past the end of its scope_spans")
            if number == 1:
                scope.scope_name = _scope_name(data, pos, stop)
        else:
            stop = skip_field(data, pos, wire_type, end)
        append((field_start, pos, stop, False))
        pos = stop
    if pos != end:
        raise WireError("scope_spans overruns its length")
    return scope


def _scope_name(data: bytes, pos: int, end: int) -> str:
    for number, wire_type, fstart, fend in iter_fields(data, pos, end):
        if number == 1 and wire_type == 2:
            return data[fstart:fend].decode("utf-8", "replace")
    return ""


# --------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------
class KeyScanner:
    """Finds span attributes (Span field 9) with given keys inside a byte range.

    The pattern matches ``0x0A <key length> <key> 0x12`` (KeyValue.key then KeyValue.value);
    each match is then checked structurally: the KeyValue must be preceded by the expected
    field tag and a length equal to the KeyValue's actual length. So an attribute of an event
    or a link (different tag) is never mistaken for a span attribute, and a key that merely
    appears inside some string value is rejected unless that string reproduces the whole
    framing byte for byte.
    """

    def __init__(self, keys: list[str], tag: int = TAG_SPAN_ATTRIBUTE) -> None:
        self.tag = tag
        encoded = sorted({k.encode() for k in keys}, key=len, reverse=True)
        for key in encoded:
            if len(key) >= 0x80:
                raise ValueError(f"attribute key too long for the scanner: {key!r}")
        self._keys = {k: k.decode() for k in encoded}
        alternatives = b"|".join(re.escape(bytes((len(k),)) + k) for k in encoded)
        self.pattern = re.compile(b"\\n(" + alternatives + b")\\x12", re.DOTALL)

    def scan(self, data: bytes, start: int, end: int) -> dict[str, object]:
        """Attribute values by key (first occurrence wins); values are str, int, float or bool.

        Array, map and bytes values decode to the `UNSUPPORTED` marker. A span whose first byte
        is not the trace id's tag was not written in field-number order (the collector writes
        fields, KeyValue's included, in reverse): it is read with `scan_fields`.
        """
        if self.tag == TAG_SPAN_ATTRIBUTE and start < end and data[start] != TAG_LEN_1:
            return self.scan_fields(data, start, end)
        found: dict[str, object] = {}
        tag = self.tag
        for match in self.pattern.finditer(data, start, end):
            kv_start = match.start()
            value_len_pos = match.end()
            if value_len_pos >= end:
                continue
            value_len = data[value_len_pos]
            if value_len < 0x80:
                value_start = value_len_pos + 1
            else:
                try:
                    value_len, value_start = read_varint(data, value_len_pos)
                except WireError:
                    continue
            value_end = value_start + value_len
            if value_end > end:
                continue
            kv_len = value_end - kv_start
            # The KeyValue's own tag and length must sit right before it.
            if kv_len < 0x80:
                if kv_start < start + 2 or data[kv_start - 1] != kv_len or data[kv_start - 2] != tag:
                    continue
            else:
                prefix = bytes((tag,)) + encode_varint(kv_len)
                if data[kv_start - len(prefix) : kv_start] != prefix:
                    continue
            key = match.group(1)[1:].decode()
            if key in found:
                continue
            found[key] = decode_any_value(data, value_start, value_end)
        return found

    def scan_fields(self, data: bytes, start: int, end: int) -> dict[str, object]:
        """Like `scan`, by walking the message's fields: any field order, in the message and in
        each KeyValue. A malformed message yields no attributes.
        """
        found: dict[str, object] = {}
        number_wanted = self.tag >> 3
        keys = self._keys
        try:
            for number, wire_type, fstart, fend in iter_fields(data, start, end):
                if number != number_wanted or wire_type != 2:
                    continue
                key_range: tuple[int, int] | None = None
                value_start = value_end = fend
                for inner, inner_type, istart, iend in iter_fields(data, fstart, fend):
                    if inner == 1 and inner_type == 2:
                        key_range = (istart, iend)
                    elif inner == 2 and inner_type == 2:
                        value_start, value_end = istart, iend
                if key_range is None:
                    continue
                key = keys.get(data[key_range[0] : key_range[1]])
                if key is None or key in found:
                    continue
                found[key] = decode_any_value(data, value_start, value_end)
        except WireError:
            return {}
        return found


class _Unsupported:
    """Marker for attribute values of a type the processor does not read (arrays, maps, bytes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSUPPORTED"


UNSUPPORTED: Final = _Unsupported()


def decode_any_value(data: bytes, pos: int, end: int) -> object:
    """Decode an AnyValue payload: str, bool, int, float, a list of str for string arrays, or UNSUPPORTED."""
    if pos >= end:
        return UNSUPPORTED  # empty AnyValue: no value set
    tag = data[pos]
    try:
        if tag == 0x0A:
            length, start = read_varint(data, pos + 1)
            if start + length > end:  # runs past its AnyValue: malformed, as the C lane reads it
                return UNSUPPORTED
            return data[start : start + length].decode("utf-8", "replace")
        if tag == 0x18:
            value, _ = read_varint(data, pos + 1)
            return value - (1 << 64) if value >= 1 << 63 else value
        if tag == 0x21:
            if pos + 9 > end:
                return UNSUPPORTED
            return _DOUBLE.unpack_from(data, pos + 1)[0]
        if tag == 0x10:
            value, _ = read_varint(data, pos + 1)
            return bool(value)
        if tag == 0x2A:  # ArrayValue: keep its string items (finish reasons)
            length, start = read_varint(data, pos + 1)
            items: list[str] = []
            for number, wire_type, fstart, fend in iter_fields(data, start, start + length):
                # Only a string item is decoded, so nothing nested is ever descended into: any
                # depth of ArrayValue/KvlistValue costs one level here, never a recursion.
                if number == 1 and wire_type == 2 and fstart < fend and data[fstart] == 0x0A:
                    item = decode_any_value(data, fstart, fend)
                    if isinstance(item, str):
                        items.append(item)
            return items
    except (WireError, IndexError):
        return UNSUPPORTED
    return UNSUPPORTED


# --------------------------------------------------------------------------------------
# Encoding new attributes
# --------------------------------------------------------------------------------------
def _key_value(key: str, any_value: bytes) -> bytes:
    key_bytes = key.encode()
    body = (
        b"\n"
        + encode_varint(len(key_bytes))
        + key_bytes
        + b"\x12"
        + encode_varint(len(any_value))
        + any_value
    )
    return bytes((TAG_SPAN_ATTRIBUTE,)) + encode_varint(len(body)) + body


def encode_string_attribute(key: str, value: str) -> bytes:
    raw = value.encode()
    return _key_value(key, b"\n" + encode_varint(len(raw)) + raw)


def encode_bool_attribute(key: str, value: bool) -> bytes:
    return _key_value(key, b"\x10\x01" if value else b"\x10\x00")


def encode_int_attribute(key: str, value: int) -> bytes:
    return _key_value(key, b"\x18" + encode_varint(value & 0xFFFFFFFFFFFFFFFF))


class DoubleAttributeEncoder:
    """Pre-built framing for one double-valued key: encoding is a prefix plus 8 bytes."""

    __slots__ = ("prefix",)

    def __init__(self, key: str) -> None:
        self.prefix = _key_value(key, b"\x21" + bytes(8))[:-8]

    def __call__(self, value: float) -> bytes:
        return self.prefix + _DOUBLE.pack(value)


class IntAttributeEncoder:
    """Pre-built framing for one int-valued key: encoding is a cached header plus the varint.

    Same bytes as `encode_int_attribute`; the header depends only on the varint's length.
    """

    __slots__ = ("headers",)

    def __init__(self, key: str) -> None:
        # headers[n]: everything before the 0x18 tag of a value whose varint takes n bytes
        self.headers = [b""] + [
            encode_int_attribute(key, 1 << (7 * (size - 1)) if size > 1 else 0)[: -(size + 1)]
            for size in range(1, 11)
        ]

    def __call__(self, value: int) -> bytes:
        varint = encode_varint(value & 0xFFFFFFFFFFFFFFFF)
        return self.headers[len(varint)] + b"\x18" + varint


def read_fixed64(data: bytes, pos: int) -> int:
    return int(_FIXED64.unpack_from(data, pos)[0])


def length_prefixed(tag: int, payload_parts: list[bytes]) -> list[bytes]:
    size = sum(len(p) for p in payload_parts)
    return [bytes((tag,)) + encode_varint(size), *payload_parts]


# --------------------------------------------------------------------------------------
# Span header facts
# --------------------------------------------------------------------------------------
STATUS_CODE_ERROR: Final = 2


# (trace id, start time ns, end time ns, status code, span id, parent span id); ids b"" when absent
SpanFacts = tuple[bytes, int, int, int, bytes, bytes]


def span_facts(data: bytes, start: int, end: int) -> SpanFacts:
    """The header facts of the span in data[start:end] (the C walk reads the same in one pass)."""
    return _span_header(data, start, end)


def _span_header(data: bytes, start: int, end: int) -> tuple[bytes, int, int, int, bytes, bytes]:
    """(trace id, start time ns, end time ns, status code, span id, parent span id).

    Fields 1-8 come first in the canonical field order every OTLP encoder uses, so the walk
    stops at the first attribute; the status (field 15) is read from the tail, where the
    canonical order puts it (only `flags`, field 16, may follow). A producer using another
    order still gets correct times (the walk is exact); its status is found by the exact
    fallback walk.
    """
    trace_id = span_id = parent_id = b""
    start_ns = end_ns = 0
    pos = start
    seen_end = False
    while pos < end and not seen_end:
        tag = data[pos]
        if tag == 0x39:  # start_time_unix_nano, fixed64
            start_ns = _FIXED64.unpack_from(data, pos + 1)[0]
            pos += 9
        elif tag == 0x41:  # end_time_unix_nano
            end_ns = _FIXED64.unpack_from(data, pos + 1)[0]
            pos += 9
            seen_end = True
        elif tag == 0x0A:
            length, payload = read_varint(data, pos + 1)
            trace_id = data[payload : payload + length]
            pos = payload + length
        elif tag in (0x12, 0x1A, 0x22, 0x2A):  # span id, trace state, parent, name
            length, payload = read_varint(data, pos + 1)
            if tag == 0x12:
                span_id = data[payload : payload + length]
            elif tag == 0x22:
                parent_id = data[payload : payload + length]
            pos = payload + length
        elif tag == 0x30:  # kind
            _, pos = read_varint(data, pos + 1)
        else:
            break  # attributes or a later field: non-canonical producers handled below
    if pos > end:
        raise WireError("span header runs past the end of the span")
    status = _tail_status(data, start, end)
    if status < 0 or not seen_end:
        return _span_header_exact(data, start, end)
    return trace_id, start_ns, end_ns, status, span_id, parent_id


def _tail_status(data: bytes, start: int, end: int) -> int:
    """Status code from the span's tail; 0 when there is no status; -1 when unsure."""
    tail = end
    if tail - start >= 6 and data[tail - 6] == 0x85 and data[tail - 5] == 0x01:
        tail -= 6  # flags (fixed32) follow the status
    # Shortest possible status frame: 0x7A <len> ... ; a code-only status is 7A 02 18 <code>.
    if (
        tail - start >= 4
        and data[tail - 4] == TAG_SPAN_STATUS
        and data[tail - 3] == 2
        and data[tail - 2] == 0x18
    ):
        return data[tail - 1]
    if tail - start >= 2 and data[tail - 2] == TAG_SPAN_STATUS and data[tail - 1] == 0:
        return 0
    # A status with a message: look back for a frame whose length reaches exactly the tail.
    low = max(start, tail - 300)
    pos = data.rfind(bytes((TAG_SPAN_STATUS,)), low, tail - 1)
    while pos >= low:
        try:
            length, payload = read_varint(data, pos + 1)
        except WireError:
            length, payload = -1, 0
        if payload + length == tail:
            try:
                code = 0
                for number, wire_type, fstart, _ in iter_fields(data, payload, tail):
                    if number == 3 and wire_type == 0:
                        code, _ = read_varint(data, fstart)
                return code
            except WireError:
                pass
        pos = data.rfind(bytes((TAG_SPAN_STATUS,)), low, pos)
    # No status frame at the tail: either no status at all or a non-canonical order.
    if b"\x7a" not in data[max(start, tail - 300) : tail]:
        return 0
    return -1


def _span_header_exact(data: bytes, start: int, end: int) -> tuple[bytes, int, int, int, bytes, bytes]:
    trace_id = span_id = parent_id = b""
    start_ns = end_ns = status = 0
    for number, wire_type, fstart, fend in iter_fields(data, start, end):
        if number == 1 and wire_type == 2:
            trace_id = data[fstart:fend]
        elif number == 2 and wire_type == 2:
            span_id = data[fstart:fend]
        elif number == 4 and wire_type == 2:
            parent_id = data[fstart:fend]
        elif number == 7 and wire_type == 1:
            start_ns = _FIXED64.unpack_from(data, fstart)[0]
        elif number == 8 and wire_type == 1:
            end_ns = _FIXED64.unpack_from(data, fstart)[0]
        elif number == 15 and wire_type == 2:
            for snumber, swire, sstart, _ in iter_fields(data, fstart, fend):
                if snumber == 3 and swire == 0:
                    status, _ = read_varint(data, sstart)
    return trace_id, start_ns, end_ns, status, span_id, parent_id


# --------------------------------------------------------------------------------------
# Splitting a request by span (for a next hop with a message size limit)
# --------------------------------------------------------------------------------------
def _framed_size(payload: int) -> int:
    """Bytes of a length-delimited field with a one-byte tag around `payload` bytes."""
    return 1 + len(encode_varint(payload)) + payload


@dataclass(slots=True)
class _Framing:
    """A ResourceSpans' or ScopeSpans' fields other than its children, split around them."""

    head: bytes  # fields before the first child (Resource / InstrumentationScope, canonically)
    tail: bytes  # fields after it (schema_url, canonically)


def _resource_layout(
    data: bytes, blocks: list[ResourceBlock]
) -> list[tuple[_Framing | None, list[tuple[_Framing, list[bytes]]]]]:
    """Per ResourceSpans: its framing and, per ScopeSpans, its framing and its spans' field bytes.

    A top-level field of the request other than resource_spans gets framing None and its raw
    bytes as its only "span" so that it travels (in the first piece) unchanged.
    """
    layout: list[tuple[_Framing | None, list[tuple[_Framing, list[bytes]]]]] = []
    for block in blocks:
        if data[block.start] != TAG_LEN_1:
            layout.append((None, [(_Framing(b"", b""), [data[block.start : block.end]])]))
            continue
        head: list[bytes] = []
        tail: list[bytes] = []
        scopes: list[tuple[_Framing, list[bytes]]] = []
        for field_start, _, value_end, scope in block.fields:
            if scope is None:
                (tail if scopes else head).append(data[field_start:value_end])
                continue
            scope_head: list[bytes] = []
            scope_tail: list[bytes] = []
            spans: list[bytes] = []
            for span_start, _, span_end, is_span in scope.fields:
                if is_span:
                    spans.append(data[span_start:span_end])
                else:
                    (scope_tail if spans else scope_head).append(data[span_start:span_end])
            scopes.append((_Framing(b"".join(scope_head), b"".join(scope_tail)), spans))
        layout.append((_Framing(b"".join(head), b"".join(tail)), scopes))
    return layout


def largest_single_span_export(data: bytes) -> int:
    """The size of the largest request `split_by_size` can make holding one span of `data`:
    the span, its ScopeSpans and ResourceSpans framing. 0 when `data` holds no span."""
    largest = 0
    for resource, scopes in _resource_layout(data, split_request(data)[0]):
        if resource is None:
            continue
        outer = len(resource.head) + len(resource.tail)
        for scope, spans in scopes:
            inner = len(scope.head) + len(scope.tail)
            for span in spans:
                largest = max(largest, _framed_size(outer + _framed_size(inner + len(span))))
    return largest


def split_by_size(data: bytes, limit: int) -> list[tuple[bytes, int]]:
    """Split an ExportTraceServiceRequest by span into requests of at most `limit` bytes each,
    as (request bytes, span count), spans in their original order.

    Each piece repeats the Resource and Scope framing of the spans it holds (copied byte for
    byte, as are the spans). A piece larger than `limit` holds exactly one span that cannot fit
    on its own; the caller decides what to do with it. Raises `WireError` on malformed input.
    """
    pieces: list[tuple[bytes, int]] = []
    out: list[bytes] = []  # the piece being built, minus its open ResourceSpans
    out_size = 0
    out_spans = 0
    for resource, scopes in _resource_layout(data, split_request(data)[0]):
        if resource is None:  # an unknown top-level field: kept in the current piece
            raw = scopes[0][1][0]
            out.append(raw)
            out_size += len(raw)
            continue
        framing = len(resource.head) + len(resource.tail)
        done_scopes: list[bytes] = []  # this resource's finished ScopeSpans fields in this piece
        done_size = 0
        # A ResourceSpans without scopes, a ScopeSpans without spans: their framing is placed
        # like a span (None), so that it too never pushes a piece over the limit.
        placed: list[tuple[_Framing | None, list[bytes]]] = [*scopes] or [(None, [])]
        for scope, spans in placed:
            taken: list[bytes] = []
            taken_size = 0
            units: list[bytes | None] = [*spans] or [None]
            for span in units:
                size = len(span) if span is not None else 0
                if scope is None:
                    grown = out_size + _framed_size(framing + done_size)
                else:
                    inner = len(scope.head) + len(scope.tail) + taken_size + size
                    grown = out_size + _framed_size(framing + done_size + _framed_size(inner))
                if grown > limit and (out or done_scopes or taken):
                    if taken and scope is not None:
                        done_scopes.append(_scope_field(scope, taken, taken_size))
                    if done_scopes:
                        out.append(_resource_field(resource, done_scopes))
                    pieces.append((b"".join(out), out_spans))
                    out, out_size, out_spans = [], 0, 0
                    done_scopes, done_size, taken, taken_size = [], 0, [], 0
                if span is not None:
                    taken.append(span)
                    taken_size += size
                    out_spans += 1
            if scope is not None:
                field = _scope_field(scope, taken, taken_size)
                done_scopes.append(field)
                done_size += len(field)
        field = _resource_field(resource, done_scopes)
        out.append(field)
        out_size += len(field)
    if out or not pieces:
        pieces.append((b"".join(out), out_spans))
    return pieces


def _scope_field(scope: _Framing, spans: list[bytes], spans_size: int) -> bytes:
    payload = len(scope.head) + spans_size + len(scope.tail)
    return b"".join([b"\x12", encode_varint(payload), scope.head, *spans, scope.tail])


def _resource_field(resource: _Framing, scopes: list[bytes]) -> bytes:
    payload = len(resource.head) + sum(len(s) for s in scopes) + len(resource.tail)
    return b"".join([b"\n", encode_varint(payload), resource.head, *scopes, resource.tail])
