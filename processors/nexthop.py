"""What the next hop's answers mean for a forward: retry later, split and resend, or give up."""

from __future__ import annotations

import logging
from typing import Final

import grpc
from google.rpc import error_details_pb2, status_pb2

logger = logging.getLogger(__name__)

STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
# The statuses after which the same request may succeed later (the collector's OTLP exporter
# retries the same set).
RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
# How grpc-go ("grpc: received message larger than max (N vs. M)") and grpc core ("Received
# message larger than max (N vs. M)") say a message broke the receiver's size limit.
TOO_LARGE_TEXT: Final = "larger than max"


def too_large(code: grpc.StatusCode, details: str | None) -> bool:
    """The peer refused the message for its size: the same bytes will never pass, so this
    RESOURCE_EXHAUSTED is not backpressure and must not be retried as such."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and TOO_LARGE_TEXT in (details or "").lower()


def retry_delay(metadata: object) -> float | None:
    """The RetryInfo delay in a status's details trailer, if the peer sent one."""
    try:
        for key, value in metadata or ():  # type: ignore[attr-defined]
            if key == RETRY_INFO_KEY:
                info = error_details_pb2.RetryInfo.FromString(value)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            if key == STATUS_DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.RetryInfo()
                    if detail.Unpack(info):
                        return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # a malformed trailer from the peer is just ignored
        logger.debug("unreadable status details", exc_info=True)
    return None
