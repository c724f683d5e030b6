"""Make `opentelemetry-instrument` work with genai-otel alone installed.

`opentelemetry-instrument` loads one ``opentelemetry_distro`` and one
``opentelemetry_configurator`` entry point. genai-otel registers both (name ``genai_otel``):
the distro defaults the exporters to OTLP, exactly like the ``opentelemetry-distro``
package, and the configurator is the SDK's own, which builds the tracer, meter and logger
providers from the ``OTEL_*`` environment variables (``OTEL_SERVICE_NAME``,
``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...).
Variables the user sets always win over these defaults.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL

DEFAULTS = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "otlp",
    OTEL_LOGS_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
}


class GenaiOtelDistro(BaseDistro):
    """Defaults the exporters to OTLP (gRPC) unless the environment says otherwise."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)


class GenaiOtelConfigurator(_OTelSDKConfigurator):
    """The SDK's environment-driven configuration, under genai-otel's entry point."""
