"""The fake provider's Bedrock Runtime endpoints on the wire: signing required, event-stream frames."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer

from genai_otel.fake_provider import FakeProvider
from genai_otel.fake_provider.bedrock_api import event_frame

SIGNED = {
    "authorization": (
        "AWS4-HMAC-SHA256 Credential=AKIDFAKE/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=" + "ab" * 32
    ),
    "x-amz-date": "20260101T000000Z",
    "content-type": "application/json",
}
BODY = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()


def post(provider: FakeProvider, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(provider.base_url + path, data=BODY, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json"},
        {**SIGNED, "authorization": "AWS4-HMAC-SHA256 Credential=AKIDFAKE"},  # not the whole shape
        {key: value for key, value in SIGNED.items() if key != "x-amz-date"},
    ],
)
def test_unsigned_requests_are_refused(headers: dict[str, str]) -> None:
    with FakeProvider() as provider:
        status, answer_headers, body = post(provider, "/model/amazon.nova-lite-v1%3A0/converse", headers)
    assert status == 403
    assert answer_headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:")
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_sigv4_shaped_and_api_key_requests_are_answered() -> None:
    with FakeProvider() as provider:
        signed = post(provider, "/model/amazon.nova-lite-v1%3A0/converse", SIGNED)
        keyed = post(provider, "/model/amazon.nova-lite-v1%3A0/converse", {"authorization": "Bearer key"})
    assert signed[0] == keyed[0] == 200
    assert json.loads(signed[2])["usage"] == {"inputTokens": 5, "outputTokens": 16, "totalTokens": 21}


def test_converse_stream_frames_carry_valid_checksums() -> None:
    with FakeProvider() as provider:
        status, headers, raw = post(provider, "/model/amazon.nova-lite-v1%3A0/converse-stream", SIGNED)
    assert status == 200
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()  # botocore's own decoder checks both CRCs
    buffer.add_data(raw)
    messages = list(buffer)
    kinds = [message.headers[":event-type"] for message in messages]
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * 16,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert json.loads(messages[-1].payload)["usage"]["outputTokens"] == 16


def test_event_frame_layout() -> None:
    frame = event_frame({":event-type": "x"}, b"{}")
    total, headers_length, prelude_crc = struct.unpack("!III", frame[:12])
    assert total == len(frame) == 12 + headers_length + 2 + 4
    assert prelude_crc == zlib.crc32(frame[:8])
    assert struct.unpack("!I", frame[-4:])[0] == zlib.crc32(frame[:-4])
