"""The configuration model: defaults, precedence, and errors that name key, value and rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.pricing import PriceOverrides

ROOT = Path(__file__).resolve().parents[2]


def _env_file() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def test_default_ports_are_the_ones_in_dot_env() -> None:
    env = _env_file()
    config = load_config(environ={})
    assert config.listen.endswith(f":{env['PROCESSOR_OTLP_PORT']}")
    assert config.metrics_listen.endswith(f":{env['PROCESSOR_METRICS_PORT']}")
    assert config.forward.endpoint.endswith(f":{env['COLLECTOR_ENRICHED_OTLP_PORT']}")


def test_precedence_is_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config_file = tmp_path / "processor.yaml"
    config_file.write_text(
        "forward:\n  queue_max_spans: 10\n  timeout_seconds: 3\n  concurrency: 3\nlabels:\n  top_users: 7\n"
    )
    environ = {
        "GENAI_OTEL_PROCESSOR_FORWARD__QUEUE_MAX_SPANS": "20",
        "GENAI_OTEL_PROCESSOR_FORWARD__TIMEOUT_SECONDS": "4",
        "GENAI_OTEL_PROCESSOR_LABELS__ALLOW": "service,provider,model",
        "GENAI_OTEL_PROCESSOR_LABELS__MAX_VALUES": "model=5,service=2",
    }
    config = load_config({"forward": {"queue_max_spans": 30}}, config_file, environ)
    assert config.forward.queue_max_spans == 30  # flag
    assert config.forward.timeout_seconds == 4  # env over file
    assert config.forward.concurrency == 3  # file over default
    assert config.labels.top_users == 7
    assert config.labels.allow == ["service", "provider", "model"]
    assert config.labels.max_values == {"model": 5, "service": 2}
    assert config.forward.retry.max_elapsed_seconds == 300  # default


def test_errors_name_key_value_source_and_rule(tmp_path: Path) -> None:
    config_file = tmp_path / "processor.yaml"
    config_file.write_text("labels:\n  allow: [service, prompt]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(
            {"listen": "localhost"}, config_file, {"GENAI_OTEL_PROCESSOR_FORWARD__RETRY__JITTER": "2"}
        )
    message = str(caught.value)
    assert "listen='localhost' (from flag): must be HOST:PORT" in message
    assert "forward.retry.jitter='2' (from env): Input should be less than or equal to 1" in message
    assert f"labels.allow=['service', 'prompt'] (from {config_file}): unknown label(s) ['prompt']" in message


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"forward\.queue_size=5 .*Extra inputs are not permitted"):
        load_config({"forward": {"queue_size": 5}}, environ={})


def test_price_overrides_file_adds_custom_models_and_discounts(tmp_path: Path) -> None:
    from .helpers import T_2025_07_01, enrich_one, make_pipeline

    overrides_file = tmp_path / "prices.yaml"
    overrides_file.write_text(
        "custom_models:\n"
        "  - provider: self-hosted\n    model: llama-internal*\n    prices:\n"
        "      - {from: 2025-01-01, input_mtok: 0.5, output_mtok: 1.0}\n"
        "      - {from: 2025-06-01, input_mtok: 0.25, output_mtok: 0.5}\n"
        "discounts:\n  - {provider: openai, model: gpt-4o, multiplier: 0.8, from: 2025-06-01}\n"
    )
    pipeline = make_pipeline(PriceOverrides.load(overrides_file))
    llama = enrich_one({"gen_ai.provider.name": "self-hosted", "gen_ai.request.model": "llama-internal-70b",
                        "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 1_000_000},
                       pipeline, start_ns=T_2025_07_01)  # fmt: skip
    assert llama["gen_ai.usage.cost.amount"] == 0.75
    assert llama["genai_otel.cost.price_table"].startswith("overrides ")
    gpt = enrich_one({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                      "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 0},
                     pipeline, start_ns=T_2025_07_01)  # fmt: skip
    assert gpt["gen_ai.usage.cost.amount"] == pytest.approx(2.0, abs=1e-9)  # 2.5 * 0.8


def test_bad_overrides_file_names_the_entry(tmp_path: Path) -> None:
    overrides_file = tmp_path / "prices.yaml"
    overrides_file.write_text("discounts:\n  - {provider: openai, multiplier: -1}\n")
    with pytest.raises(ValueError, match=r"discounts\.0\.multiplier=-1: Input should be greater than 0"):
        PriceOverrides.load(overrides_file)
