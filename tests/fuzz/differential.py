"""One fuzz input through every implementation of the processor's rules, compared exactly.

The input is an ExportTraceServiceRequest's bytes. It goes through:

* the request splitter, C (`_wirescan.split`) and Python (`RequestScanner.split_python`);
* four pipelines, each on a fresh registry with a fixed clock (so reproducers replay alone):
  the C walk with its lane and the Python path at the default token cap, and the C walk
  without the lane (a token cap of 2**53 turns the lane off, as in production) and the Python
  path at that cap. Each runs the request twice: the first pass teaches the lane the request's
  span kinds, the second runs through what it learned.

Each pass gives an outcome as the service would answer it (the forwarded bytes, or the status
and error class) and the registry's state after it. `check(data)` returns None when the paths
agree and a `Mismatch` naming what differed otherwise.

Known differences under repair elsewhere are reported as `Mismatch.known` (a reason string) so a
fuzz run can keep looking past them; see KNOWN below.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genai_otel.processors.call_log import CallLog
from genai_otel.processors.config import load_config
from genai_otel.processors.metrics import ALL_LABELS, Registry
from genai_otel.processors.normalise import SCANNED_KEYS
from genai_otel.processors.pipeline import EVALUATION_EVENT, Pipeline
from genai_otel.processors.pricing import PRICE_TABLE_VERSION, PriceBook
from genai_otel.processors.scan import RequestScanner
from genai_otel.processors.wire import WireError
from processor.helpers import StepClock, resolved_scan

from genai_otel import semconv as sc

# Small caps so that label overflow, `other` series and top-N eviction are reached by small inputs.
LABEL_LIMIT = 3
TOP_USERS = 2
TOP_FEATURES = 2
LANE_TOKEN_CAP = 100_000_000  # the default limits.max_tokens_per_span
NO_LANE_TOKEN_CAP = 2**53  # the lane is off at or above this cap (its sums are 64-bit)
PASSES = 2

_CONFIG = load_config(environ={})


def make_registry() -> Registry:
    return Registry(
        label_limits={name: LABEL_LIMIT for name in ALL_LABELS},
        allowed_labels=ALL_LABELS,
        top_users=TOP_USERS,
        top_features=TOP_FEATURES,
        exemplars=True,
        price_table=PRICE_TABLE_VERSION,
        clock=StepClock(),
    )


def make_pipeline(accelerated: bool, max_tokens: int) -> Pipeline:
    # the call log, in memory: its lines are compared too (the lane writes them as well)
    call_log = CallLog("-", 1 << 30, 0, user=str, stream=io.StringIO())
    return Pipeline(
        make_registry(),
        PriceBook(),
        max_tokens=max_tokens,
        max_value_length=_CONFIG.limits.max_attribute_length,
        accelerated=accelerated,
        call_log=call_log,
    )


def registry_state(pipeline: Pipeline) -> tuple[Any, ...]:
    registry = pipeline.registry
    exposition = [
        line
        for line in registry.expose(openmetrics=True).splitlines()
        if sc.PROM_PROCESSOR_INFO not in line  # says which walk is in use: differs by design
    ]
    assert pipeline.call_log is not None and isinstance(pipeline.call_log._given, io.StringIO)
    lines = tuple(pipeline.call_log._given.getvalue().splitlines())
    return tuple(exposition), sorted(registry.received.items()), sorted(registry.invalid.items()), lines


def _answer(pipeline: Pipeline, data: bytes) -> tuple[str, object]:
    """What the service would do with the request (service.export): its status and payload."""
    try:
        scanned, _ = pipeline.split(data)
    except (WireError, IndexError):  # the service answers INVALID_ARGUMENT for both
        return ("INVALID_ARGUMENT", None)
    except Exception as exc:
        return ("UNKNOWN in split", type(exc).__name__)
    try:
        return ("OK", pipeline.process(data, scanned))
    except Exception as exc:
        return ("UNKNOWN in process", type(exc).__name__)


def run_pipeline(accelerated: bool, max_tokens: int, data: bytes) -> list[tuple[Any, ...]]:
    pipeline = make_pipeline(accelerated, max_tokens)
    if accelerated and max_tokens == LANE_TOKEN_CAP:
        assert pipeline.lane is not None, "the C lane is off: the fuzz target would not test it"
    if accelerated and max_tokens == NO_LANE_TOKEN_CAP:
        assert pipeline.lane is None and pipeline.scanner.accelerated
    passes = []
    for _ in range(PASSES):
        answer = _answer(pipeline, data)
        passes.append((answer, registry_state(pipeline)))
        if answer[0] != "OK":
            break
    return passes


# -- the splitter -------------------------------------------------------------------------
_SCANNERS: dict[bool, RequestScanner] = {}


def _scanner(accelerated: bool) -> RequestScanner:
    if accelerated not in _SCANNERS:
        _SCANNERS[accelerated] = RequestScanner(SCANNED_KEYS, EVALUATION_EVENT, accelerated=accelerated)
    return _SCANNERS[accelerated]


def scan_outcome(accelerated: bool, data: bytes) -> str:
    scanner = _scanner(accelerated)
    try:
        scanned = scanner.split(data) if accelerated else scanner.split_python(data)
    except (WireError, IndexError):
        return "INVALID_ARGUMENT"
    except Exception as exc:
        return f"raised {type(exc).__name__}"
    return repr(resolved_scan(scanned, data))  # repr: a NaN attribute value equals itself


# -- known differences: none today. An entry names a difference being fixed, so a long run
# can keep looking past it: KNOWN[reason] = test(data, c_outcome, python_outcome) -> bool.
KNOWN: dict[str, Callable[[bytes, Any, Any], bool]] = {}


@dataclass
class Mismatch:
    what: str  # which comparison failed
    left: Any
    right: Any
    known: str = ""  # a KNOWN reason, or "" for a new finding
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        known = f" (known: {self.known})" if self.known else ""
        return f"{self.what}{known}: {_diff(self.left, self.right)}"


def _diff(left: Any, right: Any) -> str:
    """A short account of the first difference between two outcomes."""
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if len(left) != len(right):
            return f"lengths {len(left)} != {len(right)}; first: {_short(left)} vs {_short(right)}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            if not _same(a, b):
                return f"[{index}] " + _diff(a, b)
    return f"{_short(left)} != {_short(right)}"


def _same(a: Any, b: Any) -> bool:
    return a == b or repr(a) == repr(b)


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _known(data: bytes, c: Any, python: Any) -> str:
    """The KNOWN reason for a difference between the C outcome `c` and Python's, or ""."""
    for reason, test in KNOWN.items():
        if test(data, c, python):
            return reason
    return ""


