"""The local observability stack: build the real components and run them as local processes.

`genai-otel stack up|down|status` (see `cli`) and `LocalStack` (see `runner`) start the collector,
the processor, Jaeger, Prometheus and Alertmanager from the same config files docker-compose.yml
mounts; `scripts/build-components` (see `build`, `release`) downloads or builds and caches the
binaries.
"""
