"""Demo traffic for the local stack.

`app` runs under opentelemetry-instrument; `run` is `genai-otel demo`.
"""
