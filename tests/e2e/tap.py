"""An OTLP gRPC tee: records every span passing through, then forwards the request unchanged
(or, without a next hop, only records: a stand-in receiver).

Placed between the processor and the collector's enriched receiver, it sees every priced span,
including those tail sampling later keeps out of Jaeger.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class OtlpTap(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, forward_to: str | None, port: int = 0) -> None:
        """Forward to `forward_to` (host:port), or only record when it is None."""
        self._channel = grpc.insecure_channel(forward_to) if forward_to else None
        self._next = trace_service_pb2_grpc.TraceServiceStub(self._channel) if self._channel else None
        self._lock = threading.Lock()
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        if self._next is None:
            return trace_service_pb2.ExportTraceServiceResponse()
        return self._next.Export(request, timeout=10)  # type: ignore[no-any-return]

    def spans(self) -> list[tuple[str, dict[str, Any], Any]]:
        """(service name, span attributes, span) for every span seen so far."""
        out = []
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {kv.key: _value(kv.value) for kv in span.attributes}
                        out.append((str(resource.get("service.name")), attributes, span))
        return out

    def start(self) -> OtlpTap:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=2).wait()
        if self._channel is not None:
            self._channel.close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
