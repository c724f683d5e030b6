"""The genai-otel OTLP processor: normalise, price, enrich, aggregate, forward.

Installed as ``genai_otel.processors``; run with ``genai-otel processor`` (see ``service``).
"""
