# genai-otel: the processor, the fake provider and the demo traffic for docker-compose.yml.
# PYTHON_VERSION comes from .env through compose's build args (tests check the default matches).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/genai-otel
# Dependencies first: a source change does not reinstall them.
COPY pyproject.toml setup.py README.md ./
COPY genai_otel ./genai_otel
COPY instrumentation ./instrumentation
COPY processors ./processors
RUN pip install ".[demo]"

# The stack's config templates, for the render-config service.
COPY .env ./.env
COPY collector-config ./collector-config
COPY prometheus ./prometheus

# The processor defaults to 127.0.0.1 (right on a host); in a container it must listen on the
# container's interface for the collector and Prometheus to reach it. Publishing stays compose's call.
ENV GENAI_OTEL_PROCESSOR_LISTEN=0.0.0.0:14317 \
    GENAI_OTEL_PROCESSOR_METRICS_LISTEN=0.0.0.0:9464

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin genai
USER 10001
ENTRYPOINT ["genai-otel"]
CMD ["--help"]
