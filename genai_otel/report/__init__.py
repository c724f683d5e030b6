"""Cost and quality reports from Prometheus: `genai-otel report` (see `genai_otel.report.cli`)."""
