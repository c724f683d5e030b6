"""The README's settings table and `processors/config.py` say the same thing.

The typed config model is the contract; the table is how users read it. Every setting has a row,
every row is a setting, and a default written as a plain literal equals the model's default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from genai_otel.processors.config import ProcessorConfig, load_config
from pydantic import BaseModel

README = Path(__file__).resolve().parents[2] / "README.md"
# a row names one key (and its flag), or several keys that share a default and a meaning
ROW = re.compile(r"^\| (?P<keys>`[a-z_.]+`(?:, `[a-z_.]+`)*)(?: \(`--[a-z-]+`\))? \| (?P<default>[^|]*) \|")


def settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys of every setting: a nested section's keys, or a leaf (mappings included)."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += settings(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def table() -> dict[str, str]:
    text = README.read_text()
    start = text.index("| key | default | meaning |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"unreadable settings row: {line[:80]}"
        for key in re.findall(r"`([a-z_.]+)`", match["keys"]):
            rows[key] = match["default"].strip()
    return rows


def default_of(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_every_setting_has_a_row_and_every_row_is_a_setting() -> None:
    documented = table()
    assert sorted(documented) == sorted(settings(ProcessorConfig))


def test_a_default_written_as_a_literal_is_the_models_default() -> None:
    config = load_config(environ={})
    checked = 0
    for key, cell in table().items():
        match = re.fullmatch(r"`([^`]+)`", cell)
        if match is None or match[1] in table():  # prose, or "the same as that other key"
            continue
        value = default_of(config, key)
        written = match[1]
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert float(written) == value, key
        else:
            assert written == literal(value), key
        checked += 1
    assert checked >= 20  # the table keeps literal defaults for most settings
