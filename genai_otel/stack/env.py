"""Read the repository's `.env`: the single source of ports, versions and budgets.

The format is the subset docker compose reads: `KEY=VALUE` lines, `#` comments, no interpolation.
Process environment variables override the file, the same way compose treats them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = REPO_ROOT / ".env"


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """Parse a compose-style env file into a dict, in file order."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def settings(environ: Mapping[str, str] | None = None, path: Path = ENV_FILE) -> dict[str, str]:
    """The file's values, each overridden by a non-empty environment variable of the same name."""
    environ = os.environ if environ is None else environ
    merged = read_env_file(path)
    for key in merged:
        if environ.get(key):
            merged[key] = environ[key]
    return merged
