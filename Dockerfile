# genai-otel: the processor, the fake provider and the demo traffic for docker-compose.yml.
# PYTHON_VERSION comes from .env through compose's build args (tests check the default matches).
#
# Two stages: the build stage has a C compiler and makes a platform wheel with the processor's
# C extension (_wirescan), refusing to finish without it (GENAI_OTEL_REQUIRE_EXTENSION); the
# final stage installs only that wheel, so the image runs the accelerated hot path with no
# compiler in it.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GENAI_OTEL_REQUIRE_EXTENSION=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY genai_otel ./genai_otel
COPY instrumentation ./instrumentation
COPY processors ./processors
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; (w,) = glob.glob('/wheels/genai_otel-*.whl'); \
names = zipfile.ZipFile(w).namelist(); \
sys.exit(0 if any(n.startswith('genai_otel/processors/_wirescan') and n.endswith('.so') for n in names) \
else 'the wheel has no compiled _wirescan')"

FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/genai-otel
COPY --from=build /wheels /wheels
RUN pip install "$(ls /wheels/genai_otel-*.whl)[demo]" && rm -rf /wheels

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
