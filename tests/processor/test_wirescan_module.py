"""The C extension as a module: multi-phase init with its state per module object, so it loads
and works in subinterpreters, each with its own types."""

from __future__ import annotations

import subprocess
import sys

import pytest
from genai_otel.processors import scan

SUBINTERPRETERS = """
import _xxsubinterpreters as interpreters
code = '''
from genai_otel.processors import _wirescan, scan
assert scan.accelerated_available()
h = _wirescan.Histogram((1.0, 2.0), True)
h.observe(1.5, b"t", 3.0)
assert h.counts == [0, 1, 0] and h.exemplars[1] == (b"t", 1.5, 3.0)
assert _wirescan.Recent(4, 1.0).duplicates == 0
'''
for _ in range(3):
    interpreter = interpreters.create()
    interpreters.run_string(interpreter, code)
    interpreters.destroy(interpreter)
exec(code)
print("ok")
"""


def test_the_extension_works_in_subinterpreters() -> None:
    if not scan.accelerated_available():
        pytest.skip("the _wirescan extension is not built here")
    run = subprocess.run(
        [sys.executable, "-c", SUBINTERPRETERS], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_each_module_object_has_its_own_types() -> None:
    if not scan.accelerated_available():
        pytest.skip("the _wirescan extension is not built here")
    from genai_otel.processors import _wirescan

    assert _wirescan.Histogram.__module__ == "genai_otel.processors._wirescan"
    with pytest.raises(TypeError):  # immutable, like the static types they replace
        _wirescan.Lane.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):  # not a base type, as before
        type("Sub", (_wirescan.Histogram,), {})
