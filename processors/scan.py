"""One walk of an export request down to the spans the pipeline must look at.

`RequestScanner.split(data)` returns ``(resources, span_count)``:

* resources: ``[(field start, payload start, payload end, resource range | None, scopes)]``,
  only ResourceSpans holding spans of interest;
* scopes: ``[(field start, payload start, payload end, scope name, spans)]``, likewise;
* spans: ``[(field start, payload start, payload end, attrs, facts, has_evaluation)]`` for every
  span carrying a scanned attribute key or the evaluation event. ``attrs`` is the
  `wire.KeyScanner.scan` dict, or None when the caller must scan the span itself; ``facts`` is
  the `wire.span_facts` tuple, or None when the caller must compute it (and see its errors).

Two implementations give identical results: the C extension `_wirescan` (a walk in C that
skips spans with no known key at memchr speed) and the pure-Python one below, built on
`wire`. The C one is used when it imports, unless ``GENAI_OTEL_PURE_PYTHON`` is set
to a non-empty value other than ``0``; both raise `WireError` for the same malformed requests.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from .wire import UNSUPPORTED, KeyScanner, SpanFacts, WireError, decode_any_value, split_request

if TYPE_CHECKING:
    from . import _wirescan

logger = logging.getLogger(__name__)

PURE_PYTHON_ENV: Final = "GENAI_OTEL_PURE_PYTHON"

SpanEntry = tuple[int, int, int, "dict[str, object] | None", "SpanFacts | None", bool]
ScopeEntry = tuple[int, int, int, str, list[SpanEntry]]
ResourceEntry = tuple[int, int, int, "tuple[int, int] | None", list[ScopeEntry]]

# The extension's C sources (module.c and the files it is split into, _wirescan.h included).
WIRESCAN_SOURCES: Final = Path(__file__).with_name("native")


def source_digest(folder: Path = WIRESCAN_SOURCES) -> str | None:
    """The digest setup.py stamps into the extension (every native source file, by name and
    content); None where the sources are not shipped."""
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix in (".c", ".h"))
        digest = hashlib.sha256()
        for path in paths:
            data = path.read_bytes()
            digest.update(f"{path.name}\0{len(data)}\0".encode())
            digest.update(data)
    except OSError:
        return None
    return digest.hexdigest()[:16] if paths else None


M = TypeVar("M")


def _matching_build(module: M, expected: str | None) -> M | None:
    """`module` when it was built from the sources in `native/` beside it, else None (with a warning).

    An editable install does not recompile after `git pull`: running C code from an older source
    against newer Python would fail or, worse, count differently. The pure-Python path gives the
    same results, so a stale build is simply not used.
    """
    built = getattr(module, "SOURCE_DIGEST", None)
    if expected is not None and built != expected:
        logger.warning(
            "the compiled _wirescan (source digest %s) is stale against its sources in native/ (%s): "
            "using the pure-Python walk; reinstall genai-otel to rebuild it",
            built,
            expected,
        )
        return None
    return module


# Typed as the module (_wirescan.pyi) so every use is checked against the stub; None when it is
# not built or stale: the callers test that (use_accelerated, RequestScanner.accelerated) first.
try:
    from . import _wirescan as _accelerator
except ImportError:  # no compiler when installed: the pure-Python walk, same results
    _accelerator = None  # type: ignore[assignment]
else:
    _accelerator = _matching_build(_accelerator, source_digest())  # type: ignore[assignment]


def accelerated_available() -> bool:
    return _accelerator is not None


def use_accelerated() -> bool:
    """The C walk is used: it imported, and the environment does not force the fallback."""
    return _accelerator is not None and os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")


class RequestScanner:
    def __init__(self, keys: list[str], evaluation_event: bytes, accelerated: bool | None = None) -> None:
        self.keys = tuple(keys)
        self.evaluation_event = evaluation_event
        self.accelerated = use_accelerated() if accelerated is None else accelerated
        if self.accelerated and _accelerator is None:
            raise RuntimeError("the _wirescan extension is not built")
        self.span_scanner = KeyScanner(list(self.keys))
        self._table = (
            _accelerator.make_table(self.keys, evaluation_event, WireError, UNSUPPORTED, decode_any_value)
            if self.accelerated
            else None
        )

    @property
    def table(self) -> _wirescan._Table | None:
        """The C key table (None on the pure-Python path)."""
        return self._table

    def split(self, data: bytes) -> tuple[list[ResourceEntry], int]:
        """Raises WireError for a malformed request."""
        if self._table is not None:
            return _accelerator.split(data, self._table)
        return self.split_python(data)

    def split_python(self, data: bytes) -> tuple[list[ResourceEntry], int]:
        blocks, span_count = split_request(data)
        scan = self.span_scanner.scan
        find = data.find
        event = self.evaluation_event
        resources: list[ResourceEntry] = []
        for block in blocks:
            scopes: list[ScopeEntry] = []
            for field_start, payload_start, payload_end, scope in block.fields:
                if scope is None:
                    continue
                spans: list[SpanEntry] = []
                for span_field_start, start, end, is_span in scope.fields:
                    if not is_span:
                        continue
                    attrs = scan(data, start, end)
                    has_evaluation = find(event, start, end) >= 0
                    if attrs or has_evaluation:
                        spans.append((span_field_start, start, end, attrs, None, has_evaluation))
                if spans:
                    scopes.append((field_start, payload_start, payload_end, scope.scope_name, spans))
            if scopes:
                # block.start is the ResourceSpans tag; its payload follows the tag and length.
                payload_start = block.fields[0][0] if block.fields else block.end
                resources.append((block.start, payload_start, block.end, block.resource, scopes))
        return resources, span_count