def check(data: bytes) -> Mismatch | None:
    """None when every implementation agrees on `data`, else the first difference."""
    c_scan, python_scan = scan_outcome(True, data), scan_outcome(False, data)
    if c_scan != python_scan:
        return Mismatch("split: C vs Python", c_scan, python_scan, _known(data, c_scan, python_scan))
    for cap, label in ((LANE_TOKEN_CAP, "lane"), (NO_LANE_TOKEN_CAP, "no lane")):
        accelerated = run_pipeline(True, cap, data)
        python = run_pipeline(False, cap, data)
        if not _same(accelerated, python):
            known = _known(data, accelerated, python)
            return Mismatch(f"pipeline: C {label} vs Python", accelerated, python, known)
    return None


def describe(data: bytes) -> str:
    """Every path's outcome on `data`, for a finding's report."""
    lines = [f"input ({len(data)} bytes): {data.hex()}"]
    lines.append(f"split C:      {_short(scan_outcome(True, data), 600)}")
    lines.append(f"split Python: {_short(scan_outcome(False, data), 600)}")
    for accelerated, cap, label in (
        (True, LANE_TOKEN_CAP, "C lane"),
        (False, LANE_TOKEN_CAP, "Python (cap 1e8)"),
        (True, NO_LANE_TOKEN_CAP, "C no lane"),
        (False, NO_LANE_TOKEN_CAP, "Python (cap 2**53)"),
    ):
        for number, (answer, state) in enumerate(run_pipeline(accelerated, cap, data), 1):
            status, payload = answer
            shown = payload.hex() if isinstance(payload, bytes) else payload
            lines.append(f"{label} pass {number}: {status} {_short(shown, 400)}")
            lines.append(f"    received={state[1]} invalid={state[2]}")
    return "\n".join(lines)
